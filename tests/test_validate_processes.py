"""validate of a large environment renders and checks its Applications on worker processes: the report is the
one the threads give, and the workers run Go with the collector settings they were started with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from nimgen import helm
from nimgen.environment.load import load_environments
from nimgen.validation import checkpool, runner
from nimgen.validation.checker import Checker
from nimgen.validation.report import FORMATS
from nimgen.validation.runner import Options
from nimgen.validation.runner import validate as run_validate
from nimgen.validation.schemas import SchemaLocation


def _report(repo: Path, schemas: Path) -> tuple[str, list[bool]]:
    """validate of prod as JSON, and whether each environment's Applications went to worker processes."""
    modes: list[bool] = []

    class Recording(checkpool.CheckingRenderer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            modes.append(self.processes)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "CheckingRenderer", Recording)
        report = run_validate([repo / "environments/prod.yaml"], Options((SchemaLocation.parse(str(schemas)),)))
    return FORMATS["json"](report), modes


def test_worker_processes_give_the_report_threads_give(repo_copy: Path, crd_schemas: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Findings of every origin reach the report: a hand-edited template renders a misspelt field.
    service = repo_copy / "charts/nim-llm/templates/service.yaml"
    service.write_text(service.read_text().replace("\nspec:\n", "\nspec:\n  sessionAffinty: None\n", 1))
    on_threads, modes = _report(repo_copy, crd_schemas)
    assert modes == [False]
    monkeypatch.setattr(checkpool, "PROCESSES_FROM", 1)
    on_processes, modes = _report(repo_copy, crd_schemas)
    assert modes == [True]
    assert on_processes == on_threads
    assert '"check": "schema"' in on_threads and "sessionAffinty" in on_threads  # from a worker
    # from the caller: the cross-object rules, and the stale-tree check (itself on a worker, with processes)
    assert '"check": "servicemonitor"' in on_threads and '"check": "stale"' in on_threads


def _renderer(repo: Path, monkeypatch: pytest.MonkeyPatch) -> checkpool.CheckingRenderer:
    monkeypatch.setattr(checkpool, "PROCESSES_FROM", 1)
    [(env, root)] = load_environments([repo / "environments/prod.yaml"])
    return checkpool.CheckingRenderer(root, env, helm.InProcessEngine(), None, Checker(Options(())), 10)


def test_workers_start_with_gos_batch_collector_settings(repo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    with _renderer(repo_copy, monkeypatch) as renderer:
        assert renderer.processes
        assert renderer.call(os.getenv, "GOGC").result() == "off"
        assert renderer.call(os.getenv, "GOMEMLIMIT").result() == "768MiB"
    assert "GOGC" not in os.environ and "GOMEMLIMIT" not in os.environ  # this process's own is left as it was


def test_the_users_go_settings_win(repo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOGC", "150")
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    with _renderer(repo_copy, monkeypatch) as renderer:
        assert renderer.call(os.getenv, "GOGC").result() == "150"
        assert renderer.call(os.getenv, "GOMEMLIMIT").result() == "768MiB"
    assert os.environ["GOGC"] == "150"


def test_few_applications_or_another_engine_stay_on_threads(repo_copy: Path) -> None:
    [(env, root)] = load_environments([repo_copy / "environments/prod.yaml"])
    checker = Checker(Options(()))
    with checkpool.CheckingRenderer(root, env, helm.InProcessEngine(), None, checker,
                                    checkpool.PROCESSES_FROM - 1) as renderer:
        assert not renderer.processes
    binary = helm.BinaryEngine("helm")
    with checkpool.CheckingRenderer(root, env, binary, None, checker, checkpool.PROCESSES_FROM) as renderer:
        assert not renderer.processes
    with checkpool.CheckingRenderer(root, env, helm.InProcessEngine(), None, checker,
                                    checkpool.PROCESSES_FROM) as renderer:
        assert renderer.processes == ((os.cpu_count() or 1) > 1)
