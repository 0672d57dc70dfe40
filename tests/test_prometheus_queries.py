"""The dashboard's, prometheus-adapter's and KEDA's PromQL, as `metrics.py` builds it, on a real Prometheus.

One Prometheus per module reads a TSDB backfilled (`promtool tsdb create-blocks-from openmetrics`) from
recorded scrapes: tests/fixtures/nim-v1-metrics.txt is what a NIM 1.x LLM serves on /v1/metrics, given the
labels its ServiceMonitor adds (namespace, pod, job, `model`) and replayed for two replicas over ten minutes
with growing counters; tests/fixtures/cluster-metrics.txt holds the kube-state-metrics and DCGM exporter
series the GPU and HPA panels join on. Timestamps are fixed, so every answer is the same on every run.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment
from nimgen.components import metrics, monitoring
from promtool import binary, run

FIXTURES = Path(__file__).parent / "fixtures"
MODEL, NAMESPACE = "llama3-8b-instruct", "nim"
PODS = (f"{MODEL}-0", f"{MODEL}-1")
START = 1_767_225_600  # 2026-01-01T00:00:00Z, on a two-hour block boundary
STEP, SCRAPES = 30, 21  # a scrape every 30 s for ten minutes
END = START + STEP * (SCRAPES - 1)
# Grafana's variables as a user picks them, and the rate window Grafana would put in.
GRAFANA = {"$__rate_interval": "2m", "$namespace": NAMESPACE, "$model": MODEL}
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")


def _families(text: str) -> list[tuple[str, str, list[tuple[str, str, float]]]]:
    """(name, type, [(sample name, labels, value)]) of a Prometheus text exposition, in order."""
    families: list[tuple[str, str, list[tuple[str, str, float]]]] = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families.append((name, kind, []))
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match and families, line
            families[-1][2].append((match.group(1), match.group(2) or "", float(match.group(3))))
    return families


def openmetrics(text: str, targets: list[str], counter_growth: bool) -> str:
    """The exposition replayed as OpenMetrics: one copy per target's labels, SCRAPES samples each; counters
    (and histogram buckets, sums and counts) grow by the same share at every scrape, so rates and quantiles keep
    the recorded shape."""
    out = []
    for name, kind, samples in _families(text):
        family = name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name
        out.append(f"# TYPE {family} {kind}")
        for target in targets:
            for step in range(SCRAPES):
                grows = counter_growth and kind in ("counter", "histogram")
                factor = 1 + step / SCRAPES if grows else 1
                for sample, labels, value in samples:
                    joined = ",".join(part for part in (labels, target) if part)
                    out.append(f"{sample}{{{joined}}} {value * factor:.6f} {START + step * STEP}")
    return "\n".join(out) + "\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Prometheus serving the backfilled fixtures (stopped after the module)."""
    promtool, server = binary("promtool"), binary("prometheus")
    root = tmp_path_factory.mktemp("prometheus")
    nim_targets = [f'namespace="{NAMESPACE}",pod="{pod}",job="{MODEL}",service="{MODEL}",endpoint="http-openai",'
                   f'container="nim",instance="10.0.{n}.17:8000",model="{MODEL}"' for n, pod in enumerate(PODS)]
    text = openmetrics((FIXTURES / "nim-v1-metrics.txt").read_text(), nim_targets, counter_growth=True)
    text += openmetrics((FIXTURES / "cluster-metrics.txt").read_text(), ['job="kube-state-metrics"'],
                        counter_growth=False)
    (root / "input.om").write_text(text + "# EOF\n", encoding="utf-8")
    result = run(promtool, "tsdb", "create-blocks-from", "openmetrics", root / "input.om", root / "data")
    assert result.returncode == 0, result.stdout + result.stderr
    (root / "prometheus.yml").write_text("global:\n  evaluation_interval: 1m\n", encoding="utf-8")
    port = _free_port()
    log = (root / "prometheus.log").open("w")
    process = subprocess.Popen([server, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (root / "prometheus.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _api(url: str, path: str, **params: str) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=10) as answer:
        body = json.load(answer)
    assert body["status"] == "success", body
    return body["data"]


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector of `expr` at the end of the recording."""
    data = _api(url, "query", query=expr, time=str(END))
    assert data["resultType"] == "vector", (expr, data)
    result: list[dict[str, Any]] = data["result"]
    return result


def _grafana(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    return expr


def test_every_dashboard_query_returns_series(prometheus: str) -> None:
    board = metrics.dashboard()
    answered = {}
    for panel in board["panels"]:
        for target in panel["targets"]:
            result = query(prometheus, _grafana(target["expr"]))
            assert result, f"{panel['title']}: {target['expr']} returns nothing"
            answered[(panel["title"], target["refId"])] = result
    assert len(answered) == sum(len(p["targets"]) for p in board["panels"]) >= 18
    values = {key: [float(series["value"][1]) for series in found] for key, found in answered.items()}
    # Per model, both replicas summed: 7 running and 2 waiting each in the recording.
    assert values[("Requests running and waiting", "A")] == [14.0]
    assert values[("Requests running and waiting", "B")] == [4.0]
    assert values[("KV cache use", "A")] == [0.4187]
    # The recorded TTFT histogram: the median in the (0.06 s, 0.08 s] bucket, the 95th percentile in (0.25 s, 0.5 s].
    p50, p95 = values[("Time to first token", "A")], values[("Time to first token", "B")]
    assert 0.06 < p50[0] <= 0.08 and 0.25 < p95[0] <= 0.5
    # The GPU panels join DCGM's pods to the model through kube-state-metrics' pod label.
    gpu = answered[("GPU utilisation", "A")]
    assert [s["metric"] for s in gpu] == [{metrics.INSTANCE_LABEL: MODEL}]
    assert float(gpu[0]["value"][1]) == (87 + 64) / 2
    assert values[("GPU memory used", "A")] == [21504 + 21490]
    assert values[("Replicas and HPA bounds", "A")] == [2.0] and values[("Replicas and HPA bounds", "C")] == [5.0]


def test_dashboard_variables_list_the_namespace_and_model(prometheus: str) -> None:
    variables = {v["name"]: v["query"]["query"] for v in metrics.dashboard()["templating"]["list"] if v["type"] == "query"}
    for name, expected in (("namespace", NAMESPACE), ("model", MODEL)):
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name])
        assert match, variables[name]
        found = _api(prometheus, f"label/{match.group(2)}/values", **{"match[]": _grafana(match.group(1)),
                                                                       "start": str(START), "end": str(END)})
        assert found == [expected], (name, found)


def test_adapter_rules_serve_each_pod_its_metric(prometheus: str) -> None:
    env = example_environment("prod")
    rules = monitoring.adapter_values(env)["rules"]["custom"]
    assert {rule["name"]["as"] for rule in rules} == {"num_requests_running", "num_requests_waiting"}
    for rule in rules:
        series = _api(prometheus, "series", **{"match[]": rule["seriesQuery"], "start": str(START), "end": str(END)})
        assert sorted(s["pod"] for s in series) == sorted(PODS), rule["seriesQuery"]
        # What prometheus-adapter sends for the HPA's pods (its template filled in as it fills it in).
        metric = rule["name"]["as"]
        expr = (rule["metricsQuery"].replace("<<.Series>>", metric)
                .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"{"|".join(PODS)}"')
                .replace("<<.GroupBy>>", "pod"))
        found = {s["metric"]["pod"]: float(s["value"][1]) for s in query(prometheus, expr)}
        assert found == {pod: {"num_requests_running": 7.0, "num_requests_waiting": 2.0}[metric] for pod in PODS}


def test_keda_query_reads_the_models_total(prometheus: str) -> None:
    env = example_environment("prod")
    [model] = [m for m in env.models if m.name == MODEL]
    [series] = query(prometheus, metrics.scaling_query(model))
    assert float(series["value"][1]) == {"num_requests_running": 14.0, "num_requests_waiting": 4.0}[
        model.autoscaling_metric]


def test_a_misspelled_metric_returns_nothing(prometheus: str) -> None:
    # The checks above mean something only if a wrong name comes back empty rather than failing loudly.
    assert query(prometheus, f'sum(num_request_running{{model="{MODEL}"}})') == []
