"""What validation finds, and the report that collects it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "notice"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "notice")
# Findings that qualify the whole report (a stale tree, CRD schemas that could not be fetched): said first.
UP_FRONT = ("stale", "schema-location")


def object_ref(obj: dict[str, Any]) -> str:
    """`Kind namespace/name` (cluster-scoped: `Kind name`) of a manifest."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}  # a malformed document still gets a name in its finding
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    namespace = meta.get("namespace")
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) and obj.get("kind") else "<no kind>"
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


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
    file: str = ""  # repository-relative file the finding is in, when it is about a file
    line: int = 0  # 1-based line in `file` (0: unknown)

    def sort_key(self) -> tuple[str, str, str, str, int, str, str, str]:
        return (self.environment, self.application, self.file, self.obj, self.line, self.path, self.check,
                self.message)

    def as_dict(self) -> dict[str, str | int]:
        return {"severity": self.severity, "check": self.check, "environment": self.environment,
                "application": self.application, "object": self.obj, "path": self.path,
                "file": self.file, "line": self.line, "message": self.message, "hint": self.hint}

    @property
    def location(self) -> str:
        """`file:line` (or just the file, or "") as editors and CI annotations read it."""
        return f"{self.file}:{self.line}" if self.file and self.line else self.file


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
    # Per environment, how an empty cluster comes up (closure.order): wave, Application, creates, waitsFor.
    bootstrap: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Schema locations that did not answer (location -> why), and the (apiVersion, kind)s left unchecked because of
    # them, with how many objects each: said once for the run, not once per object.
    unreachable: dict[str, str] = field(default_factory=dict)
    unchecked: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def sorted_findings(self) -> list[Finding]:
        """Every finding once: those of UP_FRONT first, then by place."""
        return sorted(set(self.findings), key=lambda f: (f.check not in UP_FRONT, *f.sort_key()))

    def count(self, severity: Severity) -> int:
        return sum(1 for finding in set(self.findings) if finding.severity == severity)

    @property
    def ok(self) -> bool:
        return self.count("error") == 0


# What a rule raises when a manifest's shape is not the one it reads (a kind without a schema, say).
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)


def guarded(check: str, environment: str, rule: Callable[[], Iterable[Finding]]) -> list[Finding]:
    """A rule's findings; a rule tripping over a manifest of unexpected shape is a finding, never a crash."""
    try:
        return list(rule())
    except SHAPE_ERRORS as error:
        return [Finding("error", check, f"check could not finish: {type(error).__name__} {error} on a manifest of "
                        "unexpected shape", environment=environment,
                        hint="fix the schema findings first; if there are none, report this to nimgen with the "
                             "manifest")]
