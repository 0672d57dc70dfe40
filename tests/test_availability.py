"""Serving that stays up: the production availability policy, surge rollouts, spread, disruption budgets and
the preStop drain, from the environment file through nimgen's values to the real Helm engine and a real
python3 running the drain hook against a metrics endpoint."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import VALID, run, tree_digest, write_env
from nimgen import helm
from nimgen.commands.plan import plan
from nimgen.components import availability
from nimgen.components.availability import duration_seconds
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.yamlio import load_all_plain

PROJECT = Path(__file__).resolve().parents[1]
MODEL_CHART = PROJECT / "generator" / "nimgen" / "charts" / "nim-llm"
POOL = """\
  karpenter: {nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}
nodePools:
  - name: a10g
    instanceFamilies: [g5]
    gpuLimit: LIMIT
    amiVersion: v20251112
"""


def environment(model_lines: str = "", *, production: bool = True, limit: int = 16, pool_lines: str = "") -> str:
    """VALID in production (or not) on one pool, with lines added under its model."""
    anchor = '  kubernetesVersion: "1.33"\n'
    text = VALID.replace(anchor, anchor + POOL.replace("LIMIT", str(limit)) + pool_lines)
    text = ("production: true\n" if production else "") + text
    return text + model_lines


SURGE = "    workload: Deployment\n    cache: {type: emptyDir}\n    rollout: {surge: 1}\n"
SINGLE_REPLICA_MESSAGE = (
    "environments/test.yaml:16:5: $.models[0]: production model 'llama3-8b-instruct' runs 1 replica and no surge "
    "rollout: an upgrade, a node drain or a Spot reclaim leaves it with no ready replica\n"
    "    hint: set replicas.min: 2 (spread across zones and nodes, with a disruption budget that keeps one serving), "
    "or workload: Deployment with rollout: {surge: 1} (a spare replica during upgrades, counted in the pool's "
    "gpuLimit)")


# ------------------------------------------------------------------ the policy


def test_production_single_replica_without_surge_is_refused(tmp_path: Path) -> None:
    env = write_env(tmp_path, environment())
    before = tree_digest(tmp_path)
    result = run("render", env)
    assert result.exit_code == 1
    assert SINGLE_REPLICA_MESSAGE in result.output
    assert "Traceback" not in result.output
    assert tree_digest(tmp_path) == before


def test_single_replica_with_explicit_min_one_is_refused_at_its_replicas(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, environment("    replicas: {min: 1, max: 3}\n")))
    assert result.exit_code == 1
    assert ("$.models[0].replicas: production model 'llama3-8b-instruct' runs 1 replica and no surge rollout"
            in result.output)


@pytest.mark.parametrize("lines", ["    replicas: {min: 2, max: 2}\n", "    replicas: {min: 2, max: 4}\n", SURGE],
                         ids=["two-replicas", "two-to-four", "surge"])
def test_production_accepts_two_replicas_or_a_surge(tmp_path: Path, lines: str) -> None:
    result = run("render", write_env(tmp_path, environment(lines)))
    assert result.exit_code == 0, result.output


def test_a_surge_of_zero_is_no_surge(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, environment(SURGE.replace("surge: 1", "surge: 0"))))
    assert result.exit_code == 1
    assert "runs 1 replica and no surge rollout" in result.output


def test_outside_production_one_replica_is_fine(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, environment(production=False)))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("production", [True, False])
def test_a_statefulset_cannot_surge(tmp_path: Path, production: bool) -> None:
    result = run("render", write_env(tmp_path, environment("    rollout: {surge: 1}\n", production=production)))
    assert result.exit_code == 1
    assert ("$.models[0].rollout.surge: model 'llama3-8b-instruct' asks for a surge rollout, but a StatefulSet "
            "replaces each pod in place and cannot surge\n"
            "    hint: set workload: Deployment (with the shared model cache or cache.type existingClaim)") in result.output


def test_model_defaults_can_set_the_policy_for_every_model(tmp_path: Path) -> None:
    text = environment().replace("models:\n", "modelDefaults:\n  replicas: {min: 2, max: 2}\nmodels:\n")
    assert run("render", write_env(tmp_path, text)).exit_code == 0


@pytest.mark.parametrize(("limit", "refused"), [(1, True), (2, False)])
def test_the_surge_replica_counts_in_the_pool_gpu_limit(tmp_path: Path, limit: int, refused: bool) -> None:
    result = run("render", write_env(tmp_path, environment(SURGE, limit=limit)))
    assert (result.exit_code == 1) is refused, result.output
    assert ("models on node pool 'a10g' may need 2 GPUs at replicas.max plus rollout surge (llama3-8b-instruct: 2 x 1) "
            "but gpuLimit is 1" in result.output) is refused


@pytest.mark.parametrize(("grace", "timeout", "refused"), [("5m", 300, True), ("6m", 300, False), ("6m", 330, True),
                                                           ("1h", 3600, True), ("2h", 3600, False)])
def test_the_pool_must_let_a_draining_model_finish(tmp_path: Path, grace: str, timeout: int, refused: bool) -> None:
    text = environment(f"    requestTimeoutSeconds: {timeout}\n", production=False,
                       pool_lines=f"    terminationGracePeriod: {grace}\n")
    result = run("render", write_env(tmp_path, text))
    assert (result.exit_code == 1) is refused, result.output
    needed = timeout + 40
    assert (f"$.nodePools[0].terminationGracePeriod: node pool 'a10g' gives a draining node's pods {grace}, but model "
            f"'llama3-8b-instruct' needs {needed} s to drain (requestTimeoutSeconds {timeout} plus 40 s)\n"
            f"    hint: raise terminationGracePeriod to at least {-(-needed // 60)}m, or lower the model's "
            "requestTimeoutSeconds" in result.output) is refused


def test_plan_counts_the_surge_replica(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, environment(SURGE.replace("surge: 1", "surge: 2"))), tmp_path)
    [row] = plan(env).models
    assert (row.replicas_min, row.replicas_max, row.surge, row.gpus_min, row.gpus_max) == (1, 1, 2, 1, 3)
    assert row.on_demand_usd_max is not None and row.on_demand_usd_min is not None
    assert row.on_demand_usd_max == pytest.approx(3 * row.on_demand_usd_min, abs=0.011)


# ------------------------------------------------------------------ nimgen's values, through the real chart


def rendered(tmp_path: Path, engine: helm.Engine, text: str) -> dict[str, dict[str, Any]]:
    """The model's objects by kind, rendered from the environment by the real Helm engine."""
    env = load_environment(write_env(tmp_path, text), tmp_path)
    source = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]
    files = engine.template(MODEL_CHART, source["valuesObject"], release=source["releaseName"], namespace="nim",
                            kube_version="1.33")
    docs = [doc for path, body in files.items() if not path.endswith("NOTES.txt") for doc in load_all_plain(body) if doc]
    return {doc["kind"] + ("/headless" if doc.get("spec", {}).get("clusterIP") == "None" else ""): doc for doc in docs}


SELECTOR = {"app.kubernetes.io/name": "nim-llm", "app.kubernetes.io/instance": "llama3-8b-instruct"}


def test_replicas_spread_across_zones_and_nodes(tmp_path: Path, helm_engine: helm.Engine) -> None:
    objects = rendered(tmp_path, helm_engine, environment("    replicas: {min: 3, max: 6}\n"))
    pod = objects["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"] == [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": SELECTOR}},
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": SELECTOR}}]
    # Two of three may be drained at once only while two keep serving.
    assert objects["PodDisruptionBudget"]["spec"] == {
        "minAvailable": 2, "unhealthyPodEvictionPolicy": "AlwaysAllow", "selector": {"matchLabels": SELECTOR}}


def test_a_single_replica_model_has_nothing_to_spread(tmp_path: Path, helm_engine: helm.Engine) -> None:
    objects = rendered(tmp_path, helm_engine, environment(production=False))
    assert "topologySpreadConstraints" not in objects["StatefulSet"]["spec"]["template"]["spec"]
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in objects["PodDisruptionBudget"]["spec"]


def test_an_autoscaled_single_minimum_spreads_what_it_scales_to(tmp_path: Path, helm_engine: helm.Engine) -> None:
    objects = rendered(tmp_path, helm_engine, environment("    replicas: {min: 1, max: 3}\n", production=False))
    assert len(objects["StatefulSet"]["spec"]["template"]["spec"]["topologySpreadConstraints"]) == 2


def test_surge_rollout_starts_a_spare_before_the_old_one_goes(tmp_path: Path, helm_engine: helm.Engine) -> None:
    objects = rendered(tmp_path, helm_engine, environment(SURGE))
    assert objects["Deployment"]["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_without_surge_a_deployment_frees_its_gpus_first(tmp_path: Path, helm_engine: helm.Engine) -> None:
    objects = rendered(tmp_path, helm_engine, environment(SURGE.replace("surge: 1", "surge: 0"), production=False))
    assert objects["Deployment"]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def _container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    workload = objects.get("StatefulSet") or objects["Deployment"]
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(("lines", "timeout"), [("", 300), ("    requestTimeoutSeconds: 900\n", 900)])
def test_grace_period_follows_the_longest_request(tmp_path: Path, helm_engine: helm.Engine, lines: str,
                                                  timeout: int) -> None:
    objects = rendered(tmp_path, helm_engine, environment(lines, production=False))
    pod = objects["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 10 + timeout + 30
    command = _container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python3", "-c"]
    assert command[3:] == ["10", str(timeout), "http://127.0.0.1:8000/v1/metrics"]


def test_probes_give_a_busy_server_five_seconds(tmp_path: Path, helm_engine: helm.Engine) -> None:
    container = _container(rendered(tmp_path, helm_engine, environment(production=False)))
    assert {probe: container[probe]["timeoutSeconds"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")
            } == {"startupProbe": 5, "livenessProbe": 5, "readinessProbe": 5}


# ------------------------------------------------------------------ the chart's own refusals


PINNED = {"image": {"tag": "1.0.3"}}


def _chart_error(engine: helm.Engine, values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        engine.template(MODEL_CHART, {**PINNED, **values}, release="llm", namespace="nim", kube_version="1.33")
    return str(caught.value)


def test_chart_refuses_a_surging_statefulset(helm_engine: helm.Engine) -> None:
    assert "rollout.maxSurge needs workload.kind Deployment" in _chart_error(helm_engine, {"rollout": {"maxSurge": 1}})


def test_chart_refuses_a_grace_period_shorter_than_the_drain(helm_engine: helm.Engine) -> None:
    message = _chart_error(helm_engine, {"terminationGracePeriodSeconds": 60})
    assert "terminationGracePeriodSeconds (60) is shorter than the drain (drain.delaySeconds + drain.timeoutSeconds = 310)" in message
    # Without the drain, any grace period is the user's call.
    helm_engine.template(MODEL_CHART, {**PINNED, "terminationGracePeriodSeconds": 60, "drain": {"enabled": False}},
                         release="llm", namespace="nim", kube_version="1.33")


# ------------------------------------------------------------------ the drain hook, run for real


class _Metrics(http.server.BaseHTTPRequestHandler):
    """NIM's metrics endpoint: serves whatever text the test puts in `body`, counting requests."""

    body = b""
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def metrics() -> Iterator[tuple[str, type[_Metrics]]]:
    handler = type("Metrics", (_Metrics,), {"body": b"", "hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/metrics", handler
    server.shutdown()


@pytest.fixture(scope="module")
def drain_script(helm_engine: helm.Engine) -> str:
    files = helm_engine.template(MODEL_CHART, PINNED, release="llm", namespace="nim", kube_version="1.33")
    [workload] = [doc for doc in load_all_plain(files["nim-llm/templates/workload.yaml"]) if doc]
    command = workload["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    script: str = command[2]
    return script


def _drain(script: str, url: str, timeout: int) -> float:
    """Seconds the hook ran (no delay), with the metrics URL given."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", script, "0", str(timeout), url], check=True, timeout=timeout + 30)
    return time.monotonic() - start


@pytest.mark.parametrize("body", [b"num_requests_running{model_name=\"m\"} 0.0\nnum_requests_waiting 3.0\n",
                                  b"vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 0\n"],
                         ids=["nim-1.x", "vllm"])
def test_drain_ends_when_no_request_runs(drain_script: str, metrics: tuple[str, type[_Metrics]], body: bytes) -> None:
    url, handler = metrics
    handler.body = body
    assert _drain(drain_script, url, 20) < 10
    assert handler.hits == 1


def test_drain_waits_while_requests_run(drain_script: str, metrics: tuple[str, type[_Metrics]]) -> None:
    url, handler = metrics
    handler.body = b"# HELP num_requests_running\nnum_requests_running{model_name=\"m\"} 2.0\n"

    def finish() -> None:
        time.sleep(3)
        handler.body = b"num_requests_running{model_name=\"m\"} 0.0\n"

    threading.Thread(target=finish, daemon=True).start()
    took = _drain(drain_script, url, 30)
    assert 3 <= took < 20
    assert handler.hits >= 2


def test_drain_gives_up_at_its_timeout(drain_script: str, metrics: tuple[str, type[_Metrics]]) -> None:
    url, handler = metrics
    handler.body = b"num_requests_running 1\n"
    took = _drain(drain_script, url, 3)
    assert 3 <= took < 15


def test_an_unreachable_server_is_waited_for_not_skipped(drain_script: str) -> None:
    # A scrape that fails proves nothing: the hook keeps trying until its timeout.
    took = _drain(drain_script, "http://127.0.0.1:9/v1/metrics", 3)
    assert took >= 3


# ------------------------------------------------------------------ units


@pytest.mark.parametrize(("duration", "seconds"), [("2h", 7200), ("1h30m", 5400), ("90s", 90), ("1h1m1s", 3661),
                                                   ("Never", 0)])
def test_karpenter_durations_in_seconds(duration: str, seconds: int) -> None:
    assert duration_seconds(duration) == seconds


@pytest.mark.parametrize(("grace", "refused"), [("1h0m30s", True), ("1h0m40s", False)])
def test_a_composite_pool_grace_period_is_read_whole(tmp_path: Path, grace: str, refused: bool) -> None:
    # A drain of 3600 s needs 3640 s: 1h0m30s (3630 s) is too short, 1h0m40s is just enough.
    text = environment("    requestTimeoutSeconds: 3600\n", production=False,
                       pool_lines=f"    terminationGracePeriod: {grace}\n")
    result = run("render", write_env(tmp_path, text))
    assert (result.exit_code == 1) is refused, result.output
    assert (f"gives a draining node's pods {grace}, but model 'llama3-8b-instruct' needs 3640 s to drain"
            in result.output) is refused


@pytest.mark.parametrize(("observability", "path"), [("", "/v1/metrics"),
                                                     ("observability: {enabled: true, metricsPath: /metrics}\n",
                                                      "/metrics")])
def test_the_drain_polls_the_environments_metrics_path(tmp_path: Path, observability: str, path: str) -> None:
    text = environment(production=False).replace("models:\n", observability + "models:\n")
    env = load_environment(write_env(tmp_path, text), tmp_path)
    values = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]
    assert values["drain"] == {"enabled": True, "delaySeconds": 10, "timeoutSeconds": 300, "metricsPath": path}


@pytest.mark.parametrize(("replicas", "spread", "pdb"), [
    ("{min: 2, max: 2}", True, {"enabled": True, "minAvailable": 1}),  # two replicas: spread, one keeps serving
    ("{min: 1, max: 2}", True, None),  # may have two: spread; one replica alone cannot promise one serving
    ("{min: 1, max: 1}", False, None),
])
def test_spread_and_budget_start_at_two_replicas(tmp_path: Path, replicas: str, spread: bool,
                                                  pdb: dict[str, Any] | None) -> None:
    env = load_environment(write_env(tmp_path, environment(f"    replicas: {replicas}\n", production=False)), tmp_path)
    values = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]
    assert values["replicaSpread"] == {"enabled": spread}
    assert values.get("podDisruptionBudget") == pdb


def test_a_pool_that_gives_no_time_at_all(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, environment(production=False, pool_lines="    terminationGracePeriod: 0s\n")))
    assert result.exit_code == 1
    # The default longest request (300 s) plus the endpoint delay and NIM's shutdown.
    assert ("$.nodePools[0].terminationGracePeriod: node pool 'a10g' gives a draining node's pods 0s, but model "
            "'llama3-8b-instruct' needs 340 s to drain (requestTimeoutSeconds 300 plus 40 s)\n"
            "    hint: raise terminationGracePeriod to at least 6m") in result.output


SECOND = ("  - name: second\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: a10g\n")


@pytest.mark.parametrize("first", ["    nodePool: elsewhere\n", ""], ids=["on-an-undefined-pool", "on-a-pool-without-grace"])
def test_every_model_is_checked_whatever_the_one_before(tmp_path: Path, first: str) -> None:
    text = environment(first) + SECOND
    if first:
        text = text.replace("    nodePool: a10g\n    nodePool: elsewhere\n", "    nodePool: elsewhere\n")
    output = run("render", write_env(tmp_path, text)).output
    assert "$.models[1]: production model 'second' runs 1 replica and no surge rollout" in output


def test_every_model_is_checked_after_one_of_the_wrong_shape() -> None:
    found: list[tuple[Any, ...]] = []
    # A model without a name (a schema error of its own) still gets this finding, named by what it has.
    availability.check({"production": True}, ["junk", {"nodePool": "x"}],
                       lambda path, message, hint="", **_: found.append((path, message)))
    assert found == [(["models", 1], ("production model '' runs 1 replica and no surge rollout: an upgrade, a node "
                      "drain or a Spot reclaim leaves it with no ready replica"))]
