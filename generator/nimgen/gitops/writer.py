"""All writes to the output tree: ownership, staging, swap, cleanup.

A write touches only the folders its ownership record may own (see ownership.py) and never goes
through a symlink. It runs in steps that each leave a state `nimgen check` reports and the next
render repairs:

1. every new file is staged beside its target (the step that fails for lack of space or rights;
   on failure the staged files are removed and nothing else has changed);
2. the ownership record is replaced by one listing the old and the new files, marked in progress;
3. staged files are renamed into place, stale files and leftovers of earlier crashes deleted;
4. the final record replaces the transitional one.

A crash at any point leaves files that some record lists, or staging files, all of which `check`
names and `render` sweeps.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from nimgen.errors import OutputConflictError, OutputWriteError, UserError
from nimgen.gitops import ownership
from nimgen.gitops.ownership import (
    GENERATED_MARKER,
    RECORD_NAME,
    STAGE_SUFFIX,
    OwnershipError,
    Record,
    Scope,
    content_hash,
    read_record,
    record_text,
)
from nimgen.gitops.repolock import lock_path, repository_lock

if TYPE_CHECKING:
    from nimgen.gitops.drift import Reads

__all__ = [
    "RECORD_NAME",
    "Change",
    "Scope",
    "content_hash",
    "create_files",
    "lock_path",
    "other_scopes",
    "read_state",
    "replace_file",
    "repository_lock",
    "write",
]

Action = Literal["create", "update", "delete", "identical"]


@dataclass(frozen=True, order=True)
class Change:
    """What a write did (or, in a dry run, would do) to one path."""

    path: PurePosixPath
    action: Action


@dataclass(frozen=True)
class _Plan:
    changes: list[Change]
    files: dict[PurePosixPath, str]  # the new tree and its final record
    previous: Record
    leftovers: list[PurePosixPath]


def _check_tree(scope: Scope, tree: dict[PurePosixPath, str]) -> None:
    """The tree nimgen rendered stays inside its scope (guards against a bug, or a name that slipped through)."""
    bad = sorted(f"{path}: {reason}" for path in tree if (reason := scope.why_not(path) or _staging_name(path)))
    if bad:
        raise OutputWriteError("refusing to write outside the folders nimgen owns:\n" +
                               "\n".join(f"  {line}" for line in bad))


def _staging_name(path: PurePosixPath) -> str:
    """Why a file may not have this name: the one another file is staged under before it is swapped in."""
    name = path.name
    if name.startswith(".") and name.endswith(STAGE_SUFFIX) and len(name) > len(STAGE_SUFFIX) + 1:
        return f"named like the staging file of {path.with_name(name[1:-len(STAGE_SUFFIX)])}"
    return ""


def _refuse_takeover(root: Path, scope: Scope, source: str) -> None:
    """Two environment files with one `name:` would overwrite each other's argocd/<name>/: refuse the second."""
    owner = ownership.source_of(root, scope)
    if owner is None or owner == source:
        return
    if (root / owner).is_file():
        raise OwnershipError(
            f"{scope.folder}/ belongs to {owner}, but {source} also names its environment '{scope.env_name}'",
            hint=f"give {source} its own name: (environment names must be unique in a repository); "
                 f"if {owner} was renamed to {source}, delete {owner}")


def _owned_by_others(root: Path, scope: Scope, reads: Reads | None = None) -> set[PurePosixPath]:
    """Files other environments' render records own (shared charts must outlive the environment that drops them)."""
    if reads is not None:
        return reads.owned_by_others(root, scope)
    owned: set[PurePosixPath] = set()
    for other in other_scopes(root, scope):
        owned |= set(read_record(root, other).entries)
    return owned


def other_scopes(root: Path, scope: Scope) -> list[Scope]:
    """The scopes of the other environments that have a record under argocd/."""
    argocd = root / "argocd"
    if scope.bench or argocd.is_symlink() or not argocd.is_dir():
        return []
    return [Scope(folder.name) for folder in sorted(argocd.iterdir())
            if folder.name != scope.env_name and not folder.is_symlink() and (root / Scope(folder.name).record).is_file()]


def read_state(root: Path, scope: Scope, source: str, tree: dict[PurePosixPath, str],
                reads: Reads | None = None) -> tuple[Record, set[PurePosixPath]]:
    """Refuse what nimgen must not touch; then this scope's record and the files other records own."""
    _check_tree(scope, tree)
    ownership.refuse_symlinks(root, scope.folder, *tree, memo=reads.memo if reads else None)
    _refuse_takeover(root, scope, source)
    record = reads.record(root, scope) if reads else read_record(root, scope)
    return record, _owned_by_others(root, scope, reads)


def _plan(root: Path, scope: Scope, source: str, tree: dict[PurePosixPath, str], command: str) -> _Plan:
    previous, others = read_state(root, scope, source, tree)
    files = dict(tree)
    files[scope.record] = record_text(source, tree, command=command)
    changes: list[Change] = []
    conflicts: list[Path] = []
    for relative, text in sorted(files.items()):
        target = root / relative
        if target.is_symlink() or target.is_dir():
            conflicts.append(target)
        elif target.is_file():
            current = target.read_bytes()
            if current == text.encode("utf-8"):
                changes.append(Change(relative, "identical"))
            elif relative in previous.entries or relative in others or GENERATED_MARKER.encode() in current[:512]:
                changes.append(Change(relative, "update"))
            else:
                conflicts.append(target)
        else:
            changes.append(Change(relative, "create"))
    if conflicts:
        raise OutputConflictError(conflicts)
    for relative in sorted(set(previous.entries) - set(files) - others):
        if (root / relative).is_file():
            changes.append(Change(relative, "delete"))
    kept = {parent for path in files for parent in path.parents}
    leftovers = [path for path in ownership.leftovers(root, scope) if path not in kept]
    changes.extend(Change(path, "delete") for path in leftovers if path not in previous.entries)
    return _Plan(changes, files, previous, leftovers)


def write(root: Path, scope: Scope, source: str, tree: dict[PurePosixPath, str], *, dry_run: bool = False,
          command: str = "nimgen render") -> list[Change]:
    """Bring `root` in line with `tree` inside `scope`; return what changed (or would).

    Raises:
        OwnershipError: the record lists a path nimgen may not touch, a path goes through a symlink, or
            another environment file owns the scope.
        OutputConflictError: a target exists that nimgen did not generate.
        OutputWriteError: a write failed (nothing changed if staging failed; else render again).
    """
    plan = _plan(root, scope, source, tree, command)
    if dry_run:
        return plan.changes
    record = scope.record
    to_write = [c.path for c in plan.changes if c.action in ("create", "update") and c.path != record]
    to_delete = [c.path for c in plan.changes if c.action == "delete" and c.path not in plan.leftovers]
    updates = {c.path for c in plan.changes if c.action == "update"}
    staged = _stage(root, scope, [(root / path, plan.files[path], path in updates) for path in to_write])
    if to_write or to_delete:
        # Until the swap completes, the record lists old and new files alike, with unknown hashes for those
        # in flux: whatever a crash leaves is named by `check` and deleted or rewritten by the next render.
        union = {**dict.fromkeys(plan.previous.entries, ""), **tree}
        hashes = {path: plan.previous.entries[path] for path in plan.previous.entries if path not in tree}
        hashes.update(dict.fromkeys([*to_write, *to_delete], ""))
        try:
            replace_file(root / record, record_text(source, union, hashes=hashes, in_progress=True))
        except OutputWriteError:
            _unstage(staged)
            raise
    try:
        for stage, target in staged:
            os.replace(stage, target)
        for relative in to_delete:
            (root / relative).unlink(missing_ok=True)
            _remove_empty_parents(root / relative.parent, root / relative.parts[0])
        for relative in plan.leftovers:
            target = root / relative
            if target.is_dir():
                with contextlib.suppress(OSError):  # no longer empty: someone wrote into it meanwhile
                    target.rmdir()
            else:
                target.unlink(missing_ok=True)
        if plan.files[record].encode("utf-8") != _read_bytes(root / record):
            replace_file(root / record, plan.files[record])
    except (OSError, OutputWriteError) as exc:
        # The swap has begun: some files are new, and the record in progress lists old and new alike.
        raise OutputWriteError(f"could not finish writing {scope.folder}/: {exc}",
                               hint="render again: the record still lists every file, so it completes the tree") \
            from None
    return plan.changes


def _stage(root: Path, scope: Scope, items: list[tuple[Path, str, bool]]) -> list[tuple[Path, Path]]:
    """Write every file beside its target; on failure remove what was staged and created, and raise.

    A file that will replace one on disk (`durable`) reaches the disk before the swap, so that a power
    loss cannot leave an empty file where the old one was. A new file replaces nothing: should a power
    loss empty it, its content no longer matches the record's hash, `check` names it and the next render
    rewrites it. Skipping the flush keeps a first render of a thousand models from waiting on a thousand
    disk writes.
    """
    staged: list[tuple[Path, Path]] = []
    created_dirs: list[Path] = []
    try:
        for target, text, durable in items:
            created_dirs.extend(_make_parents(target.parent))
            stage = target.with_name(f".{target.name}{STAGE_SUFFIX}")
            staged.append((stage, target))
            with open(stage, "wb") as handle:
                handle.write(text.encode("utf-8"))
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
    except OSError as exc:
        _unstage(staged)
        for directory in reversed(created_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise OutputWriteError(
            f"could not stage the output for {scope.folder}/: {exc.strerror or exc}",
            hint="nothing was changed; fix the cause (disk space, permissions) and render again",
        ) from None
    return staged


def _unstage(staged: list[tuple[Path, Path]]) -> None:
    for stage, _ in staged:
        with contextlib.suppress(OSError):
            stage.unlink()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def create_files(root: Path, files: dict[PurePosixPath, str]) -> None:
    """Create new files under `root`, all or none; never replaces an existing file (UserError naming them)."""
    existing = sorted(root / relative for relative in files if (root / relative).exists())
    if existing:
        raise UserError("refusing to overwrite existing files:\n" + "\n".join(f"  {path}" for path in existing),
                        hint="choose an empty folder (or one without these files)")
    created: list[Path] = []
    folders: list[Path] = []
    try:
        for relative, text in sorted(files.items()):
            if relative.is_absolute() or ".." in relative.parts:
                raise OutputWriteError(f"refusing to write outside the output directory: {relative}")
            target = root / relative
            folders.extend(_make_parents(target.parent))
            with open(target, "x", encoding="utf-8") as handle:  # "x": fail rather than replace a racing file
                handle.write(text)
            created.append(target)
    except OSError as exc:
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(folders):  # deepest first; only folders this call made, and only when empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise OutputWriteError(f"could not create {exc.filename}: {exc.strerror}",
                               hint="nothing was kept; fix the cause (permissions, disk space) and try again") from None


def replace_file(path: Path, text: str) -> None:
    """Replace one file atomically: a crash leaves the old file or the new one, never half of either."""
    stage = path.with_name(f".{path.name}{STAGE_SUFFIX}")
    try:
        _make_parents(path.parent)
        with open(stage, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(stage, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            stage.unlink()
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}", hint="nothing was changed") from None


def _make_parents(directory: Path) -> list[Path]:
    missing: list[Path] = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    directory.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove_empty_parents(directory: Path, stop: Path) -> None:
    """Remove `directory` and its parents while empty, never `stop` (argocd/ or charts/) or above."""
    while directory != stop and stop in directory.parents and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
