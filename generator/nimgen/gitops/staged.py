"""What a commit would leave out: rendered files (and their environment files) that git has not staged.

`nimgen check` compares the work tree with what rendering gives. In a pre-commit or git hook that is
not enough: after `nimgen render` and `git commit -am`, a new model's Application is on disk, so the
work tree is current, but it is untracked, so the commit leaves it out and Argo CD never sees it.
With `--index`, check also asks git for the status of every path nimgen renders for the environment,
and names each file whose committed form would differ from the work tree, with the git command that
fixes it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from nimgen.errors import UserError

StagedKind = Literal["untracked", "unstaged", "unstaged-deletion", "ignored"]

# Per kind: what is wrong, and the git command that fixes it (the path is appended).
FIX: dict[StagedKind, tuple[str, str]] = {
    "untracked": ("rendered but not added to git; the commit leaves it out", "git add"),
    "unstaged": ("changed on disk but not staged; the commit carries the old content", "git add"),
    "unstaged-deletion": ("deleted on disk but still in the index; the commit keeps it", "git rm --cached"),
    "ignored": ("rendered, but .gitignore keeps it out of every commit; remove the ignore rule or force it",
                "git add -f"),
}


@dataclass(frozen=True, order=True)
class Unstaged:
    """A file whose committed form would differ from the work tree."""

    path: PurePosixPath
    kind: StagedKind


def unstaged(root: Path, paths: Iterable[PurePosixPath], folders: Iterable[PurePosixPath]) -> list[Unstaged]:
    """Files among `paths`, and anywhere under `folders`, that are untracked, ignored or not staged.

    Paths are relative to `root`, which must be inside a git work tree.
    """
    specs = sorted({f":(literal){path}" for path in paths} | {f":(literal){folder}/" for folder in folders})
    if not specs:
        return []
    prefix = _git(root, "rev-parse", "--show-prefix").rstrip("\n")
    # -z: paths verbatim (no quoting); --ignored=matching: name each ignored file, not its folder.
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored=matching",
                  "--no-renames", "--", *specs)
    found: list[Unstaged] = []
    for entry in status.split("\0"):
        if len(entry) < 4:
            continue
        code, name = entry[:2], entry[3:]
        kind = _kind(code)
        if kind is not None:
            # git prints paths relative to the work tree's top; report them relative to the repository root.
            relative = name[len(prefix):] if prefix and name.startswith(prefix) else name
            found.append(Unstaged(PurePosixPath(relative), kind))
    return sorted(found)


def _kind(code: str) -> StagedKind | None:
    """The porcelain status code XY: X is the index against HEAD (staged: fine), Y the work tree against the index."""
    if code == "??":
        return "untracked"
    if code == "!!":
        return "ignored"
    if code[1] == "D":
        return "unstaged-deletion"
    if code[1] in "MTA":
        return "unstaged"
    return None


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except OSError as error:
        raise UserError(f"cannot run git: {error}", hint="install git, or run nimgen check without --index") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or ["git failed"]
        raise UserError(f"--index needs a git repository at {root}: {detail[0]}",
                        hint="run it inside the repository's work tree, or without --index")
    return done.stdout
