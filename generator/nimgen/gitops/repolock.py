"""One render at a time per repository, whoever runs it.

The lock lives in the repository's git folder (`.git/nimgen-render.lock`, or the worktree's own git
folder), which every process writing that work tree sees whatever its user's cache folder, and which
is never part of the work tree. Outside a git repository it falls back to the user's cache folder,
keyed by the repository's real path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from nimgen.errors import UserError

LOCK_NAME = "nimgen-render.lock"


def git_dir(root: Path) -> Path | None:
    """The git folder of the work tree holding `root` (worktrees: their own), or None outside git."""
    probe = root.resolve()
    for folder in (probe, *probe.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():  # a linked worktree or submodule: "gitdir: <path>"
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text.partition(":")[2].strip())
                target = target if target.is_absolute() else folder / target
                return target if target.is_dir() else None
            return None
    return None


def lock_path(root: Path) -> Path:
    """Where the render lock of the repository holding `root` lives."""
    found = git_dir(root)
    if found is not None and os.access(found, os.W_OK):
        return found / LOCK_NAME
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nimgen" / "locks"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home (some CI runners): the machine's temporary folder
        base = Path(tempfile.gettempdir())
    return base / f"render-{key}.lock"


@contextlib.contextmanager
def repository_lock(root: Path, timeout: float) -> Iterator[None]:
    """Hold the repository's render lock: two renders of one repository never interleave their writes."""
    path = lock_path(root)
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout:
        raise UserError(f"another nimgen render is writing {root} (waited {timeout:g} s for {path})",
                        hint="wait for it to finish and render again; the lock is released when that process "
                             "ends") from None
