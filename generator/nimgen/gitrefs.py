"""Read files at a git ref without touching the work tree: refs, the default base, an environment then."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nimgen.environment.load import DEFAULTS_FILE, load_environment
from nimgen.errors import ConfigError, UserError
from nimgen.model import Environment

DEFAULT_BRANCHES = ("main", "master")


@dataclass(frozen=True)
class Base:
    """The commit the work tree is compared with, and how to name it to people."""

    commit: str
    label: str  # what the user asked for ("origin/main") or how it was found ("merge base of HEAD and main")

    @property
    def short(self) -> str:
        """Abbreviated commit id (stable: always 12 characters)."""
        return self.commit[:12]


class Repository:
    """A git work tree, driven through the `git` binary; only reads (no checkout, index or ref writes)."""

    def __init__(self, toplevel: Path) -> None:
        self.toplevel = toplevel

    @classmethod
    def containing(cls, path: Path) -> Repository:
        """The repository whose work tree holds `path` (a folder); UserError when there is none."""
        done = _git(path, "rev-parse", "--show-toplevel")
        if done.returncode != 0:
            raise UserError(f"{path} is not in a git repository ({_first_line(done.stderr)})",
                            hint="nimgen diff compares with a git ref: run it in a clone of the repository")
        return cls(Path(done.stdout.strip()).resolve())

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run git in the work tree's top level (paths in arguments are relative to it)."""
        return _git(self.toplevel, *args)

    def relative(self, path: Path) -> PurePosixPath:
        """`path` relative to the top level, as git names it."""
        try:
            return PurePosixPath(path.resolve().relative_to(self.toplevel).as_posix())
        except ValueError:
            raise UserError(f"{path} is outside the git work tree {self.toplevel}") from None

    def resolve(self, ref: str) -> Base:
        """The commit `ref` names; UserError for an unknown ref."""
        if not ref or ref.startswith("-"):
            raise UserError(f"invalid git ref {ref!r}",
                            hint="pass a branch, tag or commit, e.g. --base origin/main")
        done = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        if done.returncode != 0:
            raise UserError(f"unknown git ref {ref!r}: no such branch, tag or commit in {self.toplevel}",
                            hint="fetch it first (git fetch origin) or pass another --base REF")
        return Base(done.stdout.strip(), ref)

    def default_branch(self) -> str:
        """origin/HEAD's target when set, else `main`, else `master`; UserError when there is none."""
        done = self.run("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD")
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().removeprefix("refs/remotes/")
        for branch in DEFAULT_BRANCHES:
            found = self.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
            if found.returncode == 0:
                return branch
        raise UserError("cannot find the default branch: origin/HEAD is not set and there is no 'main' or "
                        "'master' branch", hint="pass the ref to compare with: --base REF")

    def merge_base(self) -> Base:
        """The merge base of HEAD with the default branch (what a pull request is reviewed against)."""
        branch = self.default_branch()
        done = self.run("merge-base", "HEAD", branch)
        if done.returncode != 0:
            why = _first_line(done.stderr) or "no common commit"
            raise UserError(f"HEAD and {branch} have no merge base ({why})",
                            hint="pass the ref to compare with: --base REF")
        return Base(done.stdout.strip(), f"merge base of HEAD and {branch}")

    def read(self, commit: str, path: PurePosixPath) -> str | None:
        """A file's text at `commit`, or None when the commit has no such file."""
        listed = self.run("ls-tree", "-z", "--name-only", "--full-tree", commit, "--", str(path))
        if listed.returncode != 0:
            raise UserError(f"cannot list {path} at {commit[:12]}: {_first_line(listed.stderr)}")
        if str(path) not in listed.stdout.split("\0"):
            return None
        done = self.run("cat-file", "blob", f"{commit}:{path}")
        if done.returncode != 0:
            raise UserError(f"cannot read {path} at {commit[:12]}: {_first_line(done.stderr)}")
        return done.stdout


def environment_at(repo: Repository, base: Base, env_file: Path, shown: str) -> Environment | None:
    """`env_file` as of `base` (None when it does not exist there), with that commit's `_defaults.yaml`.

    Both files are copied into a temporary root with their layout (`shown` is the file's path relative to
    its repository root), then loaded as usual. An invalid file is a UserError naming the ref.
    """
    text = repo.read(base.commit, repo.relative(env_file))
    if text is None:
        return None
    defaults = None
    if env_file.name != DEFAULTS_FILE:
        defaults = repo.read(base.commit, repo.relative(env_file.parent / DEFAULTS_FILE))
    with tempfile.TemporaryDirectory(prefix="nimgen-diff-base-") as tmp:
        target = Path(tmp) / shown
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        if defaults is not None:
            (target.parent / DEFAULTS_FILE).write_text(defaults, encoding="utf-8")
        try:
            return load_environment(target, Path(tmp))
        except ConfigError as error:
            # Locations read REF:FILE:LINE:COL, the way git names a file at a commit.
            lines = [line if line.startswith(" ") else f"{base.short}:{line}"
                     for line in error.message.splitlines()[1:]]
            raise UserError(f"{shown} at base {base.label} ({base.short}) is invalid:\n" + "\n".join(lines),
                            hint="fix it there, or compare with a ref where it is valid: --base REF"
                            ) from None


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No pager, prompts or locale-dependent messages; GIT_DIR and friends of the caller still apply.
    env = {**os.environ, "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C",
           "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                              encoding="utf-8", errors="replace", env=env, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed (nimgen diff reads the base version through git)") from None


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""
