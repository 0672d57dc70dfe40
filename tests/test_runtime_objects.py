"""What the cluster adds to the tree: the pods the Prometheus Operator makes of Prometheus and Alertmanager, the
Service it keeps for the kubelets, Kubernetes' own Service and terraform/'s CoreDNS. Services and ServiceMonitors
that select them select something; one step beside them (another namespace, another name, a port they lack) does
not."""

from __future__ import annotations

import re
from typing import Any

from conftest import PROJECT
from nimgen.validation import runtime
from nimgen.validation.manifests import Applied
from test_crossref_rules import messages, obj, run, service

MONITORING = "monitoring.coreos.com/v1"


def prometheus(name: str = "stack-prometheus", namespace: str = "monitoring", **spec: Any) -> dict[str, Any]:
    return obj("Prometheus", name, namespace, MONITORING, spec=spec)


def alertmanager(name: str = "stack-alertmanager", namespace: str = "monitoring", **spec: Any) -> dict[str, Any]:
    return obj("Alertmanager", name, namespace, MONITORING, spec=spec)


def monitor(name: str, selector: dict[str, Any], namespaces: list[str], port: str) -> dict[str, Any]:
    return obj("ServiceMonitor", name, "monitoring", MONITORING,
               spec={"selector": {"matchLabels": selector}, "namespaceSelector": {"matchNames": namespaces},
                     "endpoints": [{"port": port}]})


def operator(*args: str) -> dict[str, Any]:
    return obj("Deployment", "stack-operator", "monitoring", "apps/v1", spec={"template": {
        "metadata": {"labels": {"app": "operator"}},
        "spec": {"containers": [{"name": "operator", "image": "quay.io/prometheus-operator/prometheus-operator:v0.86.2",
                                 "args": list(args)}]}}})


PROMETHEUS_SELECTOR = {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": "stack-prometheus"}
ALERTMANAGER_SELECTOR = {"app.kubernetes.io/name": "alertmanager", "alertmanager": "stack-alertmanager"}
OPERATOR_PORTS = [{"name": "http-web", "port": 9090, "targetPort": 9090},
                  {"name": "reloader-web", "port": 8080, "targetPort": "reloader-web"}]


def test_a_service_selects_the_pods_the_operator_makes_of_a_prometheus_and_its_reloader_port() -> None:
    # kube-prometheus-stack's own Services, as the chart renders them.
    found = run(prometheus(), alertmanager(),
                service("stack-prometheus", "monitoring", PROMETHEUS_SELECTOR, OPERATOR_PORTS),
                service("stack-alertmanager", "monitoring", ALERTMANAGER_SELECTOR,
                        [{"name": "http-web", "port": 9093, "targetPort": "web"},
                         {"name": "reloader-web", "port": 8080, "targetPort": "reloader-web"}]))
    assert messages(found) == []


def test_the_operators_pods_are_where_their_resource_is_and_carry_its_name() -> None:
    found = run(prometheus(namespace="other"), alertmanager(name="another"),
                service("stack-prometheus", "monitoring", PROMETHEUS_SELECTOR),
                service("stack-alertmanager", "monitoring", ALERTMANAGER_SELECTOR))
    assert messages(found) == [
        ("Service monitoring/stack-alertmanager: selects no pod: no pod template in namespace monitoring has labels "
        f"{ALERTMANAGER_SELECTOR}"),
        ("Service monitoring/stack-prometheus: selects no pod: no pod template in namespace monitoring has labels "
        f"{PROMETHEUS_SELECTOR}")]


def test_the_web_port_follows_port_name_and_listen_local_leaves_it_out() -> None:
    web = [{"name": "http-web", "port": 9090, "targetPort": "web"}]
    assert messages(run(prometheus(), service("p", "monitoring", PROMETHEUS_SELECTOR, web))) == []
    assert messages(run(prometheus(portName="http"), service("p", "monitoring", PROMETHEUS_SELECTOR, web))) == [
        "Service monitoring/p: targetPort 'web' is no container port of the pods it selects"]
    assert messages(run(prometheus(listenLocal=True), service("p", "monitoring", PROMETHEUS_SELECTOR, web))) == [
        "Service monitoring/p: targetPort 'web' is no container port of the pods it selects"]
    mesh = [{"name": "mesh", "port": 9094, "targetPort": "mesh-tcp"}]
    assert messages(run(alertmanager(listenLocal=True), service("a", "monitoring", ALERTMANAGER_SELECTOR, mesh))) == []


def test_pod_metadata_labels_reach_the_operators_pods() -> None:
    selector = {"team": "ml", "prometheus": "stack-prometheus"}
    assert messages(run(prometheus(podMetadata={"labels": {"team": "ml"}}),
                        service("p", "monitoring", selector))) == []
    assert messages(run(prometheus(), service("p", "monitoring", selector)), "service-selector") != []


def test_the_kubelet_service_exists_where_the_operators_flag_puts_it() -> None:
    kubelet = monitor("kubelet", {"app.kubernetes.io/name": "kubelet", "k8s-app": "kubelet"}, ["kube-system"],
                      "https-metrics")
    assert messages(run(operator("--kubelet-service=kube-system/stack-kubelet"), kubelet)) == []
    assert messages(run(operator(), kubelet)) == ["ServiceMonitor monitoring/kubelet: selects no Service"]
    assert messages(run(operator("--kubelet-service=monitoring/stack-kubelet"), kubelet)) == [
        "ServiceMonitor monitoring/kubelet: selects no Service"]
    cadvisor = monitor("kubelet", {"k8s-app": "kubelet"}, ["kube-system"], "metrics")
    assert messages(run(operator("--kubelet-service=kube-system/stack-kubelet"), cadvisor)) == [
        "ServiceMonitor monitoring/kubelet: port 'metrics' is not a named port of the Services it selects"]


def test_kubernetes_own_service_and_terraforms_coredns_are_on_every_cluster() -> None:
    apiserver = monitor("apiserver", {"component": "apiserver", "provider": "kubernetes"}, ["default"], "https")
    coredns = service("stack-coredns", "kube-system", {"k8s-app": "kube-dns"}, [{"name": "metrics", "port": 9153}])
    assert messages(run(apiserver, coredns)) == []
    elsewhere = service("stack-coredns", "monitoring", {"k8s-app": "kube-dns"})
    assert messages(run(elsewhere)) == [
        ("Service monitoring/stack-coredns: selects no pod: no pod template in namespace monitoring has labels "
        "{'k8s-app': 'kube-dns'}")]


def test_stand_ins_belong_to_the_application_of_what_they_come_from() -> None:
    made = runtime.stand_ins([Applied(prometheus(), "kube-prometheus-stack", "chart"),
                              Applied(obj("Prometheus", "x", "m", "monitoring.coreos.com/v1beta1"), "other", "chart")])
    assert [(a.obj["kind"], a.obj["metadata"]["name"], a.application, a.file) for a in made] == [
        ("Service", "kubernetes", "", runtime.RUN_TIME), ("Deployment", "coredns", "", runtime.RUN_TIME),
        ("StatefulSet", "prometheus-stack-prometheus", "kube-prometheus-stack", runtime.RUN_TIME)]


def test_terraform_installs_the_coredns_add_on_the_stand_in_is_for() -> None:
    eks = (PROJECT / "terraform" / "eks.tf").read_text(encoding="utf-8")
    assert re.search(r"addons\s*=\s*\{[^}]*\bcoredns\s*=", eks)
