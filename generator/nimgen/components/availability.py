"""How a served model stays up: rollout, spread across zones and nodes, disruption budget and drain.

A production model keeps a ready replica through upgrades, node drains and Spot reclaims. It either
runs two or more replicas, spread across zones and nodes, with a PodDisruptionBudget that keeps at
least one serving; or it rolls out with a surge: a spare replica starts (and holds its GPUs) before an
old one stops. Every model drains before it stops: the pod leaves the Service, running requests
finish, then NIM gets SIGTERM.
"""

from __future__ import annotations

import re
from typing import Any

from nimgen.components import spotfloor
from nimgen.errors import shorten as _s
from nimgen.model import Environment, Model

# Seconds the preStop hook waits before it polls, while the endpoint removal reaches kube-proxy.
DRAIN_DELAY_SECONDS = 10
# Seconds NIM gets after SIGTERM to stop its engine and release the GPUs.
SHUTDOWN_SECONDS = 30
DEFAULT_METRICS_PATH = "/v1/metrics"
_DURATION_PART = re.compile(r"([0-9]+)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def grace_seconds(request_timeout_seconds: int) -> int:
    """The pod's terminationGracePeriodSeconds: the drain's delay, its longest wait, then NIM's shutdown."""
    return DRAIN_DELAY_SECONDS + request_timeout_seconds + SHUTDOWN_SECONDS


def chart_values(env: Environment, model: Model) -> dict[str, Any]:
    """The nim-llm values for the model's rollout, spread, disruption budget and drain."""
    metrics_path = env.observability.metrics_path if env.observability else DEFAULT_METRICS_PATH
    values: dict[str, Any] = {
        "rollout": {"maxSurge": model.surge},
        # Only a model that can have two replicas has anything to spread.
        "replicaSpread": {"enabled": model.max_replicas >= 2},
        "terminationGracePeriodSeconds": grace_seconds(model.request_timeout_seconds),
        "drain": {"enabled": True, "delaySeconds": DRAIN_DELAY_SECONDS,
                  "timeoutSeconds": model.request_timeout_seconds, "metricsPath": metrics_path},
    }
    if model.min_replicas >= 2:
        # A drain or consolidation may take replicas down only while min - 1 (at least one) keep serving.
        values["podDisruptionBudget"] = {"enabled": True, "minAvailable": model.min_replicas - 1}
    values.update(spotfloor.chart_values(env, model))
    return values


def duration_seconds(duration: str) -> int:
    """Seconds of a Karpenter duration such as 2h or 1h30m (the schema admits only h, m and s parts)."""
    return sum(int(count) * _UNIT_SECONDS[unit] for count, unit in _DURATION_PART.findall(duration))


def check(document: Any, models: list[Any], add: Any) -> None:
    """The availability policy of production, surge only on Deployments, and drains that fit their pools."""
    production = document.get("production") is True
    pools = {pool.get("name"): (index, pool) for index, pool in enumerate(document.get("nodePools") or [])
             if isinstance(pool, dict)}
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        base = ["models", index]
        name = _s(str(model.get("name", "")))
        surge = (model.get("rollout") or {}).get("surge", 0)
        workload = model.get("workload", "StatefulSet")
        if isinstance(surge, int) and surge > 0 and workload != "Deployment":
            add([*base, "rollout", "surge"], f"model '{name}' asks for a surge rollout, but a {workload} replaces "
                "each pod in place and cannot surge",
                "set workload: Deployment (with the shared model cache or cache.type existingClaim)")
        minimum = (model.get("replicas") or {}).get("min", 1)
        if production and isinstance(minimum, int) and minimum < 2 and not (isinstance(surge, int) and surge > 0):
            add([*base, "replicas"] if "replicas" in model else base,
                f"production model '{name}' runs {minimum} replica and no surge rollout: an upgrade, a node drain "
                "or a Spot reclaim leaves it with no ready replica",
                "set replicas.min: 2 (spread across zones and nodes, with a disruption budget that keeps one "
                "serving), or workload: Deployment with rollout: {surge: 1} (a spare replica during upgrades, "
                "counted in the pool's gpuLimit)")
        _drain_fits_pool(model, pools, add)


def _drain_fits_pool(model: dict[str, Any], pools: dict[Any, tuple[int, Any]], add: Any) -> None:
    """Karpenter force-deletes the pods of a draining node after the pool's terminationGracePeriod."""
    timeout = model.get("requestTimeoutSeconds", 300)
    entry = pools.get(model.get("nodePool"))
    if entry is None or not isinstance(timeout, int):
        return
    index, pool = entry
    limit = pool.get("terminationGracePeriod")
    if not isinstance(limit, str):
        return  # the schema's default, 2h, outlasts the longest drain (1 h of requests)
    needed = grace_seconds(timeout)
    if duration_seconds(limit) < needed:
        add(["nodePools", index, "terminationGracePeriod"],
            f"node pool '{_s(str(pool.get('name')))}' gives a draining node's pods {_s(limit)}, but model "
            f"'{_s(str(model.get('name')))}' needs {needed} s to drain (requestTimeoutSeconds {timeout} plus "
            f"{DRAIN_DELAY_SECONDS + SHUTDOWN_SECONDS} s)",
            f"raise terminationGracePeriod to at least {-(-needed // 60)}m, or lower the model's requestTimeoutSeconds")
