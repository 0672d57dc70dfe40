"""The real Helm engine, run the way Argo CD runs it (`helm template`): in-process, or a `helm` binary.

helm-python-sdk embeds Helm v4's Go SDK behind a C ABI; without it a `helm` binary on PATH does the
same job one process per render. Rendering does not need Helm; validating what Argo CD will apply does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nimgen.errors import NimgenError


class HelmError(NimgenError):
    """Helm refused a chart or values (lint error, template failure, schema violation)."""


@dataclass(frozen=True)
class LintMessage:
    """One finding of `helm lint`."""

    severity: str  # "info" | "warning" | "error"
    path: str
    message: str


class Engine(Protocol):
    """What nimgen needs from Helm."""

    name: str

    def template(
        self, chart: Path, values: dict[str, Any], *, release: str, namespace: str, kube_version: str,
        api_versions: tuple[str, ...] = (),
    ) -> dict[str, str]:
        """Render like `helm template`; map template path to manifest text."""

    def lint(self, chart: Path, values: dict[str, Any], *, kube_version: str, strict: bool = True) -> list[LintMessage]:
        """Run `helm lint` and return its findings."""


def _kube(version: str) -> str:
    """Helm wants a full semantic version: "1.33" -> "v1.33.0"."""
    text = version.lstrip("v")
    return f"v{text}.0" if text.count(".") == 1 else f"v{text}"


SCHEMA_FILE = "values.schema.json"
_DRAFT_7 = {"http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema",
            "https://json-schema.org/draft-07/schema#", "https://json-schema.org/draft-07/schema"}


@dataclass(frozen=True)
class _Loaded:
    """A chart loaded once: as it is, and, when its values schema can be checked apart, without the schema."""

    full: Any
    templates_only: Any = None
    validator: Any = None  # jsonschema_rs.Draft7Validator of the chart's values.schema.json
    # The crds/ files of the chart and its subcharts ({name, filename, data}), read once: most charts have none.
    crds: tuple[dict[str, str], ...] = ()


def _precheckable_schema(chart: Path, loaded: Any) -> dict[str, Any] | None:
    """The chart's values schema when nimgen can check it exactly as Helm does, else None.

    That is a chart folder whose schema declares JSON Schema draft 7 (so no default draft is guessed) and that
    has no subcharts (Helm checks each subchart's values against the subchart's own schema as well).
    """
    if not chart.is_dir() or loaded.dependencies:  # an archive is not copied without its schema here
        return None
    schema = loaded.schema
    if not isinstance(schema, dict) or schema.get("$schema") not in _DRAFT_7:
        return None
    return schema


def _enabled_dependencies(metadata: dict[str, Any], values: dict[str, Any]) -> set[str]:
    """The chart's direct dependencies Helm keeps for these (coalesced) values: tags first, then the first
    `condition` path that holds a boolean (Helm's processDependencyTags and processDependencyConditions)."""
    tags = values.get("tags") if isinstance(values.get("tags"), dict) else None
    kept = set()
    for dependency in metadata.get("dependencies") or []:
        enabled = True
        if tags is not None:
            states = {tags[tag] for tag in dependency.get("tags") or [] if isinstance(tags.get(tag), bool)}
            enabled = True in states or not states
        for path in str(dependency.get("condition") or "").split(","):
            value: Any = values
            for key in path.strip().split(".") if path.strip() else ["\0"]:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, bool):
                enabled = value
                break
        if enabled:
            kept.add(str(dependency.get("alias") or dependency.get("name")))
    return kept


def _crd_kept(filename: str, kept: set[str], rendered: dict[str, str]) -> bool:
    """Whether `helm template --include-crds` prints a crds/ file: the chart's own always; a subchart's when Helm
    keeps it. Below the first level (charts/a/charts/b/crds), a kept subchart is one whose templates rendered."""
    parts = filename.split("/")
    if len(parts) < 4 or parts[1] != "charts":
        return True  # <chart>/crds/...
    if parts[2] not in kept:
        return False
    owner = filename.rsplit("/crds/", 1)[0]
    return owner.count("/charts/") == 1 or any(key.startswith(f"{owner}/templates/") for key in rendered)


class InProcessEngine:
    """helm-python-sdk: Helm v4's Go SDK in this process."""

    name = "helm-python-sdk"

    def __init__(self) -> None:
        import helm_python

        self._helm = helm_python
        # Chart.render() does not expose kube_version/api_versions; the native call takes
        # the same options `helm template --kube-version --api-versions` sets.
        from helm_python import _native

        self._native = _native
        # Loaded charts are immutable and thread-safe: load each once, render it many times.
        self._charts: dict[Path, _Loaded] = {}
        self._lock = threading.Lock()

    def _chart(self, chart: Path) -> _Loaded:
        with self._lock:
            if chart not in self._charts:  # keyed as given too: resolving a path costs a system call per part
                key = chart.resolve()
                if key not in self._charts:
                    self._charts[key] = self._load(key)
                self._charts[chart] = self._charts[key]
            return self._charts[chart]

    def _load(self, chart: Path) -> _Loaded:
        full = self._helm.Chart.load(str(chart))
        crds = tuple(full.crds)
        schema = _precheckable_schema(chart, full)
        if schema is None:
            return _Loaded(full, crds=crds)
        import jsonschema_rs

        try:
            validator = jsonschema_rs.Draft7Validator(schema, validate_formats=False)
        except (ValueError, jsonschema_rs.ValidationError):  # e.g. a pattern Rust's regex engine does not take
            return _Loaded(full, crds=crds)
        # Helm compiles values.schema.json again at every render, two thirds of the cost of rendering a small
        # chart. Compiled once here, it checks the values Helm would check (the chart's defaults coalesced with
        # the given values, by Helm itself), and Helm renders the same chart loaded without the schema. Values
        # the schema rejects go to Helm with the schema, so that the error is Helm's own.
        with tempfile.TemporaryDirectory(prefix="nimgen-chart-") as tmp:
            copy = Path(tmp) / chart.name
            shutil.copytree(chart, copy, ignore=lambda folder, _names: [SCHEMA_FILE] if Path(folder) == chart else [])
            templates_only = self._helm.Chart.load(str(copy))
        return _Loaded(full, templates_only, validator, crds)

    def template(
        self, chart: Path, values: dict[str, Any], *, release: str, namespace: str, kube_version: str,
        api_versions: tuple[str, ...] = (),
    ) -> dict[str, str]:
        options = {"name": release, "namespace": namespace, "kube_version": _kube(kube_version),
                   "api_versions": list(api_versions)}
        try:
            loaded = self._chart(chart)
            target = loaded.full
            if loaded.validator is not None and loaded.validator.is_valid(loaded.full.merge_values(values)):
                target = loaded.templates_only
            text = self._native.call_string("helm_render", target._raw(), json.dumps(values), json.dumps(options))
            # Argo CD renders with --include-crds: the crds/ files of the chart and of each subchart Helm keeps.
            kept = _enabled_dependencies(loaded.full.metadata, loaded.full.merge_values(values)) if loaded.crds else set()
        except self._helm.HelmError as exc:
            raise HelmError(str(exc)) from None
        rendered: dict[str, str] = json.loads(text)
        for crd in loaded.crds:
            if _crd_kept(crd["filename"], kept, rendered):
                rendered[crd["filename"]] = crd["data"]
        return rendered

    def lint(self, chart: Path, values: dict[str, Any], *, kube_version: str, strict: bool = True) -> list[LintMessage]:
        report = self._helm.lint(str(chart), values, strict=strict, kube_version=_kube(kube_version))
        levels = {1: "info", 2: "warning", 3: "error"}
        found = [LintMessage(levels.get(m["severity"], "info"), m["path"], m["error"]) for m in report["messages"]]
        found += [LintMessage("error", str(chart), error) for error in report.get("errors") or []
                  if not any(error in m.message for m in found)]
        return found


# `helm template` separates documents with "---" and names each one's template in a comment.
_SOURCE = re.compile(r"^---\n# Source: (?P<path>[^\n]+)\n", re.MULTILINE)


class BinaryEngine:
    """A `helm` executable (v3 or v4), one process per render, with Argo CD's `helm template` flags."""

    name = "helm binary"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        # HELM_* settings of the caller (plugins, repositories) must not change what renders.
        env = {key: value for key, value in os.environ.items() if not key.startswith("HELM_")}
        return subprocess.run([self.executable, *args], capture_output=True, text=True, env=env, check=False)

    def template(
        self, chart: Path, values: dict[str, Any], *, release: str, namespace: str, kube_version: str,
        api_versions: tuple[str, ...] = (),
    ) -> dict[str, str]:
        with tempfile.TemporaryDirectory(prefix="nimgen-helm-") as tmp:
            values_file = Path(tmp) / "values.json"
            values_file.write_text(json.dumps(values), encoding="utf-8")
            args = ["template", release, str(chart), "--namespace", namespace, "--kube-version", _kube(kube_version),
                    "--include-crds", "--values", str(values_file)]
            for api in api_versions:
                args += ["--api-versions", api]
            done = self._run(args)
        if done.returncode != 0:
            raise HelmError(done.stderr.strip() or f"helm template exited with {done.returncode}")
        return split_manifests(done.stdout)

    def lint(self, chart: Path, values: dict[str, Any], *, kube_version: str, strict: bool = True) -> list[LintMessage]:
        with tempfile.TemporaryDirectory(prefix="nimgen-helm-") as tmp:
            values_file = Path(tmp) / "values.json"
            values_file.write_text(json.dumps(values), encoding="utf-8")
            args = ["lint", str(chart), "--kube-version", _kube(kube_version), "--values", str(values_file)]
            done = self._run([*args, "--strict"] if strict else args)
        found = []
        for line in done.stdout.splitlines():
            match = re.match(r"^\[(INFO|WARNING|ERROR)\] (?P<path>[^:]+): (?P<message>.*)$", line)
            if match:
                found.append(LintMessage(match.group(1).lower(), match["path"], match["message"]))
        if done.returncode != 0 and not any(m.severity == "error" for m in found):
            found.append(LintMessage("error", str(chart), done.stderr.strip() or done.stdout.strip()))
        return found


def split_manifests(text: str) -> dict[str, str]:
    """`helm template` output as template path -> manifest text (documents of one template joined)."""
    rendered: dict[str, str] = {}
    matches = list(_SOURCE.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end():end]
        path = match["path"]
        rendered[path] = f"{rendered[path]}---\n{body}" if path in rendered else body
    return rendered


def engine() -> Engine:
    """The in-process Helm engine, else a `helm` binary on PATH; HelmError when there is neither."""
    try:
        return InProcessEngine()
    except ImportError:
        pass
    executable = shutil.which("helm")
    if executable:
        return BinaryEngine(executable)
    raise HelmError("no Helm engine: install helm-python-sdk (pip install 'nimgen[validate]') or put helm on PATH")
