"""Prometheus' own tools for the tests: finding promtool and prometheus, and nimgen's rule groups as files.

The binaries come from Debian's `prometheus` package (`.ci/run` installs it). Without them a test skips on a
developer's machine and fails in CI (CI=true, or NIMGEN_REQUIRE_PROMTOOL=1): there, a missing engine is a
broken setup, not a reason to pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_ENVIRONMENTS, EXAMPLE_NAMES
from nimgen.environment.load import load_environment
from nimgen.model import Environment
from nimgen.yamlio import dump


def required() -> bool:
    """Whether a missing binary must fail the run rather than skip."""
    return (os.environ.get("NIMGEN_REQUIRE_PROMTOOL") == "1"
            or os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"))


def binary(name: str) -> str:
    """Path of `promtool` or `prometheus` ($NIMGEN_PROMTOOL / $NIMGEN_PROMETHEUS, else PATH); skip or fail."""
    found = shutil.which(os.environ.get(f"NIMGEN_{name.upper()}") or name)
    if not found:
        reason = (f"{name} not found (Debian: apt-get install --no-install-recommends prometheus; "
                  f"or set NIMGEN_{name.upper()})")
        if required():
            pytest.fail(f"{reason}; CI requires it")
        pytest.skip(reason)
    return found


def run(tool: str, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """One promtool command; its output is what a failing assertion shows."""
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def environment_with_observability(name: str, root: Path) -> Environment:
    """An example environment; one without observability (dev) gets it turned on, so its models have rules too."""
    env = load_environment(EXAMPLE_ENVIRONMENTS / f"{name}.yaml", EXAMPLE_ENVIRONMENTS.parent)
    if env.observability is not None:
        return env
    folder = root / "environments"
    folder.mkdir(parents=True, exist_ok=True)
    for source in EXAMPLE_ENVIRONMENTS.glob("*.yaml"):
        shutil.copy(source, folder / source.name)
    path = folder / f"{name}.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "observability:\n  enabled: true\n", encoding="utf-8")
    env = load_environment(path, root)
    assert env.observability is not None
    return env


def example_names() -> list[str]:
    """Every example environment (dev, prod)."""
    return list(EXAMPLE_NAMES)


def write_rules(path: Path, groups: list[dict[str, Any]]) -> Path:
    """A Prometheus rule file holding nimgen's groups exactly as the PrometheusRule carries them."""
    path.write_text(dump({"groups": groups}), encoding="utf-8")
    return path
