"""Observability: Prometheus Operator objects, PromQL, the Grafana dashboard and the HPA-adapter wiring."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from conftest import example_environment, shared
from helpers import VALID, monitoring_apps, run, write_env
from kube import application_objects, crd_errors, kubernetes_errors
from nimgen import helm
from nimgen.components import metrics, monitoring
from nimgen.gitops import applications

# Grafana and prometheus-adapter placeholders, replaced by values PromQL accepts before parsing.
PLACEHOLDERS = {"$__rate_interval": "5m", "$namespace": "nim", "$model": "m",
                "<<.Series>>": "SERIES", "<<.LabelMatchers>>": 'namespace="nim"', "<<.GroupBy>>": "pod"}


@pytest.fixture(scope=shared("module"))
def prod_models(rendered_repo: Path, helm_engine: helm.Engine) -> dict[str, list[dict[str, Any]]]:
    env = example_environment("prod")
    return {m.name: application_objects(helm_engine, rendered_repo, applications.by_name(env)[m.name]) for m in env.models}


def _metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects, from the real parser's syntax tree."""
    for placeholder, value in PLACEHOLDERS.items():
        expr = expr.replace(placeholder, value)
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names - {"SERIES"}


def _all_expressions(env_name: str = "prod") -> list[str]:
    env = example_environment(env_name)
    exprs = [r["expr"] for m in env.models for g in metrics.alert_groups(env, m) for r in g["rules"]]
    exprs += [t["expr"] for p in metrics.dashboard()["panels"] for t in p["targets"]]
    for rule in monitoring.adapter_values(env)["rules"]["custom"]:
        exprs += [rule["seriesQuery"], rule["metricsQuery"]]
    return exprs


def test_every_promql_expression_parses_and_uses_known_metrics() -> None:
    exprs = _all_expressions()
    assert len(exprs) > 30
    for expr in exprs:
        names = _metric_names(expr)
        assert names or "<<.Series>>" in expr, expr
        assert names <= metrics.METRICS, f"{expr}: unknown {names - metrics.METRICS}"


def test_a_wrong_metric_name_would_be_caught() -> None:
    assert _metric_names('sum(rate(time_to_first_token_second_bucket{model="m"}[5m]))') - metrics.METRICS
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(x[5m])")


def test_service_monitor_and_rules_validate_against_crds(prod_models: Any, crd_schemas: Path) -> None:
    for name, objects in prod_models.items():
        kinds = {o["kind"]: o for o in objects}
        monitor, rule = kinds["ServiceMonitor"], kinds["PrometheusRule"]
        assert crd_errors(monitor, crd_schemas) == [] and crd_errors(rule, crd_schemas) == [], name
        [endpoint] = monitor["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http-openai", "/v1/metrics", "30s")
        alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
        assert set(alerts) == {"NimModelNotReady", "NimTimeToFirstTokenHigh", "NimKvCacheNearlyFull",
                               "NimRequestsQueueing", "NimRequestFailures", "NimGpuPodsPending"}
        # Thresholds come from the environment file (prod: 2s, 0.9, 10).
        assert alerts["NimTimeToFirstTokenHigh"]["expr"].endswith("> 2")
        assert alerts["NimKvCacheNearlyFull"]["expr"].endswith("> 0.9")
        assert alerts["NimRequestsQueueing"]["expr"].endswith("> 10")
        assert f'model="{name}"' in alerts["NimRequestsQueueing"]["expr"]
        # Not ready only once the model's cold-start budget is spent (8B: 30 minutes, 70B: 60), plus the margin.
        budget = {"llama3-8b-instruct": 30, "llama-3-1-70b-instruct": 60}[name]
        assert alerts["NimModelNotReady"]["for"] == f"{budget + metrics.NOT_READY_MARGIN_MINUTES}m"
        for obj in objects:
            if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
                assert kubernetes_errors(obj, "1.33") == [], obj["kind"]


def _exposed(rule: dict[str, Any]) -> str:
    """The metric name prometheus-adapter serves for one rule (its `name.matches`/`as` applied to the series)."""
    series = next(iter(_metric_names(rule["seriesQuery"])))
    as_template = rule["name"]["as"].replace("${1}", r"\1")
    return re.sub(rule["name"]["matches"], as_template, series)


def test_every_hpa_reads_a_metric_the_adapter_serves(prod_models: Any) -> None:
    env = example_environment("prod")
    adapter = monitoring_apps(env)[monitoring.ADAPTER_RELEASE]
    rules = adapter["spec"]["source"]["helm"]["valuesObject"]["rules"]
    assert rules["default"] is False
    served = {_exposed(rule) for rule in rules["custom"]}
    for rule in rules["custom"]:
        assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    hpas = [o for objects in prod_models.values() for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == sum(m.autoscaled for m in env.models) == 2
    for hpa in hpas:
        for metric in hpa["spec"]["metrics"]:
            assert metric["type"] == "Pods"
            assert metric["pods"]["target"]["type"] == "AverageValue"
            assert metric["pods"]["metric"]["name"] in served
    # A metric nobody serves is what this test exists to catch.
    assert "num_requests_total" not in served


def test_monitoring_applications(crd_schemas: Path) -> None:
    env = example_environment("prod")
    apps = monitoring_apps(env)
    assert set(apps) == {"kube-prometheus-stack", "prometheus-adapter", "dcgm-exporter", "nim-observability"}
    stack = apps["kube-prometheus-stack"]
    assert "ServerSideApply=true" in stack["spec"]["syncPolicy"]["syncOptions"]
    assert stack["spec"]["source"]["targetRevision"] == "79.5.0"
    values = stack["spec"]["source"]["helm"]["valuesObject"]
    assert values["prometheus"]["prometheusSpec"]["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert values["prometheus"]["prometheusSpec"]["ruleSelectorNilUsesHelmValues"] is False
    assert values["grafana"]["sidecar"]["dashboards"]["enabled"] is True
    assert values["grafana"]["admin"]["existingSecret"] == "grafana-admin"  # referenced, never inlined
    dcgm = apps["dcgm-exporter"]["spec"]["source"]["helm"]["valuesObject"]
    assert dcgm["tolerations"] == [monitoring.GPU_TOLERATION] and dcgm["serviceMonitor"]["honorLabels"] is True
    wave = {name: int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, app in apps.items()}
    model_wave = int(applications.by_name(env)[env.models[0].name]["metadata"]["annotations"]
                     ["argocd.argoproj.io/sync-wave"])
    assert wave["kube-prometheus-stack"] < wave["prometheus-adapter"] < model_wave
    project = applications.platform_project(env)
    for app in apps.values():
        assert crd_errors(app, crd_schemas) == []
        assert app["spec"]["source"]["repoURL"] in project["spec"]["sourceRepos"]
        assert app["spec"]["project"] == project["metadata"]["name"]
        assert app["spec"]["destination"]["namespace"] in {d["namespace"] for d in project["spec"]["destinations"]}
    assert crd_errors(project, crd_schemas) == []


def test_every_container_the_monitoring_charts_run_gets_requests_and_a_memory_limit() -> None:
    env = example_environment("prod")
    apps = monitoring_apps(env)
    values = {name: app["spec"]["source"]["helm"]["valuesObject"] for name, app in apps.items()}
    stack = values["kube-prometheus-stack"]
    # Each value path the charts read a container's resources from (the kube-prometheus-stack 79.5.0, dcgm-exporter
    # 3.4.2 and prometheus-adapter 4.13.0 templates; test_upstream_charts renders them).
    placed = {
        "prometheus": stack["prometheus"]["prometheusSpec"]["resources"],
        "alertmanager": stack["alertmanager"]["alertmanagerSpec"]["resources"],
        "operator": stack["prometheusOperator"]["resources"],
        "certgen jobs": stack["prometheusOperator"]["admissionWebhooks"]["patch"]["resources"],
        "grafana": stack["grafana"]["resources"],
        "grafana sidecars": stack["grafana"]["sidecar"]["resources"],
        "kube-state-metrics": stack["kube-state-metrics"]["resources"],
        "node-exporter": stack["prometheus-node-exporter"]["resources"],
        "prometheus-adapter": values["prometheus-adapter"]["resources"],
        "dcgm-exporter": values["dcgm-exporter"]["resources"],
    }
    for where, resources in placed.items():
        assert set(resources) == {"requests", "limits"}, where
        assert set(resources["requests"]) == {"cpu", "memory"} and set(resources["limits"]) == {"memory"}, where
    assert placed["prometheus"] == {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "8Gi"}}
    # The receivers' settings and the volume are kept beside the resources.
    assert "storage" in stack["alertmanager"]["alertmanagerSpec"]
    assert stack["prometheus"]["prometheusSpec"]["retention"]


def test_dashboard_is_valid_grafana_json(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    env = example_environment("prod")
    objects = application_objects(helm_engine, rendered_repo, monitoring_apps(env)["nim-observability"])
    [config_map] = objects
    assert kubernetes_errors(config_map, "1.33") == []
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(config_map["data"]["nim-llm.json"])
    assert isinstance(board["schemaVersion"], int) and board["uid"] and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "model"} <= set(variables)
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {"${datasource}"}
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    titles = " ".join(panel["title"] for panel in board["panels"])
    for wanted in ("Time to first token", "Inter-token", "KV cache", "GPU utilisation", "GPU memory", "HPA"):
        assert wanted in titles


def test_without_observability_nothing_is_rendered(rendered_repo: Path) -> None:
    env = example_environment("dev")
    assert env.observability is None and monitoring_apps(env) == {}
    assert not (rendered_repo / "argocd/dev/apps/platform/kube-prometheus-stack.yaml").exists()
    app = applications.by_name(env)[env.models[0].name]
    assert "metrics" not in app["spec"]["source"]["helm"]["valuesObject"]


def test_autoscaling_without_observability_warns(tmp_path: Path) -> None:
    text = VALID + "    replicas: {min: 1, max: 3}\n"
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0, result.output
    assert "warning: model 'llama3-8b-instruct' scales on num_requests_running" in result.output


def test_external_prometheus_needs_its_url(tmp_path: Path) -> None:
    text = VALID.replace("models:\n", "observability:\n  enabled: true\n  prometheusStack: {enabled: false}\nmodels:\n")
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1
    assert "$.observability.prometheusStack: without kube-prometheus-stack, set observability.prometheusUrl" \
        in result.output


def test_dashboards_chart_lints_strict(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    values = monitoring.dashboards_values(example_environment("prod"))
    findings = helm_engine.lint(rendered_repo / monitoring.DASHBOARDS_CHART_PATH, values, kube_version="1.33")
    assert [f for f in findings if f.severity != "info"] == []


def test_an_external_prometheus_gets_no_stack_and_no_kube_system(tmp_path: Path) -> None:
    from nimgen.environment.load import load_environment

    text = VALID.replace("models:\n", "observability:\n  enabled: true\n  prometheusStack: {enabled: false}\n"
                                      "  prometheusUrl: http://prometheus.example.svc:9090\nmodels:\n")
    text += "    cache: {type: emptyDir}\n"  # no block claim: no StorageClass Application in kube-system either
    env = load_environment(write_env(tmp_path, text), tmp_path)
    assert set(monitoring_apps(env)) == {"dcgm-exporter", "nim-observability"}
    project = applications.platform_project(env)
    assert project is not None
    assert [d["namespace"] for d in project["spec"]["destinations"]] == ["monitoring"]
    assert monitoring.PROMETHEUS_STACK_REPO[0] not in project["spec"]["sourceRepos"]
    with_stack = load_environment(write_env(tmp_path, VALID.replace(
        "models:\n", "observability:\n  enabled: true\nmodels:\n") + "    cache: {type: emptyDir}\n", "stack.yaml"),
        tmp_path)
    stack_project = applications.platform_project(with_stack)
    assert stack_project is not None
    assert [d["namespace"] for d in stack_project["spec"]["destinations"]] == ["kube-system", "monitoring"]
