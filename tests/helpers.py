"""Test helpers: build environment files from text, run the CLI."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from nimgen.cli import main
from nimgen.components import monitoring
from nimgen.gitops import applications

VALID = """\
name: test
cluster:
  name: nim-test
  region: us-west-2
  kubernetesVersion: "1.33"
gitops:
  repoURL: https://github.com/example/nim-gitops.git
models:
  - name: llama3-8b-instruct
    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3
    nodePool: a10g
"""


def write_env(root: Path, text: str, name: str = "test.yaml", *, dedent: bool = True) -> Path:
    """Write an environment file under root/environments/ and return its path."""
    path = root / "environments" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) if dedent else text, encoding="utf-8")
    return path


def run(*args: str | Path) -> Result:
    """Invoke the nimgen CLI in-process."""
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def refused(root: Path, text: str) -> str:
    """The render's output for an environment it must refuse: exit code 1 and nothing written."""
    env = write_env(root, text)
    before = tree_digest(root)
    result = run("render", env)
    assert result.exit_code == 1, result.output
    assert tree_digest(root) == before
    return result.output


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> sha256 of every file under root (to prove nothing changed)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def monitoring_apps(env: Any) -> dict[str, Any]:
    """The monitoring platform's Applications of `env`, by name."""
    names = {monitoring.PROMETHEUS_STACK_RELEASE, monitoring.ADAPTER_RELEASE, monitoring.KEDA_RELEASE,
             monitoring.DCGM_RELEASE, monitoring.DASHBOARDS_RELEASE}
    return {name: app for name, app in applications.by_name(env).items() if name in names}
