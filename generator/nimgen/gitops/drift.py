"""What differs between the disk and a rendered tree: the question `nimgen check` asks (and validate's staleness).

A tree is known by its files' SHA-256 digests, so that a check can compare with an earlier render of the same
inputs without rendering again (see `rendercache`); the files on disk are always read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from nimgen.gitops import ownership, writer
from nimgen.gitops.ownership import (
    GENERATED_MARKER,
    STAGE_SUFFIX,
    Scope,
    content_hash,
    read_record,
    record_text,
)

DriftKind = Literal["missing", "stale", "hand-edited", "extra", "conflict", "unowned", "leftover", "interrupted"]


@dataclass(frozen=True, order=True)
class Drift:
    """A file that differs from what rendering the environment now gives."""

    path: PurePosixPath
    kind: DriftKind


def digest(data: bytes) -> str:
    """The full SHA-256 of a file's bytes: what `drift_by_digest` compares (the record keeps a short form for people)."""
    return hashlib.sha256(data).hexdigest()


def tree_digests(tree: dict[PurePosixPath, str]) -> dict[PurePosixPath, str]:
    """`digest` of each rendered file."""
    return {path: digest(text.encode("utf-8")) for path, text in tree.items()}


class Reads:
    """What one check of several environments reads from disk, each read once: the charts/ files and the
    other environments' records are shared by every environment of a repository."""

    def __init__(self) -> None:
        self._files: dict[Path, bytes | None] = {}
        self._records: dict[tuple[Path, str], ownership.Record] = {}
        self.memo: ownership.Memo = {}

    def file(self, path: Path) -> bytes | None:
        """The bytes of a plain file (not a symlink); None for anything else."""
        if path not in self._files:
            try:
                self._files[path] = None if path.is_symlink() or not path.is_file() else path.read_bytes()
            except OSError:
                self._files[path] = None
        return self._files[path]

    def record(self, root: Path, scope: Scope) -> ownership.Record:
        key = (root, scope.folder.as_posix())
        if key not in self._records:
            self._records[key] = read_record(root, scope, self.memo)
        return self._records[key]

    def owned_by_others(self, root: Path, scope: Scope) -> set[PurePosixPath]:
        """`_owned_by_others`, from one count of every record's entries (not a union per environment)."""
        if scope.bench:
            return set()
        key = ("owners", root)
        if key not in self.memo:
            tally: dict[PurePosixPath, int] = {}
            every = writer.other_scopes(root, Scope(""))
            for other in every:
                for path in self.record(root, other).entries:
                    tally[path] = tally.get(path, 0) + 1
            self.memo[key] = (tally, {other.env_name for other in every})
        counts: dict[PurePosixPath, int]
        named: set[str]
        counts, named = self.memo[key]  # type: ignore[misc]
        own = self.record(root, scope).entries if scope.env_name in named else {}
        return {path for path, count in counts.items() if count > (1 if path in own else 0)}


def drift_by_digest(root: Path, scope: Scope, source: str, digests: dict[PurePosixPath, str],
                    reads: Reads | None = None) -> list[Drift]:
    """How the files under `root` differ from a rendered tree, known by its files' digests (`tree_digests`), plus its
    ownership record; reads, never writes (a check may reuse an earlier render's digests)."""
    reads = reads or Reads()
    record, others = writer.read_state(root, scope, source, dict.fromkeys(digests, ""), reads)
    short = {path: "sha256:" + value[:16] for path, value in digests.items()}
    expected = dict(digests)
    expected[scope.record] = digest(record_text(source, dict.fromkeys(digests, ""), hashes=short).encode("utf-8"))
    found: list[Drift] = []
    for relative, wanted in sorted(expected.items()):
        target = root / relative
        current = reads.file(target)
        if current is None:
            found.append(Drift(relative, "conflict" if target.exists() or target.is_symlink() else "missing"))
            continue
        if digest(current) == wanted:
            continue
        if relative == scope.record and record.in_progress:
            found.append(Drift(relative, "interrupted"))
        elif relative != scope.record and relative not in record.entries and relative not in others \
                and GENERATED_MARKER.encode() not in current[:512]:
            found.append(Drift(relative, "conflict"))  # someone else's file where nimgen would write
        elif record.entries.get(relative) and record.entries[relative] != content_hash(current):
            found.append(Drift(relative, "hand-edited"))
        else:
            found.append(Drift(relative, "stale"))
    for relative in sorted(set(record.entries) - set(expected) - others):
        if (root / relative).is_file():
            found.append(Drift(relative, "extra"))
    found.extend(Drift(path, "unowned") for path in unowned_files(root, scope, set(expected) | set(record.entries)))
    found.extend(Drift(path, "leftover") for path in ownership.leftovers(root, scope, reads.memo))
    return sorted(set(found))


def unowned_files(root: Path, scope: Scope, listed: set[PurePosixPath]) -> list[PurePosixPath]:
    """Files (and symlinks) in the scope's own folder that are not `listed` (what its record holds and what
    nimgen now writes); Argo CD would apply those under apps/. Staging files are leftovers, reported apart."""
    base = root / scope.folder
    if base.is_symlink() or not base.is_dir():
        return []
    found: list[PurePosixPath] = []
    for directory, folders, files in os.walk(base):
        here = PurePosixPath(Path(directory).relative_to(root).as_posix())
        if here == scope.folder and not scope.bench:
            folders[:] = [name for name in folders if name != ownership.BENCH_FOLDER]
        links = [name for name in folders if (Path(directory) / name).is_symlink()]
        for name in sorted([*files, *links]):
            path = here / name
            if path not in listed and not name.endswith(STAGE_SUFFIX):
                found.append(path)
    return found
