"""The monitoring platform: kube-prometheus-stack, prometheus-adapter, DCGM exporter, KEDA and nimgen's dashboards.

The upstream charts are installed from their Helm repositories at pinned versions (the environment
file may move a pin); nimgen's own nim-observability chart carries the Grafana dashboard. KEDA is here
because its triggers read this Prometheus.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from nimgen.components import metrics
from nimgen.environment.model import Environment

PROMETHEUS_STACK_RELEASE = "kube-prometheus-stack"
PROMETHEUS_STACK_REPO = ("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack")
ADAPTER_RELEASE = "prometheus-adapter"
ADAPTER_REPO = ("https://prometheus-community.github.io/helm-charts", "prometheus-adapter")
DCGM_RELEASE = "dcgm-exporter"
DCGM_REPO = ("https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter")
KEDA_RELEASE = "keda"
KEDA_REPO = ("https://kedacore.github.io/charts", "keda")
KEDA_NAMESPACE = "keda"
DASHBOARDS_CHART = "nim-observability"
DASHBOARDS_CHART_PATH = f"charts/{DASHBOARDS_CHART}"
DASHBOARDS_RELEASE = "nim-observability"
DASHBOARD_FILE = "dashboards/nim-llm.json"
# Label kube-prometheus-stack's Grafana sidecar looks for (its default).
DASHBOARD_LABEL = "grafana_dashboard"

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# Kinds the monitoring charts render, for the platform AppProject.
CLUSTER_KINDS: tuple[tuple[str, str], ...] = (
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("apiregistration.k8s.io", "APIService"),
)
NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (
    ("", "ConfigMap"), ("", "Secret"), ("", "Service"), ("", "ServiceAccount"), ("", "PersistentVolumeClaim"),
    ("apps", "Deployment"), ("apps", "DaemonSet"), ("apps", "StatefulSet"), ("batch", "Job"),
    ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
    ("policy", "PodDisruptionBudget"),
    ("monitoring.coreos.com", "Prometheus"), ("monitoring.coreos.com", "Alertmanager"),
    ("monitoring.coreos.com", "ServiceMonitor"), ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
)
# What each model's Application adds when monitoring is on, and when a model scales through KEDA.
MODEL_KINDS: tuple[tuple[str, str], ...] = (
    ("monitoring.coreos.com", "ServiceMonitor"), ("monitoring.coreos.com", "PrometheusRule"))
KEDA_MODEL_KINDS: tuple[tuple[str, str], ...] = (("keda.sh", "ScaledObject"),)
# KEDA's operator rotates its own certificates and writes their CA into these objects.
KEDA_IGNORE_DIFFERENCES: tuple[dict[str, Any], ...] = (
    {"group": "apiregistration.k8s.io", "kind": "APIService", "jsonPointers": ["/spec/caBundle"]},
    {"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration",
     "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]},
)


def prometheus_stack_values(env: Environment) -> dict[str, Any]:
    """kube-prometheus-stack: select every ServiceMonitor and rule, dashboards by label, no inlined secret."""
    assert env.observability is not None
    nothing_by_release = {f"{kind}SelectorNilUsesHelmValues": False
                          for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig")}
    return {
        "fullnameOverride": PROMETHEUS_STACK_RELEASE,
        "crds": {"enabled": True},
        # EKS runs the control plane: there is nothing of it to scrape.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "prometheus": {"prometheusSpec": {**nothing_by_release, "retention": "15d"}},
        "grafana": {
            "admin": {"existingSecret": env.observability.grafana_admin_secret,
                      "userKey": "admin-user", "passwordKey": "admin-password"},
            "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1",
                                       "searchNamespace": "ALL"}},
        },
        # Lets alerts and dashboards map a pod (and its GPUs) to the model that owns it.
        "kube-state-metrics": {"metricLabelsAllowlist": ["pods=[app.kubernetes.io/instance]"]},
    }


def adapter_values(env: Environment) -> dict[str, Any]:
    """prometheus-adapter: only the Pods metrics the environment's HPAs read."""
    assert env.observability is not None
    # The chart takes the address and the port apart.
    parts = urlsplit(env.observability.prometheus_url)
    url = f"{parts.scheme}://{parts.hostname}{parts.path.rstrip('/')}"
    port = parts.port or (443 if parts.scheme == "https" else 9090)
    return {
        "prometheus": {"url": url, "port": port},
        "rules": {"default": False, "custom": metrics.adapter_rules(env)},
    }


def dcgm_values(env: Environment) -> dict[str, Any]:
    """DCGM exporter on GPU nodes only; honorLabels keeps the pod/namespace of the GPU's user."""
    return {
        "serviceMonitor": {"enabled": True, "honorLabels": True, "interval": "15s"},
        "tolerations": [GPU_TOLERATION],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "nimgen.io/node-pool", "operator": "Exists"}]}]}}},
    }


def keda_values(env: Environment) -> dict[str, Any]:
    """KEDA: its operator and metrics server scraped by the stack, so scaler errors are visible."""
    return {"prometheus": {part: {"enabled": True, "serviceMonitor": {"enabled": True}}
                           for part in ("operator", "metricServer")}}


def dashboards_values(env: Environment) -> dict[str, Any]:
    """Values of charts/nim-observability."""
    return {"commonLabels": {"nimgen.io/environment": env.name}, "dashboardLabel": {DASHBOARD_LABEL: "1"}}
