"""`nimgen init`: a new repository that passes check and validate at once, with CI and pre-commit wired up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT
from helpers import run, tree_digest
from nimgen.yamlio import load_plain
from pre_commit.clientlib import load_config, load_manifest

URL = "https://github.com/acme/nim-gitops.git"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]


@pytest.fixture()
def initialised(tmp_path: Path, monkeypatch: Any) -> Path:
    target = tmp_path / "gitops"
    result = run("init", target, "--repo-url", URL, "--cluster-prefix", "acme")
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(target)
    return target


def test_new_repository_passes_check_and_validate(initialised: Path, crd_schemas: Path) -> None:
    for path in ("environments/_defaults.yaml", "environments/dev.yaml", "environments/prod.yaml", "README.md",
                 "charts/nim-llm/Chart.yaml", "argocd/prod/root.yaml", "argocd/dev/apps/project.yaml",
                 ".github/workflows/nimgen.yml", ".pre-commit-config.yaml"):
        assert (initialised / path).is_file(), path
    assert not list(initialised.glob(".nimgen-init-*"))  # the staging folder is gone
    check = run("check")
    assert check.exit_code == 0 and check.output == "dev: up to date\nprod: up to date\n", check.output
    validate = run("validate", "--schema-location", str(crd_schemas))
    assert validate.exit_code == 0, validate.output
    assert validate.output.strip().splitlines()[-1].split(", ")[2] == "0 errors"
    defaults = load_plain((initialised / "environments/_defaults.yaml").read_text())
    assert defaults["gitops"]["repoURL"] == URL
    assert load_plain((initialised / "environments/prod.yaml").read_text())["cluster"]["name"] == "acme-prod"


def test_workflow_runs_check_validate_and_comments_the_diff(initialised: Path) -> None:
    flow = load_plain((initialised / ".github/workflows/nimgen.yml").read_text())
    triggers = flow["on"]
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    [job] = flow["jobs"].values()
    steps = job["steps"]
    assert steps[0] == {"uses": "actions/checkout@v4", "with": {"fetch-depth": 0}}  # diff reads the merge base
    commands = [step.get("run", "") for step in steps]
    assert commands.index("nimgen check") < commands.index("nimgen validate")
    [comment] = [step for step in steps if "nimgen diff" in step.get("run", "")]
    assert comment["if"] == "github.event_name == 'pull_request'"
    assert '--format markdown' in comment["run"] and "gh pr comment" in comment["run"]
    assert job["permissions"]["pull-requests"] == "write" and flow["permissions"] == {"contents": "read"}
    install = next(step for step in steps if step.get("name") == "Install nimgen")
    assert install["env"]["NIMGEN_SPEC"].startswith("nimgen[validate]==")


def test_pre_commit_files_are_valid_for_pre_commit() -> None:
    hooks = load_manifest(str(PROJECT / ".pre-commit-hooks.yaml"))
    assert [(hook["id"], hook["entry"], hook["pass_filenames"]) for hook in hooks] == \
        [("nimgen-check", "nimgen check", False)]


@pytest.mark.subprocess
def test_pre_commit_hook_runs_nimgen_check(initialised: Path, tmp_path: Path) -> None:
    config = load_config(str(initialised / ".pre-commit-config.yaml"))
    [hook] = config["repos"][0]["hooks"]
    assert hook["entry"] == "nimgen check" and hook["pass_filenames"] is False
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([*GIT, "init", "-q"], cwd=initialised, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=initialised, check=True)
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files"]
    clean = subprocess.run(pre_commit, cwd=initialised, env=env, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    app = initialised / "argocd/prod/apps/models/llama3-8b-instruct.yaml"
    app.write_text(app.read_text().replace("minReplicas: 2", "minReplicas: 3"))
    dirty = subprocess.run(pre_commit, cwd=initialised, env=env, capture_output=True, text=True, check=False)
    assert dirty.returncode == 1
    assert "hand-edited  argocd/prod/apps/models/llama3-8b-instruct.yaml" in dirty.stdout


def test_init_never_replaces_files(initialised: Path) -> None:
    before = tree_digest(initialised)
    again = run("init", initialised, "--repo-url", URL)
    assert again.exit_code == 1
    assert f"error: {initialised} already has .github, .pre-commit-config.yaml, README.md, argocd, charts, " \
           "environments" in again.output
    assert tree_digest(initialised) == before


def test_repository_url_comes_from_the_git_remote(tmp_path: Path) -> None:
    target = tmp_path / "from-remote"
    target.mkdir()
    subprocess.run([*GIT, "init", "-q"], cwd=target, check=True)
    subprocess.run(["git", "remote", "add", "origin", "https://github.com/acme/remote.git"], cwd=target, check=True)
    assert run("init", target).exit_code == 0
    assert "repoURL: https://github.com/acme/remote.git" in (target / "environments/_defaults.yaml").read_text()
    bare = tmp_path / "no-remote"
    result = run("init", bare)
    assert result.exit_code == 1 and "hint: pass --repo-url" in result.output
    assert not bare.exists() or not any(bare.iterdir())


def test_invalid_settings_leave_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "bad"
    result = run("init", target, "--repo-url", URL, "--kubernetes-version", "banana")
    assert result.exit_code == 1
    assert "kubernetesVersion" in result.output
    assert not any(target.iterdir())
    shutil.rmtree(target)


@pytest.mark.subprocess
def test_workflow_diff_step_posts_one_comment_under_the_limit(initialised: Path, tmp_path: Path) -> None:
    """The step's own script, run with bash in a real clone; only `gh` (GitHub's API) is a stand-in."""
    remote = tmp_path / "remote.git"
    subprocess.run([*GIT, "init", "-q", "--bare", str(remote)], check=True)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "init"],
                    ["remote", "add", "origin", str(remote)], ["push", "-q", "origin", "main"],
                    ["checkout", "-q", "-b", "more-models"]):
        subprocess.run([*GIT, *command], cwd=initialised, check=True)
    prod = initialised / "environments/prod.yaml"
    prod.write_text(prod.read_text().replace("replicas: {min: 2, max: 5}", "replicas: {min: 3, max: 5}"))
    assert run("render", "environments/prod.yaml").exit_code == 0
    subprocess.run([*GIT, "fetch", "-q", "origin"], cwd=initialised, check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gh.log"
    (bin_dir / "gh").write_text(f'#!/bin/sh\necho "$@" >> {log}\ncat "$6" >> {log}\n')
    (bin_dir / "gh").chmod(0o755)
    flow = load_plain((initialised / ".github/workflows/nimgen.yml").read_text())
    [step] = [s for s in flow["jobs"]["nimgen"]["steps"] if "nimgen diff" in s.get("run", "")]
    env = {**os.environ, "PR": "7", "BASE_REF": "main", "GH_TOKEN": "unused",
           "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])}
    done = subprocess.run(["bash", "-c", step["run"]], cwd=initialised, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    posted = log.read_text()
    assert posted.startswith("pr comment 7 --edit-last --body-file diff.md")
    assert "### nimgen diff: `dev`" in posted and "### nimgen diff: `prod`" in posted
    assert "1 model changed, +1..0 GPUs" in posted  # prod's minimum went from one replica to two
    assert len((initialised / "diff.md").read_text()) < 65_536
