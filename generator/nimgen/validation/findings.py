"""What validation finds, and the report that collects it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "notice"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "notice")


def object_ref(obj: dict[str, Any]) -> str:
    """`Kind namespace/name` (cluster-scoped: `Kind name`) of a manifest."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "<unnamed>")
    namespace = meta.get("namespace")
    return f"{obj.get('kind', '<no kind>')} {namespace}/{name}" if namespace else f"{obj.get('kind', '<no kind>')} {name}"


@dataclass(frozen=True)
class Finding:
    """One thing validation found, placed as precisely as it can be."""

    severity: Severity
    check: str  # e.g. "schema", "cel", "service-selector", "policy/pinned-image"
    message: str
    environment: str = ""
    application: str = ""  # the Argo CD Application that applies the object ("" for the environment itself)
    obj: str = ""  # object_ref() of the manifest
    path: str = ""  # field path inside the manifest, e.g. spec.template.spec.containers[0].image
    hint: str = ""

    def sort_key(self) -> tuple[str, str, str, str, str, str]:
        return (self.environment, self.application, self.obj, self.path, self.check, self.message)

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "check": self.check, "environment": self.environment,
                "application": self.application, "object": self.obj, "path": self.path,
                "message": self.message, "hint": self.hint}


@dataclass
class Report:
    """Everything `nimgen validate` learned about the environments it checked."""

    environments: list[str] = field(default_factory=list)
    applications: int = 0
    # (environment, Application) of every Application checked, for reports that list passes too.
    checked: list[tuple[str, str]] = field(default_factory=list)
    manifests: int = 0
    findings: list[Finding] = field(default_factory=list)
    # CEL rules that could not be evaluated: (schema, rule, reason), listed rather than assumed to pass.
    unevaluated_rules: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def sorted_findings(self) -> list[Finding]:
        return sorted(set(self.findings), key=Finding.sort_key)

    def count(self, severity: Severity) -> int:
        return sum(1 for finding in set(self.findings) if finding.severity == severity)

    @property
    def ok(self) -> bool:
        return self.count("error") == 0
