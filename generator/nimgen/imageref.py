"""Container image references: the OCI distribution grammar, then nimgen's pinning rules.

The grammar is github.com/distribution/reference (regexp.go and reference.go), the one containerd and
Docker parse with:

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] remote-name
    domain           := host [':' port-number]
    host             := domain-name | '[' IPv6address ']'
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    remote-name      := path-component ['/' path-component]*
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := /[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}/

Go's `\\w` is ASCII, so the tag is spelled out below; matching is whole-string (`fullmatch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# How an error message tells people to write an image reference.
IMAGE_FORM = "write registry/repository:tag or registry/repository@sha256:<digest>"

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?:(?P<host>{_DOMAIN_NAME}|{_IPV6})(?::(?P<port>[0-9]+))?/)?(?P<path>{_REMOTE_NAME})"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
# distribution's RepositoryNameTotalLengthMax, for the path after the domain.
MAX_PATH = 255
# Longest reference parsed at all: the grammar's backtracking must not meet megabytes of input.
MAX_REFERENCE = 512
# What nimgen accepts as a digest pin: the algorithm registries serve, lower-case hex as go-digest wants it.
_PINNED_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


class InvalidReference(ValueError):
    """The text is not an image reference at all."""


class UnpinnedImage(ValueError):
    """A valid reference that does not name one fixed image."""


@dataclass(frozen=True)
class Reference:
    """A reference as the grammar splits it (domain "" when the name has none)."""

    domain: str  # host[:port]
    path: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        """domain/path, the repository part of the reference."""
        return f"{self.domain}/{self.path}" if self.domain else self.path


def parse_reference(text: str) -> Reference:
    """Split `text` by the distribution grammar; InvalidReference says what is wrong."""
    if not text:
        raise InvalidReference("the reference is empty")
    if len(text) > MAX_REFERENCE:
        raise InvalidReference(f"the reference is {len(text)} characters long; at most {MAX_REFERENCE} are allowed")
    match = _REFERENCE.fullmatch(text)
    if match is None:
        if text.lower() != text and _REFERENCE.fullmatch(text.lower()):
            raise InvalidReference("the repository name must be lower-case")
        raise InvalidReference(_why_invalid(text))
    port = match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise InvalidReference(f"port {port} is not between 1 and 65535")
    if len(match["path"]) > MAX_PATH:
        raise InvalidReference(f"the repository path is {len(match['path'])} characters; at most {MAX_PATH} are allowed")
    domain = match["host"] or ""
    if port is not None:
        domain += f":{port}"
    return Reference(domain, match["path"], match["tag"] or "", match["digest"] or "")


def _why_invalid(text: str) -> str:
    """The first part of a malformed reference that breaks the grammar, for the message."""
    name, _, digest = text.partition("@")
    if digest and not re.fullmatch(_DIGEST, digest):
        return "the digest must be algorithm:hex, e.g. sha256:<64 hex digits>"
    slash = name.rfind("/")
    if ":" in name[slash + 1:]:
        name, _, tag = name.rpartition(":")
        if not re.fullmatch(_TAG, tag):
            return "the tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    parts = name.split("/")
    if any(not part for part in parts):
        return "the name has an empty path component ('//' or a leading or trailing '/')"
    if len(parts) > 1 and re.fullmatch(rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?", parts[0]) is None:
        return f"{parts[0][:80]!r} is not a registry host[:port]"
    for part in parts[1:] if len(parts) > 1 else parts:
        if not re.fullmatch(_PATH_COMPONENT, part):
            return (f"path component {part[:80]!r} must be lower-case letters and digits, separated by "
                    "'.', '_', '__' or dashes")
    return "it does not follow registry/repository[:tag][@digest]"


def _has_registry(domain: str) -> bool:
    # Docker's rule (normalize.go splitDockerDomain): a first component without '.' or ':' (other than
    # localhost) is a Docker Hub namespace, not a registry.
    return bool(domain) and (domain == "localhost" or any(c in domain for c in ".:") or domain.lower() != domain)


@dataclass(frozen=True)
class ImageRef:
    """A pinned container image reference split into repository (registry/path), tag and digest."""

    repository: str
    tag: str
    digest: str

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse and check pinning; InvalidReference when malformed, UnpinnedImage when not pinned."""
        ref = parse_reference(text)
        if not _has_registry(ref.domain):
            raise InvalidReference("image needs a registry and repository, e.g. nvcr.io/nim/meta/llama3-8b-instruct")
        if ref.digest and not _PINNED_DIGEST.fullmatch(ref.digest):
            raise UnpinnedImage(f"digest {ref.digest[:80]!r} is not sha256:<64 lower-case hex digits>")
        if not ref.tag and not ref.digest:
            raise UnpinnedImage("image has no tag or digest, so every pull may get a different model server")
        if ref.tag == "latest":
            raise UnpinnedImage("tag ':latest' floats: every node may pull a different NIM version")
        return cls(repository=ref.name, tag=ref.tag, digest=ref.digest)

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
