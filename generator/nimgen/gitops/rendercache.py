"""Earlier renders, reused by `nimgen check`: a rendered tree known by its files' digests, keyed by its inputs.

A check in a pre-commit hook of a fleet repository (fifty environments) would otherwise load, validate and
render every environment on every commit. The key is the SHA-256 of everything a render reads: every file
of the nimgen package (code, charts, templates, catalogs, schemas), the versions of Python and of the
libraries that shape the output, the environment file and its `_defaults.yaml` layer, and the path the
environment is known by. Any change to any of them is another key, so an entry can never stand for a
render it is not. What is on disk is never cached: check still reads and digests every file it compares.

Entries live in $NIMGEN_CACHE_DIR, else $XDG_CACHE_HOME/nimgen, else ~/.cache/nimgen (never in the
repository); NIMGEN_NO_CACHE=1 or `check --no-cache` turns the reuse off. An entry that cannot be read
or does not match its key is ignored; one that cannot be written is skipped: the cache only saves time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path, PurePosixPath

# Bumped when the entry format or the meaning of a key changes.
FORMAT = 1
# Entries kept; past this, the least recently written go.
MAX_ENTRIES = 4096
# Libraries whose version can change rendered bytes or what is refused.
_LIBRARIES = ("pyyaml", "jinja2", "jsonschema", "jsonschema-rs", "ruamel.yaml", "regress")
_DEFAULTS_FILE = "_defaults.yaml"


@dataclass(frozen=True)
class Entry:
    """What check needs of a rendered environment."""

    name: str
    source: str  # the environment file, relative to the repository root
    defaults_source: str  # its layer, or ""
    digests: dict[PurePosixPath, str]


def folder() -> Path | None:
    """Where entries live, or None when reuse is off."""
    if os.environ.get("NIMGEN_NO_CACHE"):
        return None
    configured = os.environ.get("NIMGEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nimgen" / "renders"


@lru_cache(maxsize=1)
def _fingerprint() -> bytes:
    """Digest of nimgen itself and of what shapes its output."""
    package = Path(__file__).resolve().parents[1]
    hasher = hashlib.sha256(f"nimgen-render-cache {FORMAT} {sys.version_info[:2]}".encode())
    for name in _LIBRARIES:
        try:
            hasher.update(f"{name}={metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            hasher.update(f"{name}=;".encode())
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(package).as_posix().encode()
            data = path.read_bytes()
            hasher.update(b"%d:%s%d:" % (len(relative), relative, len(data)) + data)
    return hasher.digest()


def key(env_file: Path, source: str) -> str | None:
    """The key of rendering `env_file` (known as `source`), or None when it cannot be read (the loader says why)."""
    hasher = hashlib.sha256(_fingerprint())
    try:
        layer = env_file.parent / _DEFAULTS_FILE
        for data in (source.encode(), env_file.read_bytes(), layer.read_bytes() if layer.is_file() else None):
            # A missing layer is framed apart from every content a layer may have.
            hasher.update(b"-" if data is None else b"%d:" % len(data) + data)
    except OSError:
        return None
    return hasher.hexdigest()


def recall(env_file: Path, source: str) -> tuple[str | None, Entry | None]:
    """The key of rendering `env_file` now, and the entry kept under it (None, None when reuse is off)."""
    place = folder()
    entry_key = key(env_file, source) if place is not None else None
    return entry_key, load(place, entry_key) if place is not None and entry_key is not None else None


def keep(env_file: Path, key_before: str | None, entry: Entry) -> None:
    """Keep `entry` under `key_before`, the key taken before the environment was loaded: if the input changed
    while it was rendered, the key now differs and nothing is kept."""
    place = folder()
    if place is not None and key_before is not None and key(env_file, entry.source) == key_before:
        store(place, key_before, entry)


def load(place: Path, entry_key: str) -> Entry | None:
    """The entry stored under `entry_key`, or None."""
    try:
        data = json.loads((place / f"{entry_key}.json").read_text(encoding="utf-8"))
        if data.get("key") != entry_key or data.get("format") != FORMAT:
            return None
        digests = {PurePosixPath(path): str(value) for path, value in data["digests"].items()}
        return Entry(str(data["name"]), str(data["source"]), str(data["defaultsSource"]), digests)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store(place: Path, entry_key: str, entry: Entry) -> None:
    """Keep `entry` under `entry_key` (atomically; silently not at all when the folder is not writable)."""
    data = {"format": FORMAT, "key": entry_key, "name": entry.name, "source": entry.source,
            "defaultsSource": entry.defaults_source,
            "digests": {path.as_posix(): value for path, value in sorted(entry.digests.items())}}
    try:
        place.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".entry-", dir=place)
    except OSError:
        return
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, separators=(",", ":"))
        os.replace(staging, place / f"{entry_key}.json")
        _prune(place)
    except OSError:
        Path(staging).unlink(missing_ok=True)  # a half-written entry is never left behind


def _prune(place: Path) -> None:
    entries = [item for item in os.scandir(place) if item.name.endswith(".json")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda item: item.stat().st_mtime_ns)
    for item in entries[: len(entries) - MAX_ENTRIES]:
        Path(item.path).unlink(missing_ok=True)
