"""`nimgen check --index`: in a hook, what is being committed counts, not only what is on disk (real git and
pre-commit)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run

GIT = ["git", "-c", "user.name=nimgen", "-c", "user.email=nimgen@example.com", "-c", "init.defaultBranch=main",
       "-c", "commit.gpgsign=false"]
NEW_MODEL = """\
  - name: llama3-8b-canary
    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3
    servedModelName: meta/llama3-8b-instruct
    gpus: 1
    replicas: {min: 1, max: 1}
    workload: Deployment
    cache: {type: emptyDir, size: 60Gi}
    env:
      NIM_MAX_MODEL_LEN: "8192"
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def committed(rendered_repo: Path, tmp_path: Path) -> Path:
    """The rendered example repository, every file committed."""
    root = tmp_path / "gitops"
    shutil.copytree(rendered_repo, root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "rendered")
    return root


def add_model(root: Path) -> Path:
    """A new model in dev, rendered: its Application is a new, untracked file."""
    env = root / "environments" / "dev.yaml"
    text = env.read_text()
    assert "\nmodels:\n" in text
    env.write_text(text.replace("\nmodels:\n", "\nmodels:\n" + NEW_MODEL, 1))
    rendered = run("render", "-q", env)
    assert rendered.exit_code == 0, rendered.output
    return root / "argocd" / "dev" / "apps" / "models" / "llama3-8b-canary.yaml"


def check_index(root: Path, *args: str) -> tuple[int, str]:
    result = run("check", "--index", *args, root / "environments" / "dev.yaml")
    return result.exit_code, result.output


def test_a_clean_commit_passes(committed: Path) -> None:
    assert check_index(committed) == (0, "dev: up to date\n")


def test_a_rendered_file_left_untracked_fails_with_the_git_add(committed: Path) -> None:
    app = add_model(committed)
    # Without --index the work tree is current, which is the gap: the commit would leave the file out.
    assert run("check", committed / "environments" / "dev.yaml").exit_code == 0
    code, output = check_index(committed)
    assert code == 1
    assert "untracked    argocd/dev/apps/models/llama3-8b-canary.yaml  (rendered but not added to git; " \
           "the commit leaves it out)" in output
    assert "unstaged     environments/dev.yaml  (changed on disk but not staged" in output
    assert output.splitlines()[-1].startswith("dev: not staged for commit; fix: git add ")
    git(committed, "add", "environments/dev.yaml", str(app.relative_to(committed)), "argocd/dev")
    assert check_index(committed) == (0, "dev: up to date\n")


def test_unstaged_changes_and_deletions_are_named(committed: Path) -> None:
    add_model(committed)
    git(committed, "add", "-A")
    git(committed, "commit", "-qm", "canary")
    env = committed / "environments" / "dev.yaml"
    env.write_text(env.read_text().replace(NEW_MODEL, ""))
    assert run("render", "-q", env).exit_code == 0  # deletes the canary's Application and updates others
    code, output = check_index(committed)
    assert code == 1
    assert "unstaged-deletion argocd/dev/apps/models/llama3-8b-canary.yaml" in output
    assert "unstaged     argocd/dev/generated-files.txt" in output
    assert "fix: git rm --cached argocd/dev/apps/models/llama3-8b-canary.yaml" in output
    git(committed, "add", "-A")
    assert check_index(committed)[0] == 0


def test_an_ignored_rendered_file_is_named(committed: Path) -> None:
    (committed / ".gitignore").write_text("argocd/dev/README.md\n")
    git(committed, "rm", "-q", "--cached", "argocd/dev/README.md")
    code, output = check_index(committed)
    assert code == 1
    assert "ignored      argocd/dev/README.md  (rendered, but .gitignore keeps it out of every commit" in output
    assert "fix: git add -f argocd/dev/README.md" in output


def test_a_repository_in_a_subfolder_of_the_git_work_tree(rendered_repo: Path, tmp_path: Path) -> None:
    top = tmp_path / "monorepo"
    root = top / "deploy" / "nim"
    shutil.copytree(rendered_repo, root)
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "rendered")
    (root / "argocd" / "dev" / "README.md").write_text("edited\n")
    code, output = check_index(root)
    assert code == 1
    # Paths relative to the nimgen repository, as every other message shows them.
    assert "unstaged     argocd/dev/README.md" in output


def test_index_needs_git(rendered_repo: Path) -> None:
    code, output = check_index(rendered_repo)
    assert code == 1
    assert "--index needs a git repository at" in output and "or without --index" in output


@pytest.mark.subprocess
def test_pre_commit_hook_refuses_commit_all_that_leaves_the_new_application_out(committed: Path,
                                                                                tmp_path: Path) -> None:
    """The README's flow: render, then `git commit -am`. pre-commit stashes what is not staged; the new file is
    untracked, so the hook must fail and name it."""
    hooks = (Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml").read_text()
    assert "entry: nimgen check --index" in hooks
    (committed / ".pre-commit-config.yaml").write_text(
        "repos:\n- repo: local\n  hooks:\n  - id: nimgen-check\n    name: nimgen check\n"
        "    entry: nimgen check --index\n    language: system\n    pass_filenames: false\n"
        "    files: ^(environments|charts|argocd)/\n")
    git(committed, "add", ".pre-commit-config.yaml")
    git(committed, "commit", "-qm", "pre-commit")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=committed, env=env, check=True,
                   capture_output=True)
    app = add_model(committed)
    commit = subprocess.run([*GIT, "commit", "-am", "add the canary"], cwd=committed, env=env, capture_output=True,
                            text=True, check=False)
    assert commit.returncode == 1, commit.stdout + commit.stderr
    output = commit.stdout + commit.stderr  # git shows the hook's output on stderr
    assert "untracked    argocd/dev/apps/models/llama3-8b-canary.yaml" in output
    assert "fix: git add argocd/dev/apps/models/llama3-8b-canary.yaml" in output
    assert git(committed, "log", "--format=%s", "-1").strip() == "pre-commit"  # nothing committed
    git(committed, "add", str(app.relative_to(committed)))
    again = subprocess.run([*GIT, "commit", "-am", "add the canary"], cwd=committed, env=env, capture_output=True,
                           text=True, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "llama3-8b-canary.yaml" in git(committed, "show", "--stat", "HEAD")
