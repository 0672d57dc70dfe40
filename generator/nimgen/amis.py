"""AMI releases: whether a node pool's pinned AMI release has an image for the cluster's Kubernetes version."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from importlib import resources
from typing import Any

from nimgen.yamlio import load_plain

CATALOG_PATH = "generator/nimgen/catalog/amis.yaml"  # as messages name it
_KUBERNETES = re.compile(r"1\.[0-9]+")
_RELEASE = {"al2023": re.compile(r"v[0-9]{8}"), "bottlerocket": re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+")}


class CatalogError(RuntimeError):
    """The packaged AMI catalog is malformed (a nimgen bug, not a user error: never skipped silently)."""


class Answer(Enum):
    """What the catalog says about one pin on one Kubernetes version."""

    OK = "ok"
    NO_SUCH_RELEASE = "no such release"
    NO_IMAGE = "no image for this Kubernetes version"
    NO_NVIDIA = "an image for this Kubernetes version, but no NVIDIA variant"
    UNKNOWN = "unknown to the catalog"


@dataclass(frozen=True)
class Release:
    """One AMI release and the Kubernetes minor versions it ships x86_64 images for."""

    family: str
    version: str
    kubernetes: frozenset[str]  # minor versions with an image
    nvidia: frozenset[str]  # minor versions whose image also has the NVIDIA variant

    def ships(self, kubernetes: str, gpu: bool) -> bool:
        """Whether a pool on Kubernetes `kubernetes` finds its image (the NVIDIA variant for a GPU pool)."""
        return kubernetes in (self.nvidia if gpu else self.kubernetes)


@dataclass(frozen=True)
class Family:
    """Every catalogued release of one amiFamily, oldest first."""

    name: str
    source: str
    releases: tuple[Release, ...]
    unconfirmed: frozenset[str]  # tagged upstream without release notes: unknown, not missing

    @property
    def oldest(self) -> Release:
        """The oldest release the catalog lists."""
        return self.releases[0]

    @property
    def newest(self) -> Release:
        """The newest release the catalog lists."""
        return self.releases[-1]

    def release(self, version: str) -> Release | None:
        """The listed release `version`, None when the catalog does not list it."""
        return next((release for release in self.releases if release.version == version), None)


@dataclass(frozen=True)
class Catalog:
    """The AMI release catalog: its date and its families by amiFamily."""

    dated: str
    families: dict[str, Family]


@dataclass(frozen=True)
class Lookup:
    """The answer for one pin, with the release when the catalog lists it."""

    answer: Answer
    release: Release | None = None


@dataclass(frozen=True)
class Pins:
    """A run of consecutive catalogued releases that all ship the image a pool needs."""

    family: str
    first: str
    last: str
    newest: bool  # `last` is the newest release the catalog lists, so every later listed one ships it too


def version_key(version: str) -> tuple[int, ...]:
    """Order of releases: v20251112 -> (20251112,), v1.26.2 -> (1, 26, 2). ValueError for other shapes."""
    if not version.startswith("v"):
        raise ValueError(f"not an AMI release: {version!r}")
    return tuple(int(part) for part in version[1:].split("."))


def image_name(family: str, kubernetes: str, gpu: bool = True) -> str:
    """What Karpenter looks for: the Bottlerocket variant, or the EKS AL2023 AMI name without its release."""
    if family == "bottlerocket":
        return f"aws-k8s-{kubernetes}-nvidia" if gpu else f"aws-k8s-{kubernetes}"
    return f"amazon-eks-node-{family}-x86_64-{'nvidia' if gpu else 'standard'}-{kubernetes}"


def _minors(values: Any, where: str) -> frozenset[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) and _KUBERNETES.fullmatch(v) for v in values):
        raise CatalogError(f"{CATALOG_PATH}: {where}: expected a list of quoted minor versions like \"1.33\"")
    return frozenset(values)


def _family(name: str, spec: dict[str, Any]) -> Family:
    pattern = _RELEASE.get(name)
    if pattern is None:
        raise CatalogError(f"{CATALOG_PATH}: unknown family {name!r}")
    releases: list[Release] = []
    for group in spec["releases"]:
        where = f"{name} {group['versions'][0]}"
        kubernetes, nvidia = _minors(group["kubernetes"], where), _minors(group["nvidia"], where)
        if not nvidia <= kubernetes:
            raise CatalogError(f"{CATALOG_PATH}: {where}: nvidia lists versions missing from kubernetes")
        for version in group["versions"]:
            if not isinstance(version, str) or not pattern.fullmatch(version):
                raise CatalogError(f"{CATALOG_PATH}: {name}: {version!r} is not a release version")
            releases.append(Release(name, version, kubernetes, nvidia))
    releases.sort(key=lambda release: version_key(release.version))
    versions = [release.version for release in releases]
    if not releases or len(set(versions)) != len(versions):
        raise CatalogError(f"{CATALOG_PATH}: {name}: releases must be listed once each")
    unconfirmed = frozenset(spec.get("unconfirmed") or ())
    if unconfirmed & set(versions):
        raise CatalogError(f"{CATALOG_PATH}: {name}: a release is both listed and unconfirmed")
    return Family(name, spec["source"], tuple(releases), unconfirmed)


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The AMI release catalog (generator/nimgen/catalog/amis.yaml)."""
    text = resources.files("nimgen").joinpath("catalog", "amis.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = load_plain(text)
    dated = data.get("dated")
    if not isinstance(dated, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", dated):
        raise CatalogError(f"{CATALOG_PATH}: dated must be a quoted YYYY-MM-DD date")
    return Catalog(dated, {name: _family(name, spec) for name, spec in data["families"].items()})


def lookup(family: str, version: str, kubernetes: str, gpu: bool = True) -> Lookup:
    """What the catalog says about pinning `family` `version` on a Kubernetes `kubernetes` cluster.

    OK: the release ships the image. NO_SUCH_RELEASE: the version lies between the oldest and newest listed
    releases of a family the catalog lists completely, yet is not one of them. NO_IMAGE / NO_NVIDIA: a listed
    release without an image for this Kubernetes version, or (for a GPU pool) without its NVIDIA variant.
    UNKNOWN: outside what the catalog lists; the caller should warn, not fail.
    """
    known = catalog().families.get(family)
    if known is None or version in known.unconfirmed:
        return Lookup(Answer.UNKNOWN)
    release = known.release(version)
    if release is None:
        try:
            key = version_key(version)
        except ValueError:
            return Lookup(Answer.UNKNOWN)
        inside = version_key(known.oldest.version) < key < version_key(known.newest.version)
        return Lookup(Answer.NO_SUCH_RELEASE if inside and _RELEASE[family].fullmatch(version) else Answer.UNKNOWN)
    if release.ships(kubernetes, gpu):
        return Lookup(Answer.OK, release)
    if gpu and kubernetes in release.kubernetes:
        return Lookup(Answer.NO_NVIDIA, release)
    return Lookup(Answer.NO_IMAGE, release)


def nearest_pins(family: str, version: str, kubernetes: str, gpu: bool = True) -> Pins | None:
    """The run of consecutive catalogued releases shipping the pool's image nearest to `version`.

    A pin too old for the cluster gets the first release that ships the image (and whether every later one
    does); a pin past a variant's removal gets the last releases that still shipped it. None when no
    catalogued release ships it.
    """
    known = catalog().families.get(family)
    if known is None:
        return None
    releases = known.releases
    runs: list[tuple[int, int]] = []
    for index, release in enumerate(releases):
        if not release.ships(kubernetes, gpu):
            continue
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    if not runs:
        return None
    try:
        position = bisect.bisect_left([version_key(r.version) for r in releases], version_key(version))
    except ValueError:
        position = len(releases)

    def distance(run: tuple[int, int]) -> tuple[int, int]:
        start, end = run
        gap = start - position if position < start else max(0, position - end)
        return gap, -start  # on a tie, the newer run

    start, end = min(runs, key=distance)
    return Pins(family, releases[start].version, releases[end].version, end == len(releases) - 1)
