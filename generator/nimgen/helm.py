"""The real Helm engine, run the way Argo CD runs it (`helm template`), in-process.

helm-python-sdk embeds Helm v4's Go SDK behind a C ABI (install `nimgen[test]`).
Rendering does not need it; checking the charts nimgen writes does.
"""

from __future__ import annotations

import json
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

    def template(
        self, chart: Path, values: dict[str, Any], *, release: str, namespace: str, kube_version: str,
        api_versions: tuple[str, ...] = (),
    ) -> dict[str, str]:
        options = {"name": release, "namespace": namespace, "kube_version": _kube(kube_version),
                   "api_versions": list(api_versions)}
        try:
            with self._helm.Chart.load(str(chart)) as loaded:
                text = self._native.call_string("helm_render", loaded._raw(), json.dumps(values), json.dumps(options))
        except self._helm.HelmError as exc:
            raise HelmError(str(exc)) from None
        rendered: dict[str, str] = json.loads(text)
        return rendered

    def lint(self, chart: Path, values: dict[str, Any], *, kube_version: str, strict: bool = True) -> list[LintMessage]:
        report = self._helm.lint(str(chart), values, strict=strict, kube_version=_kube(kube_version))
        levels = {1: "info", 2: "warning", 3: "error"}
        found = [LintMessage(levels.get(m["severity"], "info"), m["path"], m["error"]) for m in report["messages"]]
        found += [LintMessage("error", str(chart), error) for error in report.get("errors") or []
                  if not any(error in m.message for m in found)]
        return found


def engine() -> Engine:
    """The in-process Helm engine; HelmError when helm-python-sdk is not installed."""
    try:
        return InProcessEngine()
    except ImportError:
        raise HelmError("no Helm engine: install nimgen[test] (it brings helm-python-sdk)") from None
