"""KEDA as the alternative autoscaler: ScaledObject per model, KEDA platform Application, project rights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import VALID, monitoring_apps, run, write_env
from kube import application_objects, crd_errors, kubernetes_errors
from nimgen import helm
from nimgen.components import metrics, monitoring
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.model import Environment
from test_observability import _metric_names

OBSERVED = VALID.replace("models:\n", "observability:\n  enabled: true\nmodels:\n")
KEDA_MODEL = """\
    replicas: {min: 1, max: 4}
    autoscaling: {engine: keda, metric: num_requests_waiting, target: 2.5}
"""
HPA_MODEL = """\
  - name: mistral-7b-instruct
    image: nvcr.io/nim/mistralai/mistral-7b-instruct-v0.3:1.12.0
    nodePool: a10g
    replicas: {min: 1, max: 3}
    autoscaling: {metric: gpu_cache_usage_perc, target: 0.7}
"""


def _env(tmp_path: Path, text: str) -> Environment:
    return load_environment(write_env(tmp_path, text), tmp_path)


@pytest.fixture()
def keda_env(tmp_path: Path) -> Environment:
    return _env(tmp_path, OBSERVED + KEDA_MODEL)


def test_keda_model_renders_a_valid_scaled_object(keda_env: Environment, rendered_repo: Path,
                                                  helm_engine: helm.Engine, crd_schemas: Path) -> None:
    [model] = keda_env.models
    app = applications.by_name(keda_env)[model.name]
    objects = application_objects(helm_engine, rendered_repo, app)
    kinds = [o["kind"] for o in objects]
    assert "HorizontalPodAutoscaler" not in kinds  # KEDA creates it; two owners would fight
    [scaled] = [o for o in objects if o["kind"] == "ScaledObject"]
    assert crd_errors(scaled, crd_schemas) == []
    for obj in objects:
        if not obj["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/")):
            assert kubernetes_errors(obj, "1.33") == [], obj["kind"]
    [workload] = [o for o in objects if o["kind"] == model.workload]
    assert "replicas" not in workload["spec"]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": model.workload, "name": model.name}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)
    # The HPA KEDA creates keeps the model's name, which the dashboard's replica panel selects on.
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["name"] == model.name
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"] == model.scale_down_stabilization_seconds
    assert spec["fallback"]["behavior"] == "currentReplicas"
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    metadata = trigger["metadata"]
    assert metadata["serverAddress"] == keda_env.observability.prometheus_url  # type: ignore[union-attr]
    assert metadata["threshold"] == "2.5"
    assert _metric_names(metadata["query"]) == {"num_requests_waiting"} <= metrics.METRICS
    # The query selects the labels the model's ServiceMonitor writes (namespace and model).
    assert f'model="{model.name}"' in metadata["query"] and f'namespace="{model.namespace}"' in metadata["query"]
    # KEDA's HPA owns the replica count, exactly as nimgen's own HPA does.
    assert app["spec"]["ignoreDifferences"][0]["jsonPointers"] == ["/spec/replicas"]
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_keda_platform_application_and_project_rights(keda_env: Environment, crd_schemas: Path) -> None:
    apps = monitoring_apps(keda_env)
    assert monitoring.ADAPTER_RELEASE not in apps  # no HPA reads an adapter metric
    keda = apps[monitoring.KEDA_RELEASE]
    assert crd_errors(keda, crd_schemas) == []
    source = keda["spec"]["source"]
    assert (source["repoURL"], source["chart"], source["targetRevision"]) == (*monitoring.KEDA_REPO, "2.20.2")
    assert keda["spec"]["destination"]["namespace"] == "keda"
    assert {"ServerSideApply=true", "RespectIgnoreDifferences=true"} <= set(keda["spec"]["syncPolicy"]["syncOptions"])
    assert {d["kind"] for d in keda["spec"]["ignoreDifferences"]} == {"APIService", "ValidatingWebhookConfiguration"}
    model_app = applications.by_name(keda_env)[keda_env.models[0].name]

    def wave(app: dict[str, Any]) -> int:
        return int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])

    assert wave(apps["kube-prometheus-stack"]) < wave(keda) < wave(model_app)  # CRD before any ScaledObject
    platform = applications.platform_project(keda_env)
    assert crd_errors(platform, crd_schemas) == []
    assert "keda" in {d["namespace"] for d in platform["spec"]["destinations"]}
    assert monitoring.KEDA_REPO[0] in platform["spec"]["sourceRepos"]
    models = applications.app_project(keda_env)
    assert {"group": "keda.sh", "kind": "ScaledObject"} in models["spec"]["namespaceResourceWhitelist"]


def test_hpa_and_keda_models_side_by_side(tmp_path: Path) -> None:
    env = _env(tmp_path, OBSERVED + KEDA_MODEL + HPA_MODEL)
    apps = monitoring_apps(env)
    assert {monitoring.ADAPTER_RELEASE, monitoring.KEDA_RELEASE} <= set(apps)
    # The adapter serves only what an HPA reads; the KEDA model's metric goes straight to Prometheus.
    rules = apps[monitoring.ADAPTER_RELEASE]["spec"]["source"]["helm"]["valuesObject"]["rules"]["custom"]
    assert [rule["name"]["as"] for rule in rules] == ["gpu_cache_usage_perc"]


def test_no_keda_without_a_keda_model() -> None:
    from conftest import example_environment

    env = example_environment("prod")
    assert not env.uses_keda
    assert monitoring.KEDA_RELEASE not in monitoring_apps(env)
    assert {"group": "keda.sh", "kind": "ScaledObject"} not in applications.app_project(env)["spec"][
        "namespaceResourceWhitelist"]


def test_keda_needs_observability(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, VALID + KEDA_MODEL))
    assert result.exit_code == 1
    assert "$.models[0].autoscaling.engine: model 'llama3-8b-instruct' scales with KEDA" in result.output
    assert not (tmp_path / "argocd").exists()


def test_unknown_engine_is_refused(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, OBSERVED + KEDA_MODEL.replace("engine: keda", "engine: vpa")))
    assert result.exit_code == 1
    assert "$.models[0].autoscaling.engine" in result.output and "keda" in result.output


def test_keda_environment_renders_end_to_end(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, OBSERVED + KEDA_MODEL))
    assert result.exit_code == 0, result.output
    keda = tmp_path / "argocd/test/apps/platform/keda.yaml"
    assert keda.is_file()
    readme = (tmp_path / "argocd/test/README.md").read_text()
    assert "KEDA 2.20.2" in readme and "(KEDA on `num_requests_waiting`)" in readme
