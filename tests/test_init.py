"""`nimgen init`: a new repository that passes check and validate at once, with CI and pre-commit wired up."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from email.message import Message
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT
from helpers import run, tree_digest
from nimgen.commands import init as init_command
from nimgen.commands.init import ACTIONS, HEADER, WORKFLOW, default_nimgen_spec, scaffold_files
from nimgen.errors import UserError
from nimgen.yamlio import load_plain
from packaging.requirements import Requirement
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
    # diff reads the merge base; no step pushes, so no token is left in .git/config
    assert steps[0] == {"uses": f"actions/checkout@{ACTIONS['actions/checkout'][0]}",
                        "with": {"fetch-depth": 0, "persist-credentials": False}}
    commands = [step.get("run", "") for step in steps]
    assert commands.index("nimgen check") < commands.index("nimgen validate")
    [comment] = [step for step in steps if "nimgen diff" in step.get("run", "")]
    assert comment["if"] == "github.event_name == 'pull_request'"
    assert '--output markdown' in comment["run"] and "gh pr comment" in comment["run"]
    assert job["permissions"]["pull-requests"] == "write" and flow["permissions"] == {"contents": "read"}
    # Values from the event reach the script through its environment, never spliced into it.
    assert "${{" not in comment["run"] and set(comment["env"]) == {"GH_TOKEN", "PR", "BASE_REF"}
    install = next(step for step in steps if step.get("name") == "Install nimgen")
    assert install == {"name": "Install nimgen", "run": 'pip install "$NIMGEN_SPEC"',
                       "env": {"NIMGEN_SPEC": install["env"]["NIMGEN_SPEC"]}}


def zizmor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """zizmor, GitHub Actions' security linter, from this environment (the test extra installs it)."""
    found = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    assert found, "zizmor is missing: pip install -e '.[test]'"
    return subprocess.run([found, *map(str, args)], capture_output=True, text=True, check=False)


def test_workflow_passes_zizmor(initialised: Path) -> None:
    """Every audit, the pedantic ones too; offline (the online audits look up advisories and tags on GitHub),
    with no configuration or ignore comment that could hide a finding."""
    done = zizmor("--offline", "--no-config", "--no-ignores", "--persona", "pedantic", "--format", "json",
                  "--no-progress", initialised / str(WORKFLOW))
    assert (done.returncode, json.loads(done.stdout or "null")) == (0, []), done.stdout + done.stderr
    # The same command does report what this workflow avoids.
    bad = initialised / "bad.yml"
    bad.write_text((initialised / str(WORKFLOW)).read_text().replace("persist-credentials: false", "")
                   .replace(ACTIONS["actions/checkout"][0], "v7"))
    done = zizmor("--offline", "--no-config", "--no-ignores", "--persona", "pedantic", "--format", "json",
                  "--no-progress", bad)
    assert sorted(finding["ident"] for finding in json.loads(done.stdout)) == ["artipacked", "unpinned-uses"]


def test_actions_are_pinned_to_a_release_commit_named_beside_it(initialised: Path) -> None:
    uses = re.findall(r"^ +- uses: (.+)$", (initialised / str(WORKFLOW)).read_text(), re.MULTILINE)
    assert uses == [f"{action}@{commit} # {tag}" for action, (commit, tag) in ACTIONS.items()]
    for commit, tag in ACTIONS.values():
        assert re.fullmatch("[0-9a-f]{40}", commit) and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    assert "      pull-requests: write # " in (initialised / str(WORKFLOW)).read_text()


SETTINGS = {"repo_url": URL, "cluster_prefix": "acme", "region": "us-west-2", "kubernetes_version": "1.33"}


def installed_by(files: dict[Any, str]) -> str:
    assert files[WORKFLOW].startswith(HEADER)
    flow = load_plain(files[WORKFLOW])
    [install] = [step for step in flow["jobs"]["nimgen"]["steps"] if step.get("name") == "Install nimgen"]
    spec: str = install["env"]["NIMGEN_SPEC"]
    return spec


def test_ci_installs_this_nimgen_from_its_source_repository_by_default() -> None:
    """No package index has nimgen: CI installs it from the repository the package metadata names, at the tag
    of the installed version (the metadata is pyproject.toml's, from `pip install -e .`)."""
    spec = default_nimgen_spec()
    assert spec == f"nimgen[validate] @ git+https://github.com/nimgen-dev/nimgen@v{version('nimgen')}"
    requirement = Requirement(spec)  # what pip reads
    assert (requirement.name, requirement.extras, requirement.url) == \
        ("nimgen", {"validate"}, f"git+https://github.com/nimgen-dev/nimgen@v{version('nimgen')}")
    assert installed_by(scaffold_files(**SETTINGS)) == spec
    assert installed_by(scaffold_files(**SETTINGS, nimgen_spec="nimgen[validate]==9.9")) == "nimgen[validate]==9.9"


def test_source_repository_is_read_from_any_spelling_of_the_label(monkeypatch: Any) -> None:
    meta = Message()
    meta["Version"] = "1.2.3"
    meta["Project-URL"] = "Homepage, https://example.com/home"
    meta["Project-URL"] = "source , https://git.example.com/team/nimgen/"
    monkeypatch.setattr(init_command, "metadata", lambda name: meta)
    assert default_nimgen_spec() == "nimgen[validate] @ git+https://git.example.com/team/nimgen@v1.2.3"


def test_without_a_source_repository_init_asks_for_the_spec(monkeypatch: Any, tmp_path: Path) -> None:
    meta = Message()
    meta["Version"] = "1.2.3"
    monkeypatch.setattr(init_command, "metadata", lambda name: meta)
    with pytest.raises(UserError, match="names no Source repository") as raised:
        default_nimgen_spec()
    assert "--nimgen-spec" in str(raised.value.hint)

    def missing(name: str) -> Message:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(init_command, "metadata", missing)
    with pytest.raises(UserError, match="without its package metadata"):
        init_command.init_repository(tmp_path / "repo", **SETTINGS)
    assert not any((tmp_path / "repo").iterdir())  # nothing written
    assert installed_by(scaffold_files(**SETTINGS, nimgen_spec="nimgen==1")) == "nimgen==1"  # no metadata needed


def test_nimgen_spec_option_is_what_ci_installs(tmp_path: Path) -> None:
    spec = "nimgen[validate] @ git+https://github.com/acme/nimgen-fork@v0.1.0-acme.1"
    assert run("init", tmp_path / "repo", "--repo-url", URL, "--nimgen-spec", spec).exit_code == 0
    assert installed_by({WORKFLOW: (tmp_path / "repo" / str(WORKFLOW)).read_text()}) == spec


def test_init_command_writes_the_default_spec(initialised: Path) -> None:
    workflow = (initialised / str(WORKFLOW)).read_text()
    assert installed_by({WORKFLOW: workflow}) == default_nimgen_spec()


def test_pre_commit_files_are_valid_for_pre_commit() -> None:
    hooks = load_manifest(str(PROJECT / ".pre-commit-hooks.yaml"))
    assert [(hook["id"], hook["entry"], hook["pass_filenames"]) for hook in hooks] == \
        [("nimgen-check", "nimgen check --index", False)]


@pytest.mark.subprocess
def test_pre_commit_hook_runs_nimgen_check(initialised: Path, tmp_path: Path) -> None:
    config = load_config(str(initialised / ".pre-commit-config.yaml"))
    [hook] = config["repos"][0]["hooks"]
    assert hook["entry"] == "nimgen check --index" and hook["pass_filenames"] is False
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
    assert "**1 model changed; min 2→3, max 5 GPUs" in posted  # prod's minimum went from two replicas to three
    assert len((initialised / "diff.md").read_text()) < 65_536
