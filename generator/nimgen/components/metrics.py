"""Observability as data: the metric names nimgen relies on, alert rules, prometheus-adapter rules, the dashboard.

Every PromQL expression nimgen writes is built here from METRICS, so one list says which series the
dashboards, alerts and HPAs depend on (and a NIM release that renames one is a one-line change).
"""

from __future__ import annotations

from typing import Any

from nimgen.model import Environment, Model

# Series NIM 1.x exports on its metrics endpoint (NVIDIA NIM for LLMs "Observability" docs).
NIM_GAUGES = ("num_requests_running", "num_requests_waiting", "num_request_max", "gpu_cache_usage_perc")
NIM_COUNTERS = ("prompt_tokens_total", "generation_tokens_total", "request_success_total",
                "request_failure_total", "request_finish_total")
NIM_HISTOGRAMS = ("time_to_first_token_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds",
                  "request_prompt_tokens", "request_generation_tokens")
# NVIDIA DCGM exporter (default counters) and kube-state-metrics / Prometheus' own series.
DCGM = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE")
KUBERNETES = ("up", "kube_pod_status_phase", "kube_pod_labels", "kube_horizontalpodautoscaler_status_current_replicas",
              "kube_horizontalpodautoscaler_spec_min_replicas", "kube_horizontalpodautoscaler_spec_max_replicas")

METRICS: frozenset[str] = frozenset(
    NIM_GAUGES + NIM_COUNTERS + DCGM + KUBERNETES
    + tuple(f"{name}{suffix}" for name in NIM_HISTOGRAMS for suffix in ("_bucket", "_sum", "_count"))
)
# Per-pod gauges an HPA may scale on (exposed as Pods metrics by prometheus-adapter).
AUTOSCALING_METRICS = ("num_requests_running", "num_requests_waiting", "gpu_cache_usage_perc")
# kube-state-metrics exports this pod label (kube-prometheus-stack is told to) so GPU pods map to models.
INSTANCE_LABEL = "label_app_kubernetes_io_instance"
RATE = "5m"
# Beyond its startup budget, a model gets this long (a scrape or two, an endpoint update) before it is "not ready".
NOT_READY_MARGIN_MINUTES = 10


def not_ready_for(model: Model) -> str:
    """`for` of NimModelNotReady: a cold start (image pull, download, engine load) within budget never fires."""
    return f"{model.startup_timeout_minutes + NOT_READY_MARGIN_MINUTES}m"


def _model(model: Model) -> str:
    """Label matchers of one model's series (the ServiceMonitor adds `model`)."""
    return f'namespace="{model.namespace}", model="{model.name}"'


def alert_groups(env: Environment, model: Model) -> list[dict[str, Any]]:
    """The model's PrometheusRule groups."""
    assert env.observability is not None
    alerts = env.observability.alerts
    sel = _model(model)
    labels = {"nimgen_environment": env.name, "model": model.name}

    def rule(name: str, expr: str, duration: str, severity: str, summary: str, description: str) -> dict[str, Any]:
        return {"alert": name, "expr": expr, "for": duration, "labels": {**labels, "severity": severity},
                "annotations": {"summary": summary, "description": description}}

    rate_sum = "sum(rate({metric}{{{sel}}}[{rate}]))"
    failures = rate_sum.format(metric="request_failure_total", sel=sel, rate=RATE)
    successes = rate_sum.format(metric="request_success_total", sel=sel, rate=RATE)
    rules = [
        rule("NimModelNotReady", f"(sum(up{{{sel}}}) or vector(0)) < 1", not_ready_for(model), "critical",
             f"{model.name} has no ready replica",
             f"No replica of the model has answered on its metrics endpoint for {not_ready_for(model)} (its "
             f"startupTimeoutMinutes plus {NOT_READY_MARGIN_MINUTES}); check the pods' events and logs."),
        rule("NimTimeToFirstTokenHigh",
             f"histogram_quantile(0.95, sum by (le) (rate(time_to_first_token_seconds_bucket{{{sel}}}[{RATE}]))) "
             f"> {alerts.ttft_p95_seconds:g}", "10m", "warning",
             f"{model.name} p95 time to first token above {alerts.ttft_p95_seconds:g}s",
             "Prompts wait too long for their first token; add replicas or shorten contexts."),
        rule("NimKvCacheNearlyFull", f"max(gpu_cache_usage_perc{{{sel}}}) > {alerts.kv_cache_usage:g}", "10m",
             "warning", f"{model.name} KV cache above {alerts.kv_cache_usage:.0%}",
             "Requests will queue or be preempted; scale out or lower NIM_MAX_MODEL_LEN."),
        rule("NimRequestsQueueing", f"sum(num_requests_waiting{{{sel}}}) > {alerts.queue_waiting:g}", "5m",
             "warning", f"{model.name} has more than {alerts.queue_waiting:g} requests waiting",
             "The replicas are saturated; check the HPA's bounds and the node pool's gpuLimit."),
        rule("NimRequestFailures", f"{failures} / ({successes} + {failures}) > {alerts.failure_ratio:g}", "10m",
             "critical", f"{model.name} fails more than {alerts.failure_ratio:.0%} of requests",
             "Look for errors in the NIM logs (out of memory, bad requests, engine faults)."),
        rule("NimGpuPodsPending",
             f'sum(kube_pod_status_phase{{namespace="{model.namespace}", phase="Pending"}} '
             f'* on (namespace, pod) group_left () kube_pod_labels{{namespace="{model.namespace}", '
             f'{INSTANCE_LABEL}="{model.name}"}}) > 0', f"{alerts.pending_minutes}m", "warning",
             f"{model.name} has pods pending for {alerts.pending_minutes} minutes",
             "Karpenter cannot place them: check the NodePool's limits, capacity types and instance availability."),
    ]
    return [{"name": f"nimgen.{model.name}", "rules": rules}]


def adapter_rules(env: Environment) -> list[dict[str, Any]]:
    """prometheus-adapter custom rules: the Pods metrics this environment's HPAs read."""
    used = sorted({model.autoscaling_metric for model in env.models if model.autoscaled and not model.keda_scaled})
    return [
        {
            "seriesQuery": f'{metric}{{namespace!="", pod!=""}}',
            "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
            "name": {"matches": f"^{metric}$", "as": metric},
            "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
        }
        for metric in used
    ]


def scaling_query(model: Model) -> str:
    """The PromQL a KEDA Prometheus trigger reads: the model's total of its scaling metric."""
    return f"sum({model.autoscaling_metric}{{{_model(model)}}})"


def _target(expr: str, legend: str) -> dict[str, Any]:
    return {"datasource": {"type": "prometheus", "uid": "${datasource}"}, "expr": expr, "legendFormat": legend,
            "refId": "A"}


def dashboard() -> dict[str, Any]:
    """The NIM dashboard (one for every environment; models are picked with its variables)."""
    sel = 'namespace=~"$namespace", model=~"$model"'
    rate = "$__rate_interval"
    hpa = 'namespace=~"$namespace", horizontalpodautoscaler=~"$model"'

    def quantiles(metric: str) -> list[tuple[str, str]]:
        return [(f"histogram_quantile({q}, sum by (le, model) (rate({metric}_bucket{{{sel}}}[{rate}])))",
                 f"p{int(q * 100)} {{{{model}}}}") for q in (0.5, 0.95)]

    gpu_pods = (f' * on (namespace, pod) group_left ({INSTANCE_LABEL}) '
                f'kube_pod_labels{{namespace=~"$namespace", {INSTANCE_LABEL}=~"$model"}}')
    panels_spec: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("Time to first token", "s", quantiles("time_to_first_token_seconds")),
        ("Inter-token latency", "s", quantiles("time_per_output_token_seconds")),
        ("End-to-end request latency", "s", quantiles("e2e_request_latency_seconds")),
        ("Tokens per second", "short", [
            (f"sum by (model) (rate(prompt_tokens_total{{{sel}}}[{rate}]))", "prompt {{model}}"),
            (f"sum by (model) (rate(generation_tokens_total{{{sel}}}[{rate}]))", "generated {{model}}")]),
        ("Requests running and waiting", "short", [
            (f"sum by (model) (num_requests_running{{{sel}}})", "running {{model}}"),
            (f"sum by (model) (num_requests_waiting{{{sel}}})", "waiting {{model}}")]),
        ("KV cache use", "percentunit", [(f"max by (model) (gpu_cache_usage_perc{{{sel}}})", "{{model}}")]),
        ("Requests succeeded and failed", "reqps", [
            (f"sum by (model) (rate(request_success_total{{{sel}}}[{rate}]))", "success {{model}}"),
            (f"sum by (model) (rate(request_failure_total{{{sel}}}[{rate}]))", "failure {{model}}")]),
        ("GPU utilisation", "percent", [
            (f"avg by ({INSTANCE_LABEL}) (DCGM_FI_DEV_GPU_UTIL{gpu_pods})", f"{{{{{INSTANCE_LABEL}}}}}")]),
        ("GPU memory used", "decmbytes", [
            (f"sum by ({INSTANCE_LABEL}) (DCGM_FI_DEV_FB_USED{gpu_pods})", f"{{{{{INSTANCE_LABEL}}}}}")]),
        ("Replicas and HPA bounds", "short", [
            (f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", "replicas {{horizontalpodautoscaler}}"),
            (f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa}}}", "min {{horizontalpodautoscaler}}"),
            (f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", "max {{horizontalpodautoscaler}}")]),
    ]
    panels = []
    for index, (title, unit, queries) in enumerate(panels_spec):
        targets = [{**_target(expr, legend), "refId": chr(ord("A") + n)} for n, (expr, legend) in enumerate(queries)]
        panels.append({
            "id": index + 1, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": targets,
        })

    def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
        return {"name": name, "label": label, "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "query": {"query": query, "refId": name}, "definition": query, "includeAll": True, "multi": True,
                "current": {"selected": True, "text": "All", "value": "$__all"}, "refresh": 2, "sort": 1}

    return {
        "uid": "nimgen-nim-llm",
        "title": "NVIDIA NIM for LLMs",
        "tags": ["nimgen", "nim"],
        "editable": False,
        "schemaVersion": 39,
        "time": {"from": "now-3h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {"selected": True, "text": "Prometheus", "value": "prometheus"}},
            query_variable("namespace", "Namespace", "label_values(num_requests_running, namespace)"),
            query_variable("model", "Model", 'label_values(num_requests_running{namespace=~"$namespace"}, model)'),
        ]},
        "panels": panels,
    }


def wake_query(gateway_namespace: str, model: Model) -> str:
    """PromQL of the requests the gateway gets for a model, served or not (the wake of a model scaled to zero).

    At zero replicas Envoy's connection to the model's Service fails: counted as a connect failure, not as a
    request. Envoy Gateway names the cluster of each rule of the HTTPRoute Envoy AI Gateway makes from the
    model's AIGatewayRoute `httproute/<namespace>/<route>/rule/<n>` (a rule per public name); each sum is a single
    series, as KEDA's Prometheus scaler needs.
    """
    cluster = f'envoy_cluster_name=~"httproute/{gateway_namespace}/{model.name}/rule/[0-9]+"'
    return (f"(sum(rate(envoy_cluster_upstream_rq_total{{{cluster}}}[2m])) or vector(0)) + "
            f"(sum(rate(envoy_cluster_upstream_cx_connect_fail{{{cluster}}}[2m])) or vector(0))")

