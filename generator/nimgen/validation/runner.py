"""Validate environments as committed: render what Argo CD will apply, then check every manifest and their links."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nimgen import helm
from nimgen.environment.load import load_environments
from nimgen.model import Environment
from nimgen.validation import (
    assignments,
    chartvalues,
    closure,
    crossref,
    determinism,
    ownership,
    paths,
    policy,
    staleness,
)
from nimgen.validation.checker import Checker, Options
from nimgen.validation.checkpool import CheckingRenderer
from nimgen.validation.findings import Finding, Report, Severity, object_ref
from nimgen.validation.manifests import is_application, manifest_files, read_argocd
from nimgen.validation.sources import AppResult, chart_cache_of

__all__ = ["OFFLINE_HINT", "Options", "schema_location_findings", "validate"]


def _render_findings(env: Environment, results: list[AppResult]) -> list[Finding]:
    found = []
    for result in results:
        place: dict[str, Any] = {"environment": env.name, "application": result.name,
                                 "obj": object_ref(result.app)}
        if result.notice:
            found.append(Finding("notice", "render", result.notice, **place))
        if result.error:
            found.append(Finding("error", "render", result.error, path="spec.source", **place))
        found += [Finding("error", "render", issue.message, file=issue.file, line=issue.line,
                          hint="Argo CD cannot apply what the chart renders: fix the template", **place)
                  for issue in result.issues]
    return found


def _determinism_findings(env: Environment, root: Path, charts: dict[str, list[str]],
                          scanned: dict[Path, list[determinism.Use]]) -> list[Finding]:
    found = []
    for chart, apps in sorted(charts.items()):
        if root / chart not in scanned:  # charts are shared by environments: read each once per run
            scanned[root / chart] = determinism.scan(root, chart)
        names = ", ".join(sorted(set(apps))[:3]) + (f" and {len(set(apps)) - 3} more" if len(set(apps)) > 3 else "")
        found += [Finding("error", "determinism", f"calls {use.function}, which {use.why}: Argo CD renders the chart "
                          f"at every refresh and would apply a different object each time (Applications {names})",
                          environment=env.name, file=use.file, line=use.line,
                          hint="render the value once in nimgen (environment file or values) or reference an "
                               "existing Secret; never generate it in the template")
                  for use in scanned[root / chart]]
    return found


def _environment(env: Environment, root: Path, options: Options, engine: helm.Engine, checker: Checker,
                 scanned: dict[Path, list[determinism.Use]], report: Report) -> None:
    """Everything validate checks for one environment, into the report."""
    results: list[AppResult] = []
    chart_cache = chart_cache_of(root, options.chart_cache)
    with CheckingRenderer(root, env, engine, chart_cache, checker, manifest_files(root, env)) as renderer:
        # With worker processes, one of them also renders the environment again for the stale-tree check (seconds
        # for a large one, unless `nimgen check` or `render` just did).
        stale = renderer.call(staleness.check, env, root) if renderer.processes else None
        # Each Application goes to the workers as soon as its file is read, while the others are read.
        tree = read_argocd(root, env, on_read=lambda item: renderer.submit(item) if is_application(item) else None)
        manifests = tree.manifests
        apps = [item for item in manifests if is_application(item)]
        # Checked while Helm renders on the workers, then each result as it arrives.
        for finding in [*tree.findings, *ownership.check(env, root), *paths.check(env, root, manifests),
                        *assignments.check(env, root, manifests), *chartvalues.check(env, manifests, chart_cache),
                        *(stale.result() if stale else staleness.check(env, root))]:
            report.add(finding)
        # The Applications are checked with what they render (on the workers, with processes).
        valid = [item for item in manifests if not is_application(item) and checker.check(env, item, report)]
        for outcome in renderer.results():
            results.append(outcome.result)
            valid += outcome.into(report, checker)
        local_charts = renderer.local_charts
    report.applications += len(apps)
    report.checked += [(env.name, result.name) for result in results]
    report.manifests += len(manifests) + sum(len(result.objects) for result in results)
    checked = {id(item) for item in valid}
    # Cross-object and pod rules read what passed its schema: a malformed object already failed the run.
    passed = [replace(result, objects=[o for o in result.objects if id(o) in checked]) for result in results]
    closure_findings, report.bootstrap[env.name] = closure.check_and_order(
        env, [m for m in manifests if id(m) in checked], passed)
    for finding in [*_render_findings(env, results), *_determinism_findings(env, root, local_charts, scanned),
                    *crossref.check(env, [m for m in manifests if id(m) in checked], passed),
                    *closure_findings,
                    *policy.check(env, valid, manifests + [o for r in results for o in r.objects],
                                  policy.generated_secrets(env), policy.waivers(env))]:
        report.add(finding)


def validate(env_files: list[Path], options: Options, engine: helm.Engine | None = None) -> Report:
    """Check each environment's committed Applications and everything they apply."""
    loaded = load_environments(env_files)
    engine = engine or helm.engine()
    checker = Checker(options)
    report = Report()
    scanned: dict[Path, list[determinism.Use]] = {}
    for env, root in loaded:
        report.environments.append(env.name)
        _environment(env, root, options, engine, checker, scanned, report)
    report.unreachable = dict(checker.unreachable)
    for finding in schema_location_findings(report, options.ignore_missing_schemas):
        report.add(finding)
    return report


OFFLINE_HINT = ("offline or air-gapped: give --schema-location DIR or set NIMGEN_SCHEMA_LOCATION=DIR, a folder of "
                "{group}/{kind}_{version}.json files (kubeconform's layout, e.g. a checkout of "
                "github.com/datreeio/CRDs-catalog)")


def schema_location_findings(report: Report, ignore_missing_schemas: bool) -> list[Finding]:
    """One finding for the run when a remote schema location did not answer: which, why, and every kind it left
    unchecked (an error, a notice with --ignore-missing-schemas; a notice when other locations held them all)."""
    if not report.unreachable:
        return []
    where = " and ".join(f"{location} ({reason})" for location, reason in sorted(report.unreachable.items()))
    plural = "s" if len(report.unreachable) > 1 else ""
    if not report.unchecked:
        return [Finding("notice", "schema-location", f"cannot reach the schema location{plural} {where}; the other "
                        "locations held every schema the run needed", hint=OFFLINE_HINT)]
    by_version: dict[str, list[str]] = {}
    for api_version, kind in sorted(report.unchecked):
        by_version.setdefault(api_version, []).append(kind)
    kinds = "; ".join(f"{', '.join(names)} ({api_version})" for api_version, names in by_version.items())
    objects = sum(report.unchecked.values())
    severity: Severity = "notice" if ignore_missing_schemas else "error"
    return [Finding(severity, "schema-location", f"cannot reach the schema location{plural} {where}, so "
                    f"{objects} object{'s' if objects != 1 else ''} of {len(report.unchecked)} "
                    f"kind{'s' if len(report.unchecked) != 1 else ''} went unchecked against a CRD schema: {kinds}",
                    hint=OFFLINE_HINT + ("" if ignore_missing_schemas else
                                         "; or pass --ignore-missing-schemas to make this a notice"))]
