"""Scale to zero: KEDA stops a model's last replica when the gateway has had no request for it, and the gateway's
next request for it (counted by Envoy even when nothing serves it) starts one."""

from __future__ import annotations

from pathlib import Path

import promql_parser
import pytest
from helpers import VALID, run, write_env
from kube import application_objects, crd_errors
from nimgen import helm
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.model import Environment
from test_observability import _metric_names

GATEWAY = """\
observability:
  enabled: true
gateway:
  enabled: true
  hostname: llm.example.com
  tls: {certManager: {issuer: letsencrypt}}
  auth:
    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [team-a]}
"""
MODEL = """\
    servedModelName: meta/llama3-8b-instruct
    replicas: {min: 1, max: 3}
    startupTimeoutMinutes: 25
    autoscaling: {engine: keda, metric: num_requests_waiting, target: 2}
    scaleToZero: {enabled: true, cooldownSeconds: 900}
"""


def _text(gateway: str = GATEWAY, model: str = MODEL, production: bool = False) -> str:
    text = VALID.replace("models:\n", gateway + "models:\n") + model
    return text.replace("name: test\n", "name: test\nproduction: true\n", 1) if production else text


def _env(tmp_path: Path, text: str) -> Environment:
    return load_environment(write_env(tmp_path, text), tmp_path)


def test_a_model_scaled_to_zero_wakes_on_the_gateways_requests(tmp_path: Path, rendered_repo: Path,
                                                               helm_engine: helm.Engine, crd_schemas: Path) -> None:
    env = _env(tmp_path, _text())
    [model] = env.models
    assert (model.scale_to_zero, model.scale_to_zero_cooldown_seconds, model.autoscaled) == (True, 900, True)
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(env)[model.name])
    [scaled] = [o for o in objects if o["kind"] == "ScaledObject"]
    assert crd_errors(scaled, crd_schemas) == []
    spec = scaled["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (0, 3, 900)
    load, wake = spec["triggers"]
    assert _metric_names(load["metadata"]["query"]) == {"num_requests_waiting"}
    # Any request at the gateway activates it; the threshold then asks for no more than one replica.
    assert (wake["metadata"]["activationThreshold"], wake["metadata"]["threshold"]) == ("0", "1000000")
    query = wake["metadata"]["query"]
    promql_parser.parse(query)
    assert _metric_names(query) == {"envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_cx_connect_fail"}
    assert query.count('envoy_cluster_name=~"httproute/nim-gateway/llama3-8b-instruct/rule/[0-9]+"') == 2


def test_without_scale_to_zero_the_floor_stays(tmp_path: Path, rendered_repo: Path, helm_engine: helm.Engine) -> None:
    env = _env(tmp_path, _text(model=MODEL.replace("enabled: true, ", "enabled: false, ")))
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(env)[env.models[0].name])
    [scaled] = [o for o in objects if o["kind"] == "ScaledObject"]
    assert scaled["spec"]["minReplicaCount"] == 1 and "cooldownPeriod" not in scaled["spec"]
    assert len(scaled["spec"]["triggers"]) == 1


def test_the_gateway_scrapes_envoys_own_statistics(tmp_path: Path, rendered_repo: Path,
                                                   helm_engine: helm.Engine) -> None:
    env = _env(tmp_path, _text().replace("observability:\n  enabled: true\n", "observability:\n  enabled: true\n"
                                         "  prometheusStack: {enabled: true}\n"))
    run("render", tmp_path / "environments" / "test.yaml")
    objects = application_objects(helm_engine, tmp_path, applications.by_name(env)["nim-gateway"])
    [monitor] = [o for o in objects if o["kind"] == "PodMonitor"]
    assert {"port": "metrics", "path": "/stats/prometheus"} in monitor["spec"]["podMetricsEndpoints"]


def test_plan_states_the_cold_start(tmp_path: Path) -> None:
    output = run("plan", write_env(tmp_path, _text())).output
    row = next(line for line in output.splitlines() if line.startswith("llama3-8b-instruct"))
    assert "0-3 (to zero; cold start up to 25 min)" in row and " 0-3 " in row  # GPUs from none


@pytest.mark.parametrize(("text", "message"), [
    (_text(gateway="observability:\n  enabled: true\n"),
     "$.models[0].scaleToZero: model 'llama3-8b-instruct' scales to zero, but no gateway serves it"),
    (_text(model=MODEL + "    gateway: {enabled: false}\n"),
     "$.models[0].scaleToZero: model 'llama3-8b-instruct' scales to zero, but no gateway serves it"),
    (_text(model=MODEL.replace("engine: keda, ", "")),
     "$.models[0].scaleToZero: model 'llama3-8b-instruct' scales to zero, which only a KEDA ScaledObject does"),
    (_text(production=True),
     ("$.models[0].scaleToZero: model 'llama3-8b-instruct' scales to zero in a production environment: callers get "
     "503 for a cold start of up to 25 minutes")),
])
def test_scale_to_zero_is_refused_where_nothing_wakes_it_or_production_did_not_ask(tmp_path: Path, text: str,
                                                                                    message: str) -> None:
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "argocd").exists()


def test_production_may_ask_for_it(tmp_path: Path) -> None:
    text = _text(model=MODEL.replace("cooldownSeconds: 900}", "cooldownSeconds: 900, allowInProduction: true}")
                 .replace("replicas: {min: 1, max: 3}", "replicas: {min: 2, max: 3}"), production=True)
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0 and "scales to zero" not in result.output, result.output
