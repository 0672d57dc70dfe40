"""Image references: the OCI distribution grammar (github.com/distribution/reference), then pinning rules."""

from __future__ import annotations

import pytest
from nimgen.imageref import (
    MAX_REFERENCE,
    ImageRef,
    InvalidReference,
    Reference,
    UnpinnedImage,
    parse_reference,
)

DIGEST = "sha256:" + "a" * 64

VALID = [
    ("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", Reference("nvcr.io", "nim/meta/llama3-8b-instruct", "1.0.3", "")),
    ("nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3",
     Reference("nvcr.io", "nim/meta/llama-3.1-70b-instruct", "1.3.3", "")),
    (f"nvcr.io/nim/x@{DIGEST}", Reference("nvcr.io", "nim/x", "", DIGEST)),
    (f"nvcr.io/nim/x:1.0@{DIGEST}", Reference("nvcr.io", "nim/x", "1.0", DIGEST)),
    ("registry.example.com:5000/team/model:v2", Reference("registry.example.com:5000", "team/model", "v2", "")),
    ("localhost:1/a:b", Reference("localhost:1", "a", "b", "")),
    ("localhost:65535/a:b", Reference("localhost:65535", "a", "b", "")),
    ("[::1]:5000/nim/x:1", Reference("[::1]:5000", "nim/x", "1", "")),
    ("10.0.0.1/nim/x:1", Reference("10.0.0.1", "nim/x", "1", "")),
    ("Registry.Example.com/nim/x:1", Reference("Registry.Example.com", "nim/x", "1", "")),
    ("ghcr.io/a__b/c--d/e.f/g_h:T_1.x-y", Reference("ghcr.io", "a__b/c--d/e.f/g_h", "T_1.x-y", "")),
    ("ghcr.io/x:" + "t" * 128, Reference("ghcr.io", "x", "t" * 128, "")),
    ("ubuntu:22.04", Reference("", "ubuntu", "22.04", "")),
    ("sha512ish/x@sha512:" + "b" * 128, Reference("sha512ish", "x", "", "sha512:" + "b" * 128)),
]

INVALID = [
    ("", "empty"),
    ("nvcr.io//nim:1.0", "empty path component"),
    ("nvcr.io/nim/:1.0", "empty path component"),
    ("/nvcr.io/nim:1.0", "empty path component"),
    ("nvcr.io:99999/nim/x:1.0", "port 99999 is not between 1 and 65535"),
    ("nvcr.io:0/nim/x:1.0", "port 0 is not between 1 and 65535"),
    ("nvcr.io:/nim/x:1.0", "is not a registry host"),
    ("nvcr.io/Nim/x:1.0", "lower-case"),
    ("nvcr.io/nim/x:.1", "the tag must be"),
    ("nvcr.io/nim/x:-1", "the tag must be"),
    ("nvcr.io/nim/x:" + "t" * 129, "the tag must be"),
    ("nvcr.io/nim/x:1.0\n", "the tag must be"),
    ("nvcr.io/nim/x:1.0 ", "the tag must be"),
    ("nvcr.io/nim/x:1.é", "the tag must be"),
    ("nvcr.io/nim/x@sha256:abc", "the digest must be"),
    ("nvcr.io/nim/x@" + "a" * 64, "the digest must be"),
    ("nvcr.io/nim/x@sha256:" + "g" * 64, "the digest must be"),
    ("nvcr.io/nim-/x:1", "path component 'nim-'"),
    ("nvcr.io/nim..x/y:1", "path component 'nim..x'"),
    ("nvcr.io/nim/x:1.0:2.0", "path component .x:1.0."),
    ("-nvcr.io/nim/x:1", "registry host"),
    ("nvcr.io/nim/x:1.0'\n  tags: {Name: '*'}", "the tag must be"),
    ("nvcr.io/{{ .Values.x }}:1", "path component"),
    ("nvcr.io/" + "a" * 256 + ":1", "at most 255"),
    ("a" * (MAX_REFERENCE + 1), f"at most {MAX_REFERENCE}"),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[text[:40] for text, _ in VALID])
def test_valid_references(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(("text", "reason"), INVALID, ids=[repr(text[:40]) for text, _ in INVALID])
def test_invalid_references(text: str, reason: str) -> None:
    with pytest.raises(InvalidReference, match=reason):
        parse_reference(text)


def test_backtracking_is_bounded() -> None:
    # A long name that almost matches: the length cap keeps the backtracking grammar quick.
    with pytest.raises(InvalidReference):
        parse_reference("a" + "-a" * 5_000_000 + "!")


PINNING = [
    ("nvcr.io/nim/x:latest", UnpinnedImage, "':latest' floats"),
    (f"nvcr.io/nim/x:latest@{DIGEST}", UnpinnedImage, "':latest' floats"),
    ("nvcr.io/nim/x", UnpinnedImage, "no tag or digest"),
    ("nvcr.io/nim/x@sha512:" + "b" * 128, UnpinnedImage, "is not sha256"),
    ("nvcr.io/nim/x@sha256:" + "A" * 64, UnpinnedImage, "is not sha256"),
    ("nim/meta/x:1.0", InvalidReference, "needs a registry"),
    ("ubuntu:22.04", InvalidReference, "needs a registry"),
]


@pytest.mark.parametrize(("text", "error", "reason"), PINNING, ids=[text[:40] for text, _, _ in PINNING])
def test_pinning_rules(text: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        ImageRef.parse(text)


def test_image_ref_round_trips() -> None:
    for text in ("nvcr.io/nim/x:1.0", f"nvcr.io/nim/x@{DIGEST}", f"localhost:5000/x:1@{DIGEST}"):
        assert str(ImageRef.parse(text)) == text
    assert ImageRef.parse("nvcr.io:443/nim/x:1").repository == "nvcr.io:443/nim/x"
