"""Objects a cluster has that no manifest of the tree shows: what Kubernetes and terraform/ provide, and what the
Prometheus Operator makes of the custom resources and flags it is given.

validate's selector rules match Services and ServiceMonitors against these stand-ins too, so that a Service that
selects an operator's pods, or a ServiceMonitor that selects the Service the operator keeps for the kubelets, is not
reported as selecting nothing. Each stand-in carries only what those rules read: labels and named ports, as the
sources cited below create them.
"""

from __future__ import annotations

from typing import Any

from nimgen.validation.manifests import Applied

# Runs the stand-ins through the same rules as rendered objects; no file holds them.
RUN_TIME = "(created at run time)"

# Kubernetes' API server keeps `default/kubernetes` (pkg/controlplane/controller/kubernetesservice: labels
# component=apiserver and provider=kubernetes, port "https"), which kube-prometheus-stack's apiserver monitor selects.
_BUILTIN: tuple[dict[str, Any], ...] = (
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "kubernetes", "namespace": "default",
                  "labels": {"component": "apiserver", "provider": "kubernetes"}},
     "spec": {"ports": [{"name": "https", "port": 443}]}},
)
# terraform/eks.tf installs the EKS CoreDNS add-on: its Deployment `kube-system/coredns` selects pods labelled
# k8s-app=kube-dns and eks.amazonaws.com/component=coredns, serving DNS on 53 and metrics on 9153.
_TERRAFORM: tuple[dict[str, Any], ...] = (
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "coredns", "namespace": "kube-system"},
     "spec": {"template": {"metadata": {"labels": {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"}},
                           "spec": {"containers": [{"name": "coredns", "ports": [
                               {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                               {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}]}]}}}},
)

_OPERATOR_GROUP = "monitoring.coreos.com/v1"
_MANAGED_BY = {"app.kubernetes.io/managed-by": "prometheus-operator"}
# The config reloader beside Prometheus and Alertmanager (pkg/operator/config_reloader.go).
_RELOADER = {"name": "config-reloader", "ports": [{"name": "reloader-web", "containerPort": 8080}]}


def _prometheus(obj: dict[str, Any]) -> dict[str, Any]:
    """The StatefulSet the operator (v0.86, pkg/prometheus/server) makes of a Prometheus: selector labels
    (makeSelectorLabels), shard 0, spec.podMetadata.labels; the web port under spec.portName."""
    spec, name = obj.get("spec") or {}, str(obj["metadata"]["name"])
    labels = {**((spec.get("podMetadata") or {}).get("labels") or {}), **_MANAGED_BY,
              "app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": name,
              "operator.prometheus.io/name": name, "prometheus": name, "operator.prometheus.io/shard": "0"}
    ports = [] if spec.get("listenLocal") else [{"name": spec.get("portName") or "web", "containerPort": 9090}]
    return _workload(obj, f"prometheus-{name}", labels, [{"name": "prometheus", "ports": ports}, _RELOADER])


def _alertmanager(obj: dict[str, Any]) -> dict[str, Any]:
    """The StatefulSet the operator (v0.86, pkg/alertmanager) makes of an Alertmanager: selector labels
    (makeSelectorLabels), spec.podMetadata.labels; the web port under spec.portName and the mesh ports."""
    spec, name = obj.get("spec") or {}, str(obj["metadata"]["name"])
    labels = {**((spec.get("podMetadata") or {}).get("labels") or {}), **_MANAGED_BY,
              "app.kubernetes.io/name": "alertmanager", "app.kubernetes.io/instance": name, "alertmanager": name}
    ports = [{"name": "mesh-tcp", "containerPort": 9094, "protocol": "TCP"},
             {"name": "mesh-udp", "containerPort": 9094, "protocol": "UDP"}]
    if not spec.get("listenLocal"):
        ports.insert(0, {"name": spec.get("portName") or "web", "containerPort": 9093})
    return _workload(obj, f"alertmanager-{name}", labels, [{"name": "alertmanager", "ports": ports}, _RELOADER])


def _workload(obj: dict[str, Any], name: str, labels: dict[str, Any], containers: list[dict[str, Any]]
              ) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": obj["metadata"].get("namespace", "")},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}}


def _kubelet_service(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The Service the operator keeps for the kubelets when started with --kubelet-service=NAMESPACE/NAME
    (pkg/kubelet/controller.go: labels k8s-app and app.kubernetes.io/name kubelet; three named ports)."""
    found = []
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in template.get("containers") or []:
        for arg in container.get("args") or []:
            if isinstance(arg, str) and arg.startswith("--kubelet-service="):
                namespace, _, name = arg.removeprefix("--kubelet-service=").partition("/")
                found.append({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": name, "namespace": namespace,
                                           "labels": {"k8s-app": "kubelet", "app.kubernetes.io/name": "kubelet",
                                                      **_MANAGED_BY}},
                              "spec": {"clusterIP": "None", "ports": [
                                  {"name": "https-metrics", "port": 10250}, {"name": "http-metrics", "port": 10255},
                                  {"name": "cadvisor", "port": 4194}]}})
    return found


def _made_by(applied: Applied) -> list[dict[str, Any]]:
    obj = applied.obj
    if obj.get("apiVersion") == _OPERATOR_GROUP and isinstance((obj.get("metadata") or {}).get("name"), str):
        if obj.get("kind") == "Prometheus":
            return [_prometheus(obj)]
        if obj.get("kind") == "Alertmanager":
            return [_alertmanager(obj)]
    if obj.get("kind") == "Deployment":
        return _kubelet_service(obj)
    return []


def stand_ins(objects: list[Applied]) -> list[Applied]:
    """The objects that will exist beside `objects` on the cluster: Kubernetes' and terraform/'s, and those the
    Prometheus Operator makes of what `objects` hold (each under the Application of the object it comes from)."""
    found = [Applied(obj, "", RUN_TIME) for obj in (*_BUILTIN, *_TERRAFORM)]
    for applied in objects:
        found += [Applied(obj, applied.application, RUN_TIME) for obj in _made_by(applied)]
    return found
