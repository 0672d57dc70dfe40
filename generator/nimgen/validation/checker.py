"""Schema and CEL checks of single manifests, each schema and CEL program compiled once per process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nimgen.model import Environment
from nimgen.validation.crdschemas import RenderedCrds
from nimgen.validation.findings import Finding, Report, Severity, object_ref
from nimgen.validation.manifests import Applied
from nimgen.validation.schemas import MissingSchema, SchemaLocation, Schemas, UnreachableSchema


@dataclass(frozen=True)
class Options:
    """How to validate: where CRD schemas are, where external charts are cached."""

    locations: tuple[SchemaLocation, ...]
    chart_cache: Path | None = None  # None: each repository's charts/upstream/, when it has one
    ignore_missing_schemas: bool = False


class Checker:
    """Schema and CEL checks with every schema and CEL program compiled once per run."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._schemas: dict[str, Schemas] = {}
        self._cel: dict[tuple[str, str], Any] = {}  # (Kubernetes version, schema source) -> CEL program
        self.unreachable: dict[str, str] = {}  # shared by every Schemas: a location that did not answer is asked once

    def schemas(self, kubernetes_version: str) -> Schemas:
        if kubernetes_version not in self._schemas:
            self._schemas[kubernetes_version] = Schemas(kubernetes_version, list(self.options.locations),
                                                        self.unreachable)
        return self._schemas[kubernetes_version]

    def check(self, env: Environment, applied: Applied, report: Report, crds: RenderedCrds | None = None) -> bool:
        """Schema and CEL findings of one manifest; False when its schema rejects it (other checks skip it).

        `crds` are the CRDs the manifest's Application renders: a custom kind no schema location has is checked
        against its CRD there, as the API server will check it."""
        obj = applied.obj
        schemas = self.schemas(env.kubernetes_version)
        place: dict[str, Any] = {"environment": env.name, "application": applied.application, "obj": object_ref(obj)}
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not api_version or not kind or not isinstance(api_version, str) or not isinstance(kind, str):
            report.add(Finding("error", "schema", "manifest without apiVersion or kind", path=applied.file, **place))
            return False
        try:
            errors = schemas.errors(obj, crds)
        except UnreachableSchema:
            # Said once for the run (schema_location_findings), with every kind it left unchecked.
            report.unchecked[(api_version, kind)] = report.unchecked.get((api_version, kind), 0) + 1
            return True
        except MissingSchema as missing:
            severity: Severity = "notice" if self.options.ignore_missing_schemas else "error"
            report.add(Finding(severity, "schema", str(missing), hint="give --schema-location DIR (or set "
                               "NIMGEN_SCHEMA_LOCATION) holding {group}/{kind}_{version}.json, or pass "
                               "--ignore-missing-schemas", **place))
            return True  # unchecked, not rejected: the cross-object checks still read it
        for path, message in errors:
            report.add(Finding("error", "schema", message, path=path, **place))
        # The API server evaluates CEL rules on objects its schema accepted; so does validate.
        if not errors and not schemas.is_builtin(api_version, kind):
            self._check_cel(schemas.version, schemas.crd_source(api_version, kind, crds), applied, report, place)
        return not errors

    def _check_cel(self, version: str, source: tuple[str, dict[str, Any]], applied: Applied, report: Report,
                   place: dict[str, Any]) -> None:
        """The CEL rules of a custom kind's schema (`source`: its cache key and schema) on one object."""
        from nimgen.validation.cel import CelProgram

        key = (version, source[0])
        if key not in self._cel:
            schema = source[1]
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
            report.unevaluated_rules.add((f"{applied.obj['kind']} ({applied.obj['apiVersion']})", rule.rule,
                                          rule.reason))
