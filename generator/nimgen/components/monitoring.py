"""The monitoring platform: kube-prometheus-stack, prometheus-adapter, DCGM exporter, KEDA and nimgen's dashboards.

Five components that share one Prometheus and one set of rights in the platform project. The upstream
charts are installed from their Helm repositories at pinned versions (the environment file may move a
pin); nimgen's own nim-observability chart carries the Grafana dashboard. KEDA is here because its
triggers read this Prometheus.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import urlsplit

from nimgen.components import alerting, metrics
from nimgen.components.base import Add, AppSpec, Chart, Component, Grants, Kind
from nimgen.errors import shorten as _s
from nimgen.model import Environment, Prerequisite, Ref, Waiver

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

# The stack brings the Prometheus Operator CRDs the models' ServiceMonitors need; the others follow it.
WAVE_STACK = -15
WAVE = -12

# Kinds the monitoring charts render, for the platform AppProject.
CLUSTER_KINDS: tuple[Kind, ...] = (
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("apiregistration.k8s.io", "APIService"),
)
NAMESPACED_KINDS: tuple[Kind, ...] = (
    ("", "ConfigMap"), ("", "Secret"), ("", "Service"), ("", "ServiceAccount"), ("", "PersistentVolumeClaim"),
    ("apps", "Deployment"), ("apps", "DaemonSet"), ("apps", "StatefulSet"), ("batch", "Job"),
    ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
    ("policy", "PodDisruptionBudget"),
    ("monitoring.coreos.com", "Prometheus"), ("monitoring.coreos.com", "Alertmanager"),
    ("monitoring.coreos.com", "ServiceMonitor"), ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
)
# KEDA's operator rotates its own certificates and writes their CA into these objects.
KEDA_IGNORE_DIFFERENCES: tuple[dict[str, Any], ...] = (
    {"group": "apiregistration.k8s.io", "kind": "APIService", "jsonPointers": ["/spec/caBundle"]},
    {"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration",
     "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]},
)


def resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    """Requests for the scheduler and a memory limit for the OOM killer (no CPU limit: it only throttles)."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


# Sized for a cluster of a few hundred pods; the usage dashboards show when one needs more.
PROMETHEUS_RESOURCES = resources("500m", "2Gi", "8Gi")
ALERTMANAGER_RESOURCES = resources("50m", "128Mi", "256Mi")
OPERATOR_RESOURCES = resources("100m", "128Mi", "512Mi")
# The admission webhook's certificate Jobs (kube-webhook-certgen), run once per sync.
CERTGEN_RESOURCES = resources("10m", "32Mi", "128Mi")
GRAFANA_RESOURCES = resources("100m", "256Mi", "1Gi")
# kiwigrid/k8s-sidecar, which loads the dashboards and data sources from labelled ConfigMaps.
GRAFANA_SIDECAR_RESOURCES = resources("50m", "128Mi", "256Mi")
KUBE_STATE_METRICS_RESOURCES = resources("50m", "128Mi", "512Mi")
NODE_EXPORTER_RESOURCES = resources("50m", "48Mi", "128Mi")
ADAPTER_RESOURCES = resources("100m", "128Mi", "512Mi")
# DCGM's host engine runs inside the exporter.
DCGM_RESOURCES = resources("100m", "256Mi", "1Gi")
GRAFANA_SIDECARS = ("grafana-sc-dashboard", "grafana-sc-datasources")


def prometheus_stack_values(env: Environment) -> dict[str, Any]:
    """kube-prometheus-stack: select every ServiceMonitor and rule, dashboards by label, data on volumes, alerts to
    the environment's receivers, no inlined secret."""
    assert env.observability is not None and env.observability.storage is not None
    nothing_by_release = {f"{kind}SelectorNilUsesHelmValues": False
                          for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig")}
    alertmanager = alerting.alertmanager_values(env.observability)  # a new map on every call
    alertmanager["alertmanagerSpec"]["resources"] = ALERTMANAGER_RESOURCES
    return {
        "fullnameOverride": PROMETHEUS_STACK_RELEASE,
        "crds": {"enabled": True},
        # EKS runs the control plane: there is nothing of it to scrape.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "prometheus": {"prometheusSpec": {**nothing_by_release, **alerting.prometheus_spec(env.observability.storage),
                                          "resources": PROMETHEUS_RESOURCES}},
        "alertmanager": alertmanager,
        "prometheusOperator": {"resources": OPERATOR_RESOURCES,
                               "admissionWebhooks": {"patch": {"resources": CERTGEN_RESOURCES}}},
        "grafana": {
            "admin": {"existingSecret": env.observability.grafana_admin_secret,
                      "userKey": "admin-user", "passwordKey": "admin-password"},
            "resources": GRAFANA_RESOURCES,
            "sidecar": {"resources": GRAFANA_SIDECAR_RESOURCES,
                        "dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1",
                                       "searchNamespace": "ALL"}},
        },
        # Lets alerts and dashboards map a pod (and its GPUs) to the model that owns it.
        "kube-state-metrics": {"metricLabelsAllowlist": ["pods=[app.kubernetes.io/instance]"],
                               "resources": KUBE_STATE_METRICS_RESOURCES},
        "prometheus-node-exporter": {"resources": NODE_EXPORTER_RESOURCES},
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
        "resources": ADAPTER_RESOURCES,
    }


def dcgm_values(env: Environment) -> dict[str, Any]:
    """DCGM exporter on GPU nodes only; honorLabels keeps the pod/namespace of the GPU's user."""
    return {
        "serviceMonitor": {"enabled": True, "honorLabels": True, "interval": "15s"},
        "resources": DCGM_RESOURCES,
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


class _Monitoring(Component):
    """A piece of the monitoring platform: on with observability.enabled, with the platform's shared rights."""

    readme: ClassVar[dict[str, str]] = {}
    sync_label: ClassVar[str] = "monitoring"

    def enabled(self, env: Environment) -> bool:
        return env.observability is not None

    def grants(self, env: Environment) -> Grants:
        assert env.observability is not None
        return Grants(CLUSTER_KINDS, NAMESPACED_KINDS)

    def _app(self, env: Environment, name: str, chart: Chart, values: dict[str, Any], purpose: str, *,
             wave: int = WAVE, namespace: str = "", sync_options: tuple[str, ...] = (),
             ignore_differences: tuple[dict[str, Any], ...] = ()) -> AppSpec:
        assert env.observability is not None
        return AppSpec(name, chart, values, namespace or env.observability.namespace, wave, (("Purpose", purpose),),
                       sync_options=sync_options, ignore_differences=ignore_differences)


class PrometheusStack(_Monitoring):
    """Prometheus, Alertmanager, Grafana and kube-state-metrics (unless an existing Prometheus is used)."""

    application_names: ClassVar[tuple[str, ...]] = (PROMETHEUS_STACK_RELEASE,)

    def enabled(self, env: Environment) -> bool:
        return env.observability is not None and env.observability.prometheus_stack

    def applications(self, env: Environment) -> list[AppSpec]:
        assert env.observability is not None
        chart = Chart(PROMETHEUS_STACK_REPO[1], PROMETHEUS_STACK_REPO[0], env.observability.prometheus_stack_version)
        # Its CRDs exceed the annotation size client-side apply needs: server-side apply only.
        return [self._app(env, PROMETHEUS_STACK_RELEASE, chart, prometheus_stack_values(env),
                          "Prometheus, Alertmanager, Grafana, kube-state-metrics", wave=WAVE_STACK,
                          sync_options=("ServerSideApply=true",))]

    def grants(self, env: Environment) -> Grants:
        # It also puts the Services it scrapes CoreDNS and the kubelet through in kube-system.
        return Grants(CLUSTER_KINDS, NAMESPACED_KINDS, ("kube-system",))

    def _admin(self, env: Environment) -> Ref:
        assert env.observability is not None
        return Ref("Secret", env.observability.namespace, env.observability.grafana_admin_secret)

    def _storage_class(self, env: Environment) -> Ref:
        assert env.observability is not None and env.observability.storage is not None
        return Ref("StorageClass", "", env.observability.storage.storage_class)

    def needs(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        # Grafana reads its admin from this Secret (grafana.admin.existingSecret): it never starts without it. The
        # Prometheus Operator's StatefulSets claim volumes of the class and mount the receivers' Secrets; none of it
        # shows in the chart's own objects.
        assert env.observability is not None
        receivers = tuple(Ref("Secret", env.observability.namespace, alerting.secret_name(r))
                          for r in env.observability.receivers)
        return {PROMETHEUS_STACK_RELEASE: (self._admin(env), self._storage_class(env), *receivers)}

    def crds(self, env: Environment) -> dict[str, tuple[str, ...]]:
        return {PROMETHEUS_STACK_RELEASE: ("monitoring.coreos.com",)}

    def run_time_objects(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        # The operator's admission webhook certificate: the chart's admission-create Job (a pre-install hook, which
        # Argo CD runs as PreSync) writes it before the operator's Deployment is applied.
        assert env.observability is not None
        return {PROMETHEUS_STACK_RELEASE: (Ref("Secret", env.observability.namespace,
                                               f"{PROMETHEUS_STACK_RELEASE}-admission"),)}

    def generated_secrets(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        # Alertmanager's configuration file, which the chart renders from alertmanager.config: routes and receivers
        # whose credentials are files of the receivers' own Secrets (alerting.alertmanager_config).
        assert env.observability is not None
        return {PROMETHEUS_STACK_RELEASE: (Ref("Secret", env.observability.namespace,
                                               f"alertmanager-{PROMETHEUS_STACK_RELEASE}-alertmanager"),)}

    def policy_waivers(self, env: Environment) -> dict[str, tuple[Waiver, ...]]:
        assert env.observability is not None
        grafana = Ref("Deployment", env.observability.namespace, f"{PROMETHEUS_STACK_RELEASE}-grafana")
        return {PROMETHEUS_STACK_RELEASE: tuple(
            Waiver("probes", grafana, sidecar, "k8s-sidecar serves no health endpoint, so a probe could only ask "
                   "whether the process runs, which the kubelet sees anyway") for sidecar in GRAFANA_SIDECARS)}

    def prerequisites(self, env: Environment) -> tuple[Prerequisite, ...]:
        assert env.observability is not None and env.observability.storage is not None
        found = []
        if not env.observability.grafana_admin_remote:
            found.append(Prerequisite(self._admin(env), "Grafana's admin-user and admin-password "
                                      "(observability.grafanaAdminSecret); or set "
                                      "observability.grafanaAdminExternalSecret"))
        if env.observability.storage.storage_class != env.block_storage.storage_class:
            found.append(Prerequisite(self._storage_class(env), "Prometheus' and Alertmanager's volumes "
                                      "(observability.prometheusStack.storage.storageClassName)"))
        return tuple(found)

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        """Without the stack, prometheus-adapter and KEDA need the address of the Prometheus to query; receivers
        and volumes are checked in `alerting`."""
        alerting.check(document, add)
        obs = document.get("observability") or {}
        if (obs.get("enabled") and (obs.get("prometheusStack") or {}).get("enabled", True) is False
                and not obs.get("prometheusUrl")):
            add(["observability", "prometheusStack"],
                "without kube-prometheus-stack, set observability.prometheusUrl (the Prometheus prometheus-adapter "
                "queries)", "e.g. prometheusUrl: http://prometheus-operated.monitoring.svc:9090")


def _scaled(document: Any, models: list[Any]) -> list[tuple[int, Any, dict[str, Any]]]:
    """(index, model, autoscaling) of the models with a replica range, when observability is off."""
    if (document.get("observability") or {}).get("enabled"):
        return []
    found = []
    for index, model in enumerate(models):
        if isinstance(model, dict):
            replicas = model.get("replicas") or {}
            if replicas.get("max", 1) > replicas.get("min", 1):
                found.append((index, model, model.get("autoscaling") or {}))
    return found


class PrometheusAdapter(_Monitoring):
    """Serves the HPAs' Pods metrics, when some model scales with an HPA."""

    application_names: ClassVar[tuple[str, ...]] = (ADAPTER_RELEASE,)

    def enabled(self, env: Environment) -> bool:
        return env.observability is not None and env.uses_adapter

    def applications(self, env: Environment) -> list[AppSpec]:
        assert env.observability is not None
        chart = Chart(ADAPTER_REPO[1], ADAPTER_REPO[0], env.observability.adapter_version)
        return [self._app(env, ADAPTER_RELEASE, chart, adapter_values(env),
                          "NIM load metrics as Pods metrics for the HPAs")]

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        """An HPA scaling on a NIM metric needs something to serve it."""
        for index, model, autoscaling in _scaled(document, models):
            if autoscaling.get("engine") != "keda":
                metric = autoscaling.get("metric", "num_requests_running")
                add(["models", index], f"model '{_s(model['name'])}' scales on {metric}, but observability is off: "
                                       "nothing nimgen renders serves that metric to its HPA",
                    "set observability.enabled: true (prometheus-adapter with the rule), or serve the metric yourself",
                    warning=True)


class Keda(_Monitoring):
    """KEDA, when some model scales through a ScaledObject."""

    application_names: ClassVar[tuple[str, ...]] = (KEDA_RELEASE,)

    def enabled(self, env: Environment) -> bool:
        return env.observability is not None and env.uses_keda

    def applications(self, env: Environment) -> list[AppSpec]:
        assert env.observability is not None
        chart = Chart(KEDA_REPO[1], KEDA_REPO[0], env.observability.keda_version)
        # Its CRDs (ScaledJob) exceed client-side apply's annotation limit too.
        return [self._app(env, KEDA_RELEASE, chart, keda_values(env), "KEDA: ScaledObjects on Prometheus queries",
                          namespace=KEDA_NAMESPACE, sync_options=("ServerSideApply=true",),
                          ignore_differences=KEDA_IGNORE_DIFFERENCES)]

    def crds(self, env: Environment) -> dict[str, tuple[str, ...]]:
        return {KEDA_RELEASE: ("keda.sh",)}

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        """A Prometheus trigger needs a Prometheus."""
        for index, model, autoscaling in _scaled(document, models):
            if autoscaling.get("engine") == "keda":
                add(["models", index, "autoscaling", "engine"],
                    f"model '{_s(model['name'])}' scales with KEDA, whose Prometheus trigger needs a Prometheus, but "
                    "observability is off", "set observability.enabled: true (or observability.prometheusUrl with "
                    "prometheusStack.enabled: false), or use engine: hpa")


class DcgmExporter(_Monitoring):
    """GPU utilisation and memory from the GPU nodes."""

    application_names: ClassVar[tuple[str, ...]] = (DCGM_RELEASE,)

    def enabled(self, env: Environment) -> bool:
        return env.observability is not None and env.observability.dcgm_exporter

    def applications(self, env: Environment) -> list[AppSpec]:
        assert env.observability is not None
        chart = Chart(DCGM_REPO[1], DCGM_REPO[0], env.observability.dcgm_exporter_version)
        return [self._app(env, DCGM_RELEASE, chart, dcgm_values(env), "GPU utilisation and memory")]

    def policy_waivers(self, env: Environment) -> dict[str, tuple[Waiver, ...]]:
        assert env.observability is not None
        exporter = Ref("DaemonSet", env.observability.namespace, DCGM_RELEASE)
        return {DCGM_RELEASE: (Waiver("non-root", exporter, "exporter", "DCGM's profiling metrics need "
                                      "CAP_SYS_ADMIN, which the image's entrypoint grants itself as root (the chart's "
                                      "own securityContext)"),)}


class Dashboards(_Monitoring):
    """nimgen's nim-observability chart: the Grafana dashboard, generated from NIM's metric list."""

    application_names: ClassVar[tuple[str, ...]] = (DASHBOARDS_RELEASE,)
    # The one piece on whenever observability is: it describes the whole monitoring platform.
    readme: ClassVar[dict[str, str]] = {"platform": "readme/monitoring-platform.md.j2"}

    def applications(self, env: Environment) -> list[AppSpec]:
        return [self._app(env, DASHBOARDS_RELEASE, Chart(DASHBOARDS_CHART), dashboards_values(env),
                          "Grafana dashboards")]

    def files(self, env: Environment) -> dict[PurePosixPath, str]:
        # Shared by every environment, like the chart it belongs to.
        return {PurePosixPath(DASHBOARDS_CHART_PATH) / DASHBOARD_FILE: json.dumps(metrics.dashboard(), indent=2)}
