"""`kill -9` at random moments of a large render: what is left is the old tree, the new one, or one that
`check` reports, and one more render repairs it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import run, tree_digest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import synthetic_env

KILLS = 12
SEED = int(os.environ.get("NIMGEN_CRASH_SEED", "20261201"))


def _version(models: int, offset: int, replicas: int) -> str:
    """An environment document: `models` models starting at `offset`, with a replica floor that varies."""
    doc: dict[str, Any] = synthetic_env.environment(models + offset)
    doc["models"] = doc["models"][offset:]
    for entry in doc["models"][::4]:
        entry["replicas"] = {"min": replicas, "max": replicas + 3}
    return yaml.safe_dump(doc, sort_keys=False)


def _render_process(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "nimgen", "render", "-q", "environments/bench.yaml"], cwd=root,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_writes(root: Path, process: subprocess.Popen[bytes], *, swap: bool, timeout: float = 30.0) -> None:
    """Until the render stages files (or, with `swap`, starts renaming them into place), or ends: so that
    kills land inside the write itself."""
    deadline = time.monotonic() + timeout
    folder = root / "argocd" / "bench"
    most = 0
    while time.monotonic() < deadline and process.poll() is None:
        staged = len(list(folder.rglob("*.nimgen-tmp")))
        if staged and not swap or swap and 0 < staged < most:
            return
        most = max(most, staged)


def _recorded(root: Path) -> set[str]:
    record = root / "argocd/bench/generated-files.txt"
    lines = record.read_text().splitlines() if record.exists() else []
    listed = {line.split("  ")[0] for line in lines if line and not line.startswith("#")}
    return listed | {record.relative_to(root).as_posix()}


@pytest.mark.subprocess
def test_kill_minus_nine_never_leaves_an_unreported_tree(tmp_path: Path, monkeypatch: Any) -> None:
    root = tmp_path / "repo"
    env_file = root / "environments" / "bench.yaml"
    env_file.parent.mkdir(parents=True)
    (root / "README.md").write_text("not nimgen's\n")
    monkeypatch.chdir(root)
    versions = [_version(90, 0, 1), _version(90, 30, 2)]
    env_file.write_text(versions[0])
    assert run("render", "-q", "environments/bench.yaml").exit_code == 0
    outside = {path: digest for path, digest in tree_digest(root).items()
               if not path.startswith(("argocd/", "charts/", "environments/"))}
    rng = random.Random(SEED)
    started = time.monotonic()
    process = _render_process(root)
    process.wait(timeout=120)
    full_run = time.monotonic() - started
    outcomes = []
    for attempt in range(KILLS):
        env_file.write_text(versions[(attempt + 1) % 2])
        process = _render_process(root)
        if attempt % 4 == 3:
            _wait_for_writes(root, process, swap=True)  # staged files are being renamed into place
        elif attempt % 2:
            _wait_for_writes(root, process, swap=False)
            time.sleep(rng.uniform(0, 0.05))
        else:
            time.sleep(rng.uniform(0, full_run))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        check = run("check", "environments/bench.yaml")
        assert check.exit_code in (0, 1), f"seed {SEED}, kill {attempt}: {check.output}"
        outcomes.append(check.output)
        # Every file in the environment's folder is listed by its record or named by check: none is forgotten.
        for path in sorted(root.glob("argocd/bench/**/*")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and relative not in _recorded(root):
                assert relative in check.output, f"seed {SEED}, kill {attempt}: {relative} is neither recorded " \
                                                 f"nor reported:\n{check.output}"
        assert "conflict" not in check.output, check.output  # nothing that blocks the next render
        if attempt % 3 == 2:  # the change is reverted after the crash: the next render is of the old version
            env_file.write_text(versions[attempt % 2])
        repaired = run("render", "-q", "environments/bench.yaml")
        assert repaired.exit_code == 0, repaired.output
        assert run("check", "environments/bench.yaml").exit_code == 0
        assert not list(root.rglob("*.nimgen-tmp"))
    assert {path: digest for path, digest in tree_digest(root).items() if path in outside} == outside
    # The series must have hit writes part-way (staging files or a record still in progress left behind), not
    # only renders that had not started writing or had finished.
    if not any("leftover" in output or "interrupted" in output for output in outcomes):
        pytest.fail(f"seed {SEED}: no kill landed inside a write:\n" + "\n".join(outcomes))
