"""Helm hooks as Argo CD applies them: pre/post install and upgrade hooks run (as PreSync and PostSync), any other
Helm hook (a `helm test` Pod, a pre-delete Job) is never applied, so validate does not check it either."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nimgen import helm
from nimgen.validation.manifests import Applied
from nimgen.validation.sources import RenderJob, never_applied, render

TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  annotations: {annotations}
"""
CASES = {
    "plain": {},
    "test": {"helm.sh/hook": "test"},
    "test-success": {"helm.sh/hook": "test-success"},
    "pre-delete": {"helm.sh/hook": "pre-delete"},
    "pre-install": {"helm.sh/hook": "pre-install"},
    "upgrade-and-rollback": {"helm.sh/hook": "pre-rollback, post-upgrade"},
    "argo-hook-wins": {"helm.sh/hook": "test", "argocd.argoproj.io/hook": "PreSync"},
    "crd-install": {"helm.sh/hook": "crd-install"},
}


def test_argo_cd_applies_only_the_helm_hooks_it_maps(tmp_path: Path, helm_engine: helm.Engine) -> None:
    chart = tmp_path / "hooks"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: hooks\nversion: 0.1.0\n", encoding="utf-8")
    for name, marks in CASES.items():
        text = TEMPLATE.format(name=name, annotations=marks or "{}").replace("'", '"')
        (chart / "templates" / f"{name}.yaml").write_text(text, encoding="utf-8")
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "hooks"},
           "spec": {"source": {"helm": {}}, "destination": {"namespace": "nim"}}}
    result = render(RenderJob(Applied(app, "", "argocd/dev/apps/hooks.yaml"), chart, {}), helm_engine, "1.33", ())
    assert sorted(a.obj["metadata"]["name"] for a in result.objects) == [
        "argo-hook-wins", "crd-install", "plain", "pre-install", "upgrade-and-rollback"]


@pytest.mark.parametrize("metadata", [{}, {"annotations": None}, {"annotations": {"helm.sh/hook": 5}},
                                      {"annotations": "helm.sh/hook=test"}])
def test_metadata_of_other_shapes_is_applied(metadata: dict[str, Any]) -> None:
    assert not never_applied({"metadata": metadata})
