"""Helm values of the nim-llm chart for one model (the child Application's valuesObject)."""

from __future__ import annotations

import math
from typing import Any

from nimgen.components import availability, metrics, profiles
from nimgen.model import Environment, Model

# The startup probe polls every STARTUP_PERIOD seconds after STARTUP_DELAY; its
# failureThreshold turns the environment's startupTimeoutMinutes into probe counts.
STARTUP_DELAY_SECONDS = 30
STARTUP_PERIOD_SECONDS = 10
# How often KEDA queries Prometheus for a ScaledObject (its default is 30 s; NIM queues build up faster).
KEDA_POLLING_SECONDS = 15


def _number(value: float) -> str:
    """HPA targets are quantities; write 5.0 as "5" and 0.75 as "750m" (the form the API stores)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def model_labels(env: Environment, model: Model) -> dict[str, str]:
    """Labels nimgen puts on every object of a model, to find them across namespaces."""
    return {"nimgen.io/environment": env.name, "nimgen.io/model": model.name}


def chart_values(env: Environment, model: Model) -> dict[str, Any]:
    """Values that make the generic chart serve `model` in `env` (every env-controlled key spelled out)."""
    values: dict[str, Any] = {
        "fullnameOverride": model.name,
        "commonLabels": model_labels(env, model),
        "image": {"repository": model.image.repository, "tag": model.image.tag, "digest": model.image.digest},
        "imagePullSecrets": [{"name": env.ngc.image_pull_secret}],
        "model": {
            "servedModelName": model.served_model_name,
            "ngcAPISecret": env.ngc.api_key_secret,
            "ngcAPISecretKey": env.ngc.api_key_secret_key,
            "profile": profiles.served_profile(model),
        },
        "env": dict(model.env),
        "secretEnv": {var.name: {"secretName": var.secret, "key": var.key} for var in model.secret_env},
        "workload": {"kind": model.workload},
    }
    if env.observability:
        values["metrics"] = {
            "serviceMonitor": {"enabled": True, "path": env.observability.metrics_path,
                               "interval": env.observability.scrape_interval},
            "prometheusRule": {"enabled": True, "groups": metrics.alert_groups(env, model)},
        }
        # The model's NetworkPolicy admits the scraper from the monitoring stack's namespace.
        values["networkPolicy"] = {"prometheus": {"namespace": env.observability.namespace}}
    if model.do_not_disrupt:
        # Karpenter then leaves the node alone for consolidation and drift (not expiry or Spot loss).
        values["podAnnotations"] = {"karpenter.sh/do-not-disrupt": "true"}
    if model.autoscaled:
        values["autoscaling"] = _autoscaling(env, model)
    else:
        values["replicaCount"] = model.min_replicas
        values["autoscaling"] = {"enabled": False}
    values.update(
        {
            "gpu": {"count": model.gpus},
            "resources": {
                "requests": {"cpu": model.cpu, "memory": model.memory},
                # No CPU limit: throttling a token generator only adds latency.
                "limits": {"memory": model.memory},
            },
            "nodePool": model.node_pool,
            "cache": _cache(model),
            "cacheWarmup": profiles.warmup_values(env, model),
            **availability.chart_values(env, model),
            "sharedMemory": {"sizeLimit": model.shared_memory},
            "startupProbe": {
                "initialDelaySeconds": STARTUP_DELAY_SECONDS,
                "periodSeconds": STARTUP_PERIOD_SECONDS,
                "failureThreshold": math.ceil(
                    (model.startup_timeout_minutes * 60 - STARTUP_DELAY_SECONDS) / STARTUP_PERIOD_SECONDS
                ),
            },
        }
    )
    return values


def _autoscaling(env: Environment, model: Model) -> dict[str, Any]:
    """The chart's autoscaling block: an HPA on an adapter-served Pods metric, or a KEDA ScaledObject."""
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": model.scale_down_stabilization_seconds,
            # One replica at a time: each one holds GPUs that take many minutes to get back.
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
        },
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
    }
    autoscaling: dict[str, Any] = {
        "enabled": True,
        "engine": model.autoscaling_engine,
        "minReplicas": model.min_replicas,
        "maxReplicas": model.max_replicas,
    }
    if model.keda_scaled:
        assert env.observability is not None  # checks refuse KEDA without a Prometheus
        autoscaling["keda"] = {
            "pollingInterval": KEDA_POLLING_SECONDS,
            "triggers": [{
                "type": "prometheus",
                # The query sums the model's pods; AverageValue makes the HPA divide by the replica count,
                # the same per-pod target the adapter path uses.
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": env.observability.prometheus_url,
                    "query": metrics.scaling_query(model),
                    "threshold": f"{model.autoscaling_target:g}",
                },
            }],
            # Prometheus unreachable: hold the current count rather than drop to a fixed one.
            "fallback": {"failureThreshold": 3, "replicas": model.min_replicas, "behavior": "currentReplicas"},
            "scaleToZero": {"enabled": model.scale_to_zero, "cooldownPeriod": model.scale_to_zero_cooldown_seconds},
        }
        if model.scale_to_zero and env.gateway is not None:
            # The wake: any request the gateway gets for the model activates the ScaledObject (at zero replicas,
            # Envoy's connection to the Service fails and is counted). The threshold only asks for one replica.
            autoscaling["keda"]["triggers"].append({
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {"serverAddress": env.observability.prometheus_url,
                             "query": metrics.wake_query(env.gateway.namespace, model),
                             "threshold": "1000000", "activationThreshold": "0"},
            })
    else:
        autoscaling["metrics"] = [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": model.autoscaling_metric},
                    "target": {"type": "AverageValue", "averageValue": _number(model.autoscaling_target)},
                },
            }
        ]
    autoscaling["behavior"] = behavior
    return autoscaling


def _cache(model: Model) -> dict[str, Any]:
    cache: dict[str, Any] = {"type": model.cache_type}
    if model.cache_type == "existingClaim":
        cache["existingClaim"] = model.cache_claim_name
        if model.cache_sub_path:
            cache["subPath"] = model.cache_sub_path
    else:
        cache["size"] = model.cache_size
    if model.cache_type == "claimTemplate" and model.cache_storage_class:
        cache["storageClassName"] = model.cache_storage_class
    return cache

