"""Validate environments as committed: render what Argo CD will apply, then check every manifest and their links."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nimgen import helm
from nimgen.environment import load_environment
from nimgen.errors import ConfigError, Problem
from nimgen.model import Environment
from nimgen.repository import default_root
from nimgen.validation import crossref, policy
from nimgen.validation.findings import Finding, Report, Severity, object_ref
from nimgen.validation.schemas import MissingSchema, SchemaLocation, Schemas
from nimgen.validation.sources import (
    Applied,
    AppResult,
    Renderer,
    TreeError,
    is_application,
    iter_argocd_manifests,
)


@dataclass(frozen=True)
class Options:
    """How to validate: where CRD schemas are, where external charts are cached."""

    locations: tuple[SchemaLocation, ...]
    chart_cache: Path | None = None
    ignore_missing_schemas: bool = False


class _Checker:
    """Schema and CEL checks with every schema and CEL program compiled once per run."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._schemas: dict[str, Schemas] = {}
        self._cel: dict[tuple[str, str, str], Any] = {}

    def schemas(self, kubernetes_version: str) -> Schemas:
        if kubernetes_version not in self._schemas:
            self._schemas[kubernetes_version] = Schemas(kubernetes_version, list(self.options.locations))
        return self._schemas[kubernetes_version]

    def check(self, env: Environment, applied: Applied, report: Report) -> None:
        obj = applied.obj
        schemas = self.schemas(env.kubernetes_version)
        place = {"environment": env.name, "application": applied.application, "obj": object_ref(obj)}
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        if not api_version or not kind:
            report.add(Finding("error", "schema", "manifest without apiVersion or kind", path=applied.file, **place))
            return
        try:
            errors = schemas.errors(obj)
        except MissingSchema as missing:
            severity: Severity = "notice" if self.options.ignore_missing_schemas else "error"
            report.add(Finding(severity, "schema", str(missing), hint="give --schema-location DIR (or set "
                               "NIMGEN_SCHEMA_LOCATION) holding {group}/{kind}_{version}.json, or pass "
                               "--ignore-missing-schemas", **place))
            return
        for path, message in errors:
            report.add(Finding("error", "schema", message, path=path, **place))
        if not schemas.is_builtin(api_version, kind):
            self._check_cel(schemas, api_version, kind, applied, report, place)

    def _check_cel(self, schemas: Schemas, api_version: str, kind: str, applied: Applied, report: Report,
                   place: dict[str, str]) -> None:
        from nimgen.validation.cel import CelProgram

        key = (schemas.version, api_version, kind)
        if key not in self._cel:
            schema = schemas.crd_schema(api_version, kind)
            # Most CRDs carry no rule at all (Argo CD's, Prometheus Operator's): skip walking their schema.
            has_rules = "x-kubernetes-validations" in json.dumps(schema)
            self._cel[key] = CelProgram.from_schema(schema) if has_rules else None
        program = self._cel[key]
        if program is None:
            return
        violations, unevaluated = program.check(applied.obj)
        for violation in violations:
            report.add(Finding("error", "cel", violation.message, path=violation.path.removeprefix("$.").lstrip("$"),
                               hint=f"CRD rule: {violation.rule}", **place))
        for rule in (*program.unevaluated, *unevaluated):
            report.unevaluated_rules.add((f"{kind} ({api_version})", rule.rule, rule.reason))


def _render_findings(env: Environment, results: list[AppResult], report: Report) -> None:
    for result in results:
        place = {"environment": env.name, "application": result.name, "obj": object_ref(result.app)}
        if result.notice:
            report.add(Finding("notice", "render", result.notice, **place))
        if result.error:
            report.add(Finding("error", "render", result.error, path="spec.source", **place))


def validate(env_files: list[Path], options: Options, engine: helm.Engine | None = None) -> Report:
    """Check each environment's committed Applications and everything they apply."""
    loaded: list[tuple[Environment, Path]] = []
    problems: list[Problem] = []
    for env_file in env_files:
        root = default_root(env_file)
        try:
            loaded.append((load_environment(env_file, root), root))
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    engine = engine or helm.engine()
    checker = _Checker(options)
    report = Report()
    for env, root in loaded:
        report.environments.append(env.name)
        manifests: list[Applied] = []
        results: list[AppResult] = []
        apps = 0
        with Renderer(root, env, engine, options.chart_cache) as renderer:
            try:
                # Each Application starts rendering as soon as its file is read.
                for item in iter_argocd_manifests(root, env):
                    manifests.append(item)
                    if is_application(item):
                        renderer.submit(item)
                        apps += 1
            except TreeError as trouble:
                report.add(Finding("error", "tree", str(trouble), environment=env.name,
                                   hint=f"run 'nimgen render {env.source}' and commit the result"))
                continue
            # Checked while Helm renders on the worker threads, then each result as it arrives.
            for item in manifests:
                checker.check(env, item, report)
            for result in renderer.results():
                results.append(result)
                for item in result.objects:
                    checker.check(env, item, report)
        report.applications += apps
        report.checked += [(env.name, result.name) for result in results]
        report.manifests += len(manifests) + sum(len(result.objects) for result in results)
        _render_findings(env, results, report)
        for finding in crossref.check(env, manifests, results):
            report.add(finding)
        for finding in policy.check(env, manifests, results):
            report.add(finding)
    return report
