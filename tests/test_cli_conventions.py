"""What every command shares: environment selection (globs, layers, none given), finding the repository from a
subfolder, -o/--output FORMAT, --debug and --no-color after the subcommand, NO_COLOR, completion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import run, tree_digest
from nimgen.cli import main


def _layers_and_envs(repo: Path) -> list[Path]:
    """What a shell's `environments/*.yaml` expands to: the layer file first."""
    return sorted((repo / "environments").glob("*.yaml"))


def test_a_glob_that_matches_the_defaults_layer_skips_it_with_a_note(repo: Path) -> None:
    files = _layers_and_envs(repo)
    assert files[0].name == "_defaults.yaml"
    result = run("render", "-q", *files)
    assert result.exit_code == 0, result.output
    assert f"note: skipped {files[0]}: a layer merged under every environment, not an environment" in result.output
    assert "dev: rendered" in result.output and "prod: rendered" in result.output
    checked = run("check", *files)
    assert checked.exit_code == 0, checked.output
    assert "note: skipped" in checked.output and "prod: up to date" in checked.output


def test_only_layer_files_is_an_error(repo: Path) -> None:
    before = tree_digest(repo)
    for command in ("render", "check", "validate"):
        result = run(command, repo / "environments" / "_defaults.yaml")
        assert result.exit_code == 1, (command, result.output)
        assert "only layer files given" in result.output
        assert "pass environment files such as environments/prod.yaml, or none for all of them" in result.output
    assert tree_digest(repo) == before


@pytest.mark.parametrize("command", ["plan", "diff", "bench"])
def test_a_one_environment_command_refuses_a_layer(repo: Path, command: str) -> None:
    result = run(command, repo / "environments" / "_defaults.yaml")
    assert result.exit_code == 1
    assert "_defaults.yaml is a layer merged under every environment, not an environment" in result.output
    assert "Traceback" not in result.output


def test_render_without_files_renders_every_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    result = run("render", "-q")
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.output.splitlines() if ": rendered" in line] == ["dev", "prod"]
    assert (repo / "argocd" / "dev" / "root.yaml").is_file() and (repo / "argocd" / "prod" / "root.yaml").is_file()
    assert run("check").exit_code == 0


def test_commands_find_the_repository_from_a_subfolder(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    assert run("render", "-q").exit_code == 0
    monkeypatch.chdir(repo / "argocd" / "prod" / "apps")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.output == "dev: up to date\nprod: up to date\n"
    (repo / "argocd" / "prod" / "README.md").write_text("edited\n")
    drifted = run("check")
    assert drifted.exit_code == 1
    # The fix is the command to run from the repository root, whichever folder check ran in.
    assert "fix: nimgen render environments/prod.yaml" in drifted.output
    rendered = run("render", "-q")
    assert rendered.exit_code == 0 and "prod: rendered" in rendered.output
    assert run("check").exit_code == 0


def test_outside_any_repository_the_message_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for command in ("render", "check", "validate"):
        result = run(command)
        assert result.exit_code == 1
        assert f"no environments/ folder in {tmp_path.resolve()} or any folder above it" in result.output
        assert "pass ENV_FILE arguments" in result.output
    assert list(tmp_path.iterdir()) == []


def test_output_is_the_format_option_of_every_reporting_command(rendered_repo: Path) -> None:
    env = rendered_repo / "environments" / "prod.yaml"
    helps = {command: run(command, "--help").output for command in ("render", "check", "plan", "validate", "diff")}
    assert "-o, --output [text|json]" in helps["render"]
    assert "-o, --output [text|json]" in helps["check"]
    assert "-o, --output [text|json]" in helps["plan"]
    assert "-o, --output [text|json|junit]" in helps["validate"]
    assert "-o, --output [text|markdown|json]" in helps["diff"]
    assert "--format" not in helps["diff"]
    assert json.loads(run("plan", "-o", "json", env).output)["environment"] == "prod"


def test_render_json_reports_each_environment_and_its_changes(repo: Path) -> None:
    env = repo / "environments" / "dev.yaml"
    result = CliRunner().invoke(main, ["render", "-o", "json", str(env)], catch_exceptions=False)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["dryRun"] is False
    [report] = data["environments"]
    assert report["environment"] == "dev" and report["root"] == str(repo)
    assert report["counts"]["create"] == len(report["changes"]) > 0 and report["counts"]["delete"] == 0
    assert {"action": "create", "path": "argocd/dev/root.yaml"} in report["changes"]
    again = json.loads(CliRunner().invoke(main, ["render", "-o", "json", str(env)]).stdout)
    assert again["environments"][0]["changes"] == [] and again["environments"][0]["counts"]["create"] == 0


def test_check_json_names_each_drifted_file_with_its_fix(rendered_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(rendered_repo, repo)
    (repo / "argocd" / "prod" / "README.md").write_text("edited\n")
    result = run("check", "-o", "json", repo / "environments" / "dev.yaml", repo / "environments" / "prod.yaml")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["upToDate"] is False
    dev, prod = data["environments"]
    assert dev == {"environment": "dev", "source": "environments/dev.yaml", "upToDate": True, "files": [],
                   "fixes": []}
    assert prod["upToDate"] is False
    assert prod["files"] == [{"path": "argocd/prod/README.md", "kind": "hand-edited",
                              "why": "edited by hand after nimgen wrote it; change the environment file instead"}]
    assert prod["fixes"] == ["nimgen render environments/prod.yaml"]


def _crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make plan fail the way a bug in nimgen would: an unexpected exception."""
    import nimgen.commands.render

    def broken(_env_file: Path) -> None:
        raise RuntimeError("deliberate")

    monkeypatch.setattr(nimgen.commands.render, "plan_environment", broken)


@pytest.mark.parametrize("args", [["--debug", "plan", "E"], ["plan", "--debug", "E"], ["plan", "E", "--debug"]])
def test_debug_is_accepted_before_or_after_the_subcommand(monkeypatch: pytest.MonkeyPatch, rendered_repo: Path,
                                                          args: list[str]) -> None:
    _crash(monkeypatch)
    env = str(rendered_repo / "environments" / "prod.yaml")
    result = CliRunner().invoke(main, [env if arg == "E" else arg for arg in args])
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr and "RuntimeError: deliberate" in result.stderr
    without = CliRunner().invoke(main, ["plan", env])
    assert without.exit_code == 3 and "Traceback" not in without.stderr
    assert "internal error: RuntimeError: deliberate" in without.stderr


def _error_output(*args: str, env: dict[str, str] | None = None) -> str:
    """stderr of a command that fails with a user error, on a terminal that takes colour."""
    result = CliRunner().invoke(main, list(args), color=True, env=env)
    assert result.exit_code == 1, result.output
    return result.stderr


def test_errors_are_red_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    missing = str(tmp_path / "environments" / "nothing.yaml")
    assert "\x1b[31merror:" in _error_output("plan", missing)
    for args, env in [(("--no-color", "plan", missing), None), (("plan", "--no-color", missing), None),
                      (("plan", missing), {"NO_COLOR": "1"})]:
        text = _error_output(*args, env=env)
        assert "error:" in text and "\x1b[" not in text, args


def _committed(rendered_repo: Path, tmp_path: Path) -> Path:
    """A git repository of the rendered examples, committed on main: dev's environment file, for diff."""
    repo = tmp_path / "repo"
    shutil.copytree(rendered_repo, repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    return repo / "environments" / "dev.yaml"


def test_diff_colours_text_only_on_a_terminal(rendered_repo: Path, tmp_path: Path) -> None:
    env = _committed(rendered_repo, tmp_path)
    env.write_text(env.read_text().replace("max: 1", "max: 2", 1))
    coloured = CliRunner().invoke(main, ["diff", str(env), "--base", "main"], color=True)
    assert coloured.exit_code == 0, coloured.output
    assert "\x1b[" in coloured.output
    for args, extra in [(["diff", str(env), "--base", "main", "--no-color"], None),
                        (["diff", str(env), "--base", "main"], {"NO_COLOR": "1"})]:
        plain = CliRunner().invoke(main, args, color=True, env=extra)
        assert plain.exit_code == 0 and "\x1b[" not in plain.output and plain.output.strip()


def test_diff_exit_code(rendered_repo: Path, tmp_path: Path) -> None:
    env = _committed(rendered_repo, tmp_path)
    assert run("diff", env, "--base", "main", "--exit-code").exit_code == 0
    assert run("diff", env, "--base", "main").exit_code == 0
    env.write_text(env.read_text().replace("max: 1", "max: 2", 1))
    assert run("diff", env, "--base", "main", "--exit-code").exit_code == 1
    assert run("diff", env, "--base", "main").exit_code == 0


def test_bash_completion_completes_commands_options_and_environments(repo: Path) -> None:
    script = CliRunner().invoke(main, ["completion", "bash"]).output
    assert "_NIMGEN_COMPLETE=bash_complete" in script
    bin_dir = repo / "bin"
    bin_dir.mkdir()
    # The script calls `nimgen`: the one of this interpreter, whatever is on PATH.
    shim = bin_dir / "nimgen"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m nimgen \"$@\"\n")
    shim.chmod(0o755)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        program = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; "
                   "_nimgen_completion nimgen; printf '%s\\n' \"${COMPREPLY[@]}\"")
        done = subprocess.run(["bash", "-c", program], cwd=repo, capture_output=True, text=True, check=True,
                              env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                                   "PYTHONPATH": os.pathsep.join(sys.path)})
        return done.stdout.split()

    assert "render" in complete("nimgen", "ren")
    assert complete("nimgen", "plan", "--o") == ["--output"]
    assert complete("nimgen", "plan", "env") == ["environments/dev.yaml", "environments/prod.yaml"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_completion_scripts_for_zsh_and_fish(shell: str) -> None:
    result = run("completion", shell)
    assert result.exit_code == 0 and "_NIMGEN_COMPLETE" in result.output and f"{shell}_complete" in result.output


def test_the_readme_usage_names_only_real_commands_and_options() -> None:
    """The README's command line block is checked against each command's --help, so it cannot drift."""
    import re

    from conftest import PROJECT

    readme = (PROJECT / "README.md").read_text()
    block = readme.split("## Command line\n\n```\n", 1)[1].split("```", 1)[0]
    usage: dict[str, str] = {}
    command = ""
    for line in block.splitlines():
        if line.startswith("nimgen "):
            command = line.split()[1]
            usage[command] = line
        else:
            usage[command] += " " + line.strip()
    assert set(usage) - {"--version"} == set(main.commands)  # type: ignore[attr-defined]
    for name, line in usage.items():
        if name == "--version":
            continue
        help_text = run(name, "--help").output
        for option in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", line.split(" ", 2)[2] if line.count(" ") > 1 else ""):
            assert option in help_text, (name, option)


def test_json_keys_are_camel_case_with_units_spelled_out() -> None:
    from nimgen.jsonreport import camel, camel_keys

    assert [camel(k) for k in ("gpus_per_replica", "latency_s", "tokens_per_s", "ttft_p95_s", "model", "_x",
                               "argocd/prod/x_y.yaml", "model-001")] == [
        "gpusPerReplica", "latencySeconds", "tokensPerSecond", "ttftP95Seconds", "model", "_x",
        "argocd/prod/x_y.yaml", "model-001"]
    assert camel_keys({"up_to_date": [{"wall_s": 1}], 3: ("a_b",)}) == {"upToDate": [{"wallSeconds": 1}], 3: ["a_b"]}
