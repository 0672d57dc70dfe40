"""What a commit would leave out, asked of real git directly: every file of a new folder by name, nothing outside
the paths nimgen renders, and git's own words when it cannot answer (test_check_index.py runs it through
`nimgen check --index`)."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

import pytest
from nimgen.errors import UserError
from nimgen.gitops import staged
from nimgen.gitops.staged import Unstaged
from test_check_index import git


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "gitops"
    (root / "argocd" / "dev").mkdir(parents=True)
    (root / "argocd" / "dev" / "root.yaml").write_text("kind: Application\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def test_every_file_of_an_untracked_folder_is_named(repo: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (repo / "argocd" / "prod" / "apps").mkdir(parents=True, exist_ok=True)
        (repo / "argocd" / "prod" / "apps" / name).write_text("x: 1\n")
    assert staged.unstaged(repo, [], [PurePosixPath("argocd/prod")]) == [
        Unstaged(PurePosixPath("argocd/prod/apps/a.yaml"), "untracked"),
        Unstaged(PurePosixPath("argocd/prod/apps/b.yaml"), "untracked")]


def test_only_the_paths_asked_about_are_named(repo: Path) -> None:
    (repo / "notes.txt").write_text("mine\n")
    (repo / "argocd" / "dev" / "new.yaml").write_text("x: 1\n")
    assert staged.unstaged(repo, [PurePosixPath("argocd/dev/new.yaml")], []) == [
        Unstaged(PurePosixPath("argocd/dev/new.yaml"), "untracked")]
    assert staged.unstaged(repo, [], []) == []


def test_git_missing_is_a_message(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UserError) as raised:
        staged.unstaged(repo, [PurePosixPath("argocd/dev/root.yaml")], [])
    assert str(raised.value).startswith("cannot run git: [Errno 2] No such file or directory: 'git'")
    assert raised.value.hint == "install git, or run nimgen check without --index"


def test_a_failing_git_is_named_by_the_last_line_it_printed(repo: Path) -> None:
    # An unknown option: git prints the error, then its usage, over many lines.
    printed = subprocess.run(["git", "-C", str(repo), "status", "--no-such-option"], capture_output=True,
                             text=True, check=False).stderr.strip().splitlines()
    assert len(printed) > 2
    with pytest.raises(UserError) as raised:
        staged._git(repo, "status", "--no-such-option")
    assert str(raised.value) == f"--index needs a git repository at {repo}: {printed[-1]}"
    assert raised.value.hint == "run it inside the repository's work tree, or without --index"


def test_a_git_that_fails_silently_is_said_to_have_failed(repo: Path) -> None:
    # `git config --get` of a key that is not set exits 1 and prints nothing.
    with pytest.raises(UserError) as raised:
        staged._git(repo, "config", "--get", "nimgen.no-such-key")
    assert str(raised.value) == f"--index needs a git repository at {repo}: git failed"


def test_a_one_letter_path_is_named(repo: Path) -> None:
    (repo / "a").write_text("x\n")
    assert staged.unstaged(repo, [PurePosixPath("a")], []) == [Unstaged(PurePosixPath("a"), "untracked")]


def test_a_staged_rename_is_read_as_a_deletion_and_an_addition(repo: Path) -> None:
    # With renames, git would print the old path as a field of its own after the new one; one whose second letter
    # is a status letter would read as a status line. Staged halves are fine; the unstaged edit is named.
    (repo / "xM-old.yaml").write_text("x: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "old")
    git(repo, "mv", "xM-old.yaml", "new.yaml")
    (repo / "new.yaml").write_text("x: 2\n")
    assert staged.unstaged(repo, [PurePosixPath("new.yaml"), PurePosixPath("xM-old.yaml")], []) == [
        Unstaged(PurePosixPath("new.yaml"), "unstaged")]
