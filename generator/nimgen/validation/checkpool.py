"""Render and check every Application of an environment: on threads for a few, on worker processes for many.

Helm renders in Go with the GIL released, but what follows it is Python: reading the YAML Helm writes, then the
schema and CEL checks of each object. For an environment of a thousand models that is most of validate's time,
and threads share one interpreter. From PROCESSES_FROM Applications on, each CPU gets a worker process with its
own Helm engine and checker, and only the objects and their findings come back; the caller runs the checks that
need every object at once. A worker costs about half a second to start, more than a small environment takes in
all, so fewer Applications stay on threads (and checked on the caller's thread, as the checker's caches are not
shared across threads).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nimgen import helm
from nimgen.model import Environment
from nimgen.validation.checker import Checker, Options
from nimgen.validation.crdschemas import RenderedCrds
from nimgen.validation.findings import Finding, Report
from nimgen.validation.manifests import Applied
from nimgen.validation.sources import AppResult, RenderJob, RenderPool, cluster_api_versions, render

PROCESSES_FROM = 150
T = TypeVar("T")
# Go's collector, in a worker process that renders a thousand charts and exits: collecting at every doubling of
# the heap costs a third of each render, so it waits for the heap to reach a bound instead (Go's advice for
# batch work: GOGC=off with GOMEMLIMIT). A value the user set wins.
GO_SETTINGS = {"GOGC": "off", "GOMEMLIMIT": "768MiB"}


@dataclass
class Checked:
    """One Application rendered, and the single-object checks of what it renders."""

    result: AppResult
    valid: list[bool] = field(default_factory=list)  # per object: passed its schema (the other checks read it)
    app_valid: bool = True  # the Application itself passed its schema
    applied: Applied | None = None  # the caller's own copy of the Application (set by results())
    findings: list[Finding] = field(default_factory=list)
    unevaluated_rules: set[tuple[str, str, str]] = field(default_factory=set)
    unchecked: dict[tuple[str, str], int] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    def into(self, report: Report, checker: Checker) -> list[Applied]:
        """Add what the checks found to the run's report; the Application and objects that passed their schema."""
        report.findings += self.findings
        report.unevaluated_rules |= self.unevaluated_rules
        for kind, count in self.unchecked.items():
            report.unchecked[kind] = report.unchecked.get(kind, 0) + count
        checker.unreachable.update(self.unreachable)
        app = [self.applied] if self.app_valid and self.applied is not None else []
        return app + [item for item, ok in zip(self.result.objects, self.valid) if ok]


def _checked(app: Applied, result: AppResult, checker: Checker, env: Environment) -> Checked:
    """The schema and CEL checks of an Application and of what it renders (on the worker that rendered it)."""
    report = Report()
    app_valid = checker.check(env, app, report)
    # A custom kind no schema location has meets the CRD its own Application renders, if it renders one.
    crds = RenderedCrds.of(result.name, result.objects)
    valid = [checker.check(env, item, report, crds) for item in result.objects]
    return Checked(result, valid, app_valid, findings=report.findings, unevaluated_rules=report.unevaluated_rules,
                   unchecked=report.unchecked, unreachable=dict(checker.unreachable))


_WORKER: dict[str, Any] = {}


def _start_worker(env: Environment, options: Options, api_versions: tuple[str, ...]) -> None:
    _WORKER.update(engine=helm.InProcessEngine(), checker=Checker(options), env=env, api_versions=api_versions)


def _in_worker(job: RenderJob) -> Checked:
    env: Environment = _WORKER["env"]
    result = render(job, _WORKER["engine"], env.kubernetes_version, _WORKER["api_versions"])
    return _checked(job.applied, result, _WORKER["checker"], env)


@contextmanager
def _go_settings() -> Iterator[None]:
    """GO_SETTINGS in the environment the worker processes start with (Go reads them once, at start)."""
    added = {key: value for key, value in GO_SETTINGS.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class CheckingRenderer(RenderPool):
    """Renders and checks Applications as they are submitted; each comes back as a Checked when it is done."""

    def __init__(self, root: Path, env: Environment, engine: helm.Engine, chart_cache: Path | None,
                 checker: Checker, applications: int) -> None:
        cpus = max(1, os.cpu_count() or 1)
        # Only the in-process engine is rebuilt in a worker; any other (a helm binary, a test's) stays here.
        self.processes = cpus > 1 and applications >= PROCESSES_FROM and isinstance(engine, helm.InProcessEngine)
        pool: Executor | None = None
        if self.processes:
            with _go_settings():
                # spawn, not fork: the Go runtime's threads do not survive a fork.
                pool = ProcessPoolExecutor(max_workers=cpus, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_start_worker,
                                           initargs=(env, checker.options, cluster_api_versions(env)))
        super().__init__(root, env, engine, chart_cache, pool)
        self.checker = checker
        self._applications: dict[Future[Any], Applied] = {}

    def call(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """`function(*args)` on the workers: a module-level function with picklable arguments when they are
        processes."""
        with _go_settings():
            return self._pool.submit(function, *args)

    def submit(self, applied: Applied) -> None:
        job = self._prepare(applied)
        future: Future[Any]
        if self.processes:
            with _go_settings():  # workers start as jobs arrive
                future = self._pool.submit(_in_worker, job)
        else:
            future = self._pool.submit(render, job, self.engine, self.env.kubernetes_version, self.api_versions)
        self._futures.append(future)
        self._applications[future] = applied

    def results(self) -> Iterator[Checked]:
        """Each Application's outcome as it finishes; its Application and objects checked (here, for threads)."""
        for future in as_completed(self._futures):
            applied = self._applications[future]
            outcome = future.result() if self.processes else _checked(applied, future.result(), self.checker, self.env)
            outcome.applied = applied
            yield outcome
