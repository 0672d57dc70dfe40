"""validate's cross-object rules, object by object: each link a schema cannot see, broken and kept.

The end-to-end cases in test_validate.py prove the rules run on a committed tree; these call the rules
on hand-built manifests so that every branch has a test that fails when it breaks, in milliseconds.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from nimgen.model import Environment
from nimgen.validation import crossref
from nimgen.validation.crossref import Pod, lands_on, pods, selects
from nimgen.validation.findings import Finding
from nimgen.validation.manifests import Applied
from nimgen.validation.sources import AppResult

ENV = cast(Environment, SimpleNamespace(name="prod"))  # the rules read only the environment's name
WAVE = "argocd.argoproj.io/sync-wave"


def obj(kind: str, name: str, namespace: str | None = "nim", api: str = "v1", **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    meta.update(fields.pop("meta", {}))
    return {"apiVersion": api, "kind": kind, "metadata": meta, **fields}


def workload(name: str = "web", namespace: str = "nim", kind: str = "Deployment", labels: dict[str, str] | None = None,
             **spec: Any) -> dict[str, Any]:
    pod_spec = {"containers": [{"name": "app", "image": "example.com/app:1"}], **spec}
    return obj(kind, name, namespace, "apps/v1",
               spec={"template": {"metadata": {"labels": labels or {"app": name}}, "spec": pod_spec}})


def service(name: str = "web", namespace: str = "nim", selector: dict[str, str] | None = None,
            ports: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return obj("Service", name, namespace, meta={"labels": labels or {}},
               spec={"selector": selector if selector is not None else {"app": name},
                     "ports": ports if ports is not None else [{"port": 80}]})


def application(name: str, project: str = "models", namespace: str = "nim", wave: int = 0,
                repo: str = "https://git.example.com/gitops.git") -> dict[str, Any]:
    return obj("Application", name, "argocd", "argoproj.io/v1alpha1", meta={"annotations": {WAVE: str(wave)}},
               spec={"project": project, "destination": {"namespace": namespace}, "source": {"repoURL": repo}})


def run(*rendered: dict[str, Any], manifests: tuple[dict[str, Any], ...] = (), app: str = "web",
        apps: dict[str, list[dict[str, Any]]] | None = None, shape_errors: bool = False) -> list[Finding]:
    """The findings for manifests committed beside the Applications and objects rendered by Applications.

    A rule that trips over a manifest reports it under its own name, which tests filtering by check would not
    see: unless `shape_errors` says the test is about that, any such finding fails the test here."""
    by_app = apps if apps is not None else {app: list(rendered)}
    results = [AppResult(app={"metadata": {"name": name}}, file=f"{name}.yaml",
                         objects=[Applied(o, name, "chart") for o in objects]) for name, objects in by_app.items()]
    found = crossref.check(ENV, [Applied(m, "", "argocd/prod/apps.yaml") for m in manifests], results)
    if not shape_errors:
        assert [f for f in found if f.message.startswith("check could not finish")] == []
    return found


def messages(findings: list[Finding], check: str | None = None) -> list[str]:
    return sorted(f"{f.obj}: {f.message}" for f in findings if check is None or f.check == check)


# ------------------------------------------------------------------ pod templates and label selectors


def test_pod_templates_of_every_owner_kind() -> None:
    cron = obj("CronJob", "nightly", api="batch/v1", spec={"jobTemplate": {"spec": {"template": {
        "metadata": {"labels": {"app": "nightly"}}, "spec": {"containers": [{"name": "c"}]}}}}})
    bare = obj("Pod", "once", meta={"labels": {"app": "once"}}, spec={"containers": [{"name": "p"}]})
    found = pods([Applied(o, "a", "f") for o in (workload(kind="StatefulSet"), cron, bare, service())])
    assert [(p.owner.obj["kind"], p.labels, p.prefix, p.namespace) for p in found] == [
        ("StatefulSet", {"app": "web"}, "spec.template.spec", "nim"),
        ("CronJob", {"app": "nightly"}, "spec.jobTemplate.spec.template.spec", "nim"),
        ("Pod", {"app": "once"}, "spec", "nim")]
    assert found[1].spec == {"containers": [{"name": "c"}]}


def test_pod_of_a_workload_without_template_has_no_labels() -> None:
    [pod] = pods([Applied(obj("Job", "j", api="batch/v1", spec={}), "a", "f")])
    assert (pod.labels, pod.spec) == ({}, {})


@pytest.mark.parametrize(("selector", "labels", "chosen"), [
    ({}, {}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "x"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "api"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, {"tier": "b"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "b"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"app": "web"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "a"}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "web"}, False),
])
def test_label_selectors(selector: dict[str, Any], labels: dict[str, str], chosen: bool) -> None:
    assert selects(selector, labels) is chosen


# ------------------------------------------------------------------ Services


def test_service_selecting_its_pods_by_named_port_is_clean() -> None:
    web = workload(containers=[{"name": "app", "ports": [{"name": "http", "containerPort": 8000}]}])
    assert run(web, service(ports=[{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8000}])) == []


def test_service_without_selector_is_not_checked() -> None:
    assert run(service(selector={})) == []


def test_service_selecting_no_pod() -> None:
    [finding] = run(workload(), service(selector={"app": "api"}))
    assert (finding.check, finding.obj, finding.path, finding.application, finding.environment) == (
        "service-selector", "Service nim/web", "spec.selector", "web", "prod")
    assert finding.message == "selects no pod: no pod template in namespace nim has labels {'app': 'api'}"
    assert finding.hint == "make the selector match the workload's pod template labels"
    assert finding.severity == "error"


def test_service_needs_every_selector_label() -> None:
    assert messages(run(workload(labels={"app": "web"}), service(selector={"app": "web", "tier": "x"}))) == [
        "Service nim/web: selects no pod: no pod template in namespace nim has labels {'app': 'web', 'tier': 'x'}"]


def test_service_never_selects_pods_of_another_namespace() -> None:
    assert messages(run(workload(namespace="other"), service())) == [
        "Service nim/web: selects no pod: no pod template in namespace nim has labels {'app': 'web'}"]


def test_service_named_target_port_must_be_a_container_port() -> None:
    web = workload(containers=[{"name": "app", "ports": [{"name": "http", "containerPort": 8000}]}])
    [finding] = run(web, service(ports=[{"port": 80, "targetPort": "http"}, {"port": 9090, "targetPort": "metrics"}]))
    assert (finding.check, finding.path, finding.message) == (
        "service-selector", "spec.ports[1].targetPort", "targetPort 'metrics' is no container port of the pods it selects")
    assert finding.hint == ""  # a finding without a fix says none


def test_service_named_port_of_any_selected_pod_counts() -> None:
    first = workload("a", labels={"app": "web"}, containers=[{"name": "a", "ports": [{"name": "http"}]}])
    second = workload("b", labels={"app": "web"}, containers=[{"name": "b", "ports": [{"name": "metrics"}]}])
    assert run(first, second, service(ports=[{"port": 1, "targetPort": "http"}, {"port": 2, "targetPort": "metrics"}])) == []


def test_service_in_a_committed_manifest_selects_rendered_pods() -> None:
    assert run(workload(), manifests=(service(),)) == []


# ------------------------------------------------------------------ claims and volumes


def claim(name: str = "cache", namespace: str = "nim") -> dict[str, Any]:
    return obj("PersistentVolumeClaim", name, namespace, spec={"accessModes": ["ReadWriteMany"]})


def mounting(claim_name: str = "cache", namespace: str = "nim", mount: str = "cache") -> dict[str, Any]:
    return workload(namespace=namespace, volumes=[{"name": "cache", "persistentVolumeClaim": {"claimName": claim_name}}],
                    containers=[{"name": "app", "volumeMounts": [{"name": mount, "mountPath": "/cache"}]}])


def test_pod_mounting_an_existing_claim_is_clean() -> None:
    assert run(mounting(), claim()) == []


def test_pod_mounting_a_missing_claim() -> None:
    [finding] = run(mounting(claim_name="gone"), claim())
    assert (finding.check, finding.obj, finding.path) == (
        "claim", "Deployment nim/web", "spec.template.spec.volumes[0].persistentVolumeClaim.claimName")
    assert finding.message == "mounts claim 'gone', which no manifest of the environment creates in namespace nim"
    assert finding.hint == ("let nimgen create it (storage.modelCache) or point cache.claimName at a claim in the "
                            "model's namespace")


def test_claim_of_another_namespace_does_not_count() -> None:
    assert messages(run(mounting(), claim(namespace="other")), "claim") == [
        "Deployment nim/web: mounts claim 'cache', which no manifest of the environment creates in namespace nim"]


def test_mount_of_an_undeclared_volume() -> None:
    [finding] = run(mounting(mount="scratch"), claim())
    assert (finding.check, finding.path, finding.message) == (
        "claim", "spec.template.spec.containers[0].volumeMounts[0].name",
        "mounts volume 'scratch', which is neither a volume of the pod nor a claim template")


def test_mount_of_a_claim_template_is_clean() -> None:
    sts = workload(kind="StatefulSet", containers=[{"name": "app", "volumeMounts": [{"name": "data"}]}])
    sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    assert run(sts) == []


def test_volumes_without_claims_are_not_claims() -> None:
    assert run(workload(volumes=[{"name": "tmp", "emptyDir": {}}],
                        containers=[{"name": "app", "volumeMounts": [{"name": "tmp"}]}])) == []


# ------------------------------------------------------------------ autoscaler targets


def hpa(target: dict[str, Any], kind: str = "HorizontalPodAutoscaler", api: str = "autoscaling/v2") -> dict[str, Any]:
    return obj(kind, "scaler", api=api, spec={"scaleTargetRef": target})


@pytest.mark.parametrize("scaler", [
    hpa({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}),
    hpa({"kind": "Deployment", "name": "web"}, "ScaledObject", "keda.sh/v1alpha1"),  # KEDA's defaults: apps/v1
    hpa({"name": "web"}, "ScaledObject", "keda.sh/v1alpha1"),  # ... and Deployment
])
def test_scaler_of_an_existing_workload_is_clean(scaler: dict[str, Any]) -> None:
    assert run(workload(), scaler) == []


@pytest.mark.parametrize(("scaler", "message"), [
    (hpa({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web"}),
     "scales StatefulSet nim/web, which the environment does not create"),
    (hpa({"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}),
     "scales Deployment nim/api, which the environment does not create"),
    (hpa({"apiVersion": "example.com/v1", "kind": "Deployment", "name": "web"}),
     "scales Deployment nim/web, which the environment does not create"),
    (hpa({"name": "web"}), "scales Deployment nim/web, which the environment does not create"),  # HPA: no group default
    (hpa({"name": "api"}, "ScaledObject", "keda.sh/v1alpha1"),
     "scales Deployment nim/api, which the environment does not create"),
])
def test_scaler_of_a_missing_workload(scaler: dict[str, Any], message: str) -> None:
    [finding] = run(workload(), scaler)
    assert (finding.check, finding.path, finding.message) == ("scale-target", "spec.scaleTargetRef", message)


def test_scaler_target_must_be_in_its_namespace() -> None:
    assert len(run(workload(namespace="other"), hpa({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}))) == 1


# ------------------------------------------------------------------ ServiceMonitors


def monitor(selector: dict[str, Any], namespace: str = "nim", scope: dict[str, Any] | None = None,
            ports: tuple[str, ...] = ("metrics",)) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector, "endpoints": [{"port": p} for p in ports]}
    if scope is not None:
        spec["namespaceSelector"] = scope
    return obj("ServiceMonitor", "mon", namespace, "monitoring.coreos.com/v1", spec=spec)


def metrics_service(namespace: str = "nim") -> dict[str, Any]:
    return service("nim-metrics", namespace, selector={}, labels={"app": "nim"},
                   ports=[{"name": "metrics", "port": 8000}])


def test_servicemonitor_selecting_a_named_port_is_clean() -> None:
    assert run(metrics_service(), monitor({"matchLabels": {"app": "nim"}})) == []


def test_servicemonitor_selecting_no_service() -> None:
    [finding] = run(metrics_service(), monitor({"matchLabels": {"app": "other"}}))
    assert (finding.check, finding.obj, finding.path, finding.message) == (
        "servicemonitor", "ServiceMonitor nim/mon", "spec.selector", "selects no Service")
    assert finding.hint == "match the labels of the Service that exposes the metrics port"


def test_servicemonitor_looks_in_its_own_namespace_by_default() -> None:
    assert len(run(metrics_service("other"), monitor({"matchLabels": {"app": "nim"}}))) == 1


def test_servicemonitor_namespace_selector() -> None:
    selector = {"matchLabels": {"app": "nim"}}
    assert run(metrics_service("other"), monitor(selector, "monitoring", {"matchNames": ["other"]})) == []
    assert run(metrics_service("other"), monitor(selector, "monitoring", {"any": True})) == []
    assert len(run(metrics_service("other"), monitor(selector, "monitoring", {"matchNames": ["nim"]}))) == 1
    assert len(run(metrics_service("other"), monitor(selector, "other", {"any": False, "matchNames": ["nim"]}))) == 1


def test_servicemonitor_port_must_be_named_on_a_selected_service() -> None:
    [finding] = run(metrics_service(), monitor({"matchLabels": {"app": "nim"}}, ports=("metrics", "http")))
    assert (finding.path, finding.message) == (
        "spec.endpoints[1].port", "port 'http' is not a named port of the Services it selects")


def test_servicemonitor_endpoint_without_port_name_is_not_checked() -> None:
    mon = monitor({"matchLabels": {"app": "nim"}})
    mon["spec"]["endpoints"] = [{"targetPort": 8000}]
    assert run(metrics_service(), mon) == []


# ------------------------------------------------------------------ AppProjects


def project(name: str = "models", destinations: tuple[str, ...] = ("nim",), repos: tuple[str, ...] = ("*",),
            cluster: list[dict[str, str]] | None = None, namespaced: list[dict[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"destinations": [{"namespace": d, "server": "https://kubernetes.default.svc"}
                                             for d in destinations],
                            "sourceRepos": list(repos), "clusterResourceWhitelist": cluster or []}
    if namespaced is not None:
        spec["namespaceResourceWhitelist"] = namespaced
    return obj("AppProject", name, "argocd", "argoproj.io/v1alpha1", spec=spec)


def projects_run(proj: dict[str, Any], app: dict[str, Any], *rendered: dict[str, Any]) -> list[str]:
    return messages(run(manifests=(proj, app), apps={app["metadata"]["name"]: list(rendered)}), "project")


def test_application_within_its_project_is_clean() -> None:
    assert projects_run(project(namespaced=[{"group": "apps", "kind": "Deployment"}]), application("web"), workload()) == []


def test_application_destination_outside_its_project() -> None:
    [finding] = run(manifests=(project(), application("web", namespace="kube-system")), apps={"web": []})
    assert (finding.check, finding.obj, finding.path, finding.message) == (
        "project", "Application argocd/web", "spec.destination.namespace",
        "deploys to namespace 'kube-system', which AppProject models does not admit")
    assert finding.hint == "add the namespace to the project's destinations"


def test_project_destination_globs_and_exclusions() -> None:
    assert projects_run(project(destinations=("nim-*",)), application("web", namespace="nim-a")) == []
    assert projects_run(project(destinations=("*", "!kube-*")), application("web", namespace="nim")) == []
    assert projects_run(project(destinations=("*", "!kube-*")), application("web", namespace="kube-system")) == [
        "Application argocd/web: deploys to namespace 'kube-system', which AppProject models does not admit"]
    assert projects_run(project(destinations=("!kube-*",)), application("web", namespace="nim")) == [
        "Application argocd/web: deploys to namespace 'nim', which AppProject models does not admit"]


def test_application_of_an_outside_project_is_not_checked() -> None:
    assert projects_run(project(), application("web", project="default", namespace="anywhere")) == []


def test_application_source_outside_the_project_repos() -> None:
    [finding] = run(manifests=(project(repos=("https://git.example.com/*",)),
                               application("web", repo="https://evil.example.org/x.git")), apps={"web": []})
    assert (finding.path, finding.message) == (
        "spec.source.repoURL", "source https://evil.example.org/x.git is not in AppProject models's sourceRepos")
    assert projects_run(project(repos=("https://git.example.com/*",)), application("web")) == []


def test_application_without_source_repo_is_not_checked_for_repos() -> None:
    app = application("web")
    app["spec"]["source"] = {}
    assert projects_run(project(repos=()), app) == []


def test_cluster_scoped_object_outside_the_whitelist() -> None:
    nodepool = pool("gpu")
    assert projects_run(project(), application("web"), nodepool) == [
        ("NodePool gpu: cluster-scoped karpenter.sh/NodePool is not in AppProject models's clusterResourceWhitelist: "
        "Argo CD refuses to sync it")]
    assert projects_run(project(cluster=[{"group": "karpenter.sh", "kind": "NodePool"}]), application("web"), nodepool) == []
    assert projects_run(project(cluster=[{"group": "*", "kind": "*"}]), application("web"), nodepool) == []
    namespace = obj("Namespace", "nim", None)
    assert projects_run(project(), application("web"), namespace) == [
        ("Namespace nim: cluster-scoped core/Namespace is not in AppProject models's clusterResourceWhitelist: "
        "Argo CD refuses to sync it")]
    assert projects_run(project(cluster=[{"group": "", "kind": "Namespace"}]), application("web"), namespace) == []
    # The finding is about the object as a whole: no field path, no hint beyond the message.
    [finding] = run(manifests=(project(), application("web")), apps={"web": [nodepool]})
    assert (finding.check, finding.path, finding.hint) == ("project", "", "")


def test_cluster_scoped_object_needs_no_destination_namespace() -> None:
    nodepool = pool("gpu")
    assert projects_run(project(destinations=("nim",), cluster=[{"group": "karpenter.sh", "kind": "NodePool"}]),
                        application("web"), nodepool) == []


def test_namespaced_kind_outside_the_whitelist() -> None:
    binding = obj("RoleBinding", "b", "nim", "rbac.authorization.k8s.io/v1")
    assert projects_run(project(namespaced=[{"group": "apps", "kind": "Deployment"}]), application("web"), binding) == [
        ("RoleBinding nim/b: rbac.authorization.k8s.io/RoleBinding is not in AppProject models's "
        "namespaceResourceWhitelist: Argo CD refuses to sync it")]
    assert projects_run(project(namespaced=[{"group": "apps", "kind": "Deployment"}]), application("web"), service()) == [
        ("Service nim/web: core/Service is not in AppProject models's namespaceResourceWhitelist: "
        "Argo CD refuses to sync it")]


def test_kind_rule_needs_group_and_kind() -> None:
    deploy = workload()
    assert projects_run(project(namespaced=[{"group": "apps", "kind": "StatefulSet"}]), application("web"), deploy) != []
    assert projects_run(project(namespaced=[{"group": "batch", "kind": "Deployment"}]), application("web"), deploy) != []
    assert projects_run(project(namespaced=[{"group": "apps", "kind": "*"}]), application("web"), deploy) == []


def test_no_namespaced_whitelist_admits_every_kind() -> None:
    assert projects_run(project(), application("web"), obj("RoleBinding", "b", "nim", "rbac.authorization.k8s.io/v1")) == []


def test_object_landing_outside_the_project_namespaces() -> None:
    stray = workload(namespace="kube-system")
    assert projects_run(project(), application("web"), stray) == [
        "Deployment kube-system/web: lands in namespace 'kube-system', which AppProject models does not admit"]
    [finding] = run(manifests=(project(), application("web")), apps={"web": [stray]})
    assert (finding.path, finding.application) == ("metadata.namespace", "web")


def test_rendered_objects_of_an_application_without_a_result_are_skipped() -> None:
    assert projects_run(project(), application("web")) == []


# ------------------------------------------------------------------ NodePools and GPU placement


def pool(name: str = "gpu", labels: dict[str, str] | None = None, requirements: list[dict[str, Any]] | None = None,
         taints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"requirements": requirements or [], "nodeClassRef": {"name": "gpu"}}
    if taints is not None:
        spec["taints"] = taints
    return obj("NodePool", name, None, "karpenter.sh/v1",
               spec={"template": {"metadata": {"labels": labels if labels is not None else {"nimgen.io/node-pool": name}},
                                  "spec": spec}})


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_pod(**spec: Any) -> Pod:
    containers = [{"name": "nim", "resources": {"limits": {"nvidia.com/gpu": 1}}}]
    return Pod(Applied(workload(), "web", "chart"), {}, {"containers": containers, **spec}, "spec.template.spec")


@pytest.mark.parametrize(("spec", "fits"), [
    ({"nodeSelector": {"nimgen.io/node-pool": "gpu"}}, True),
    ({"nodeSelector": {"nimgen.io/node-pool": "cpu"}}, False),
    ({"nodeSelector": {"team": "ml"}}, False),  # a label the pool never sets
    ({"nodeSelector": {"node.kubernetes.io/instance-type": "g5.xlarge"}}, True),  # well known: Karpenter picks it
    ({"nodeSelector": {"karpenter.k8s.aws/instance-family": "g5"}}, True),  # offered by the pool's requirements
    ({"nodeSelector": {"karpenter.k8s.aws/instance-family": "p4d"}}, False),
    ({"nodeSelector": {"karpenter.sh/capacity-type": "spot"}}, True),  # required but open (operator Exists)
])
def test_node_selector_against_pool_labels_and_requirements(spec: dict[str, Any], fits: bool) -> None:
    requirements = [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5", "g6"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "Exists"}]
    assert lands_on(gpu_pod(**spec), pool(requirements=requirements)) is fits


def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": term} for term in terms]}}}


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


FAMILY = "karpenter.k8s.aws/instance-family"


@pytest.mark.parametrize(("terms", "fits"), [
    ([[expression("nimgen.io/node-pool", "In", "gpu", "other")]], True),
    ([[expression("nimgen.io/node-pool", "In", "other")]], False),
    ([[expression("nimgen.io/node-pool", "NotIn", "other")]], True),
    ([[expression("nimgen.io/node-pool", "NotIn", "gpu")]], False),
    ([[expression("nimgen.io/node-pool", "Exists")]], True),
    ([[expression("nimgen.io/node-pool", "DoesNotExist")]], False),
    ([[expression("team", "DoesNotExist")]], True),  # a label the pool never sets is never there
    ([[expression("team", "Exists")]], False),
    ([[expression("team", "In", "ml")]], False),
    ([[expression(FAMILY, "In", "g6")]], True),
    ([[expression(FAMILY, "NotIn", "g5")]], True),  # g6 remains
    ([[expression(FAMILY, "NotIn", "g5", "g6")]], False),
    ([[expression(FAMILY, "DoesNotExist")]], False),
    ([[expression("topology.kubernetes.io/zone", "In", "us-east-1a")]], True),
    ([[expression("topology.kubernetes.io/zone", "DoesNotExist")]], False),
    ([[expression("team", "In", "ml")], [expression(FAMILY, "In", "g5")]], True),  # terms are ORed
    ([[expression(FAMILY, "In", "g5"), expression("team", "In", "ml")]], False),  # expressions are ANDed
    ([[]], True),  # an empty term matches everything
])
def test_required_node_affinity_against_the_pool(terms: list[list[dict[str, Any]]], fits: bool) -> None:
    requirements = [{"key": FAMILY, "operator": "In", "values": ["g5", "g6"]}]
    assert lands_on(gpu_pod(affinity=affinity(*terms)), pool(requirements=requirements)) is fits


def test_preferred_affinity_and_no_terms_do_not_constrain() -> None:
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [expression("team", "In", "ml")]}}]}}
    assert lands_on(gpu_pod(affinity=preferred), pool()) is True
    assert lands_on(gpu_pod(affinity=affinity()), pool()) is True


def test_requirement_other_than_in_leaves_the_label_open() -> None:
    requirements = [{"key": FAMILY, "operator": "NotIn", "values": ["p4d"]}]
    assert lands_on(gpu_pod(nodeSelector={FAMILY: "g5"}), pool(requirements=requirements)) is True


def test_pool_label_wins_over_its_requirement() -> None:
    requirements = [{"key": "nimgen.io/node-pool", "operator": "In", "values": ["other"]}]
    assert lands_on(gpu_pod(nodeSelector={"nimgen.io/node-pool": "gpu"}), pool(requirements=requirements)) is True


@pytest.mark.parametrize(("tolerations", "fits"), [
    ([], False),
    ([GPU_TOLERATION], True),
    ([{"operator": "Exists"}], True),  # tolerates everything
    ([{"key": "nvidia.com/gpu", "operator": "Exists"}], True),  # any effect
    ([{"key": "other", "operator": "Exists"}], False),
    ([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}], False),
    ([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}], True),
    ([{"key": "nvidia.com/gpu", "value": "true"}], True),  # Equal is the default operator
    ([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "false"}], False),
    ([{"key": "nvidia.com/gpu", "operator": "Equal"}], False),  # "" is not "true"
    ([{"key": "other", "operator": "Exists"}, GPU_TOLERATION], True),
])
def test_pool_taints_need_a_toleration(tolerations: list[dict[str, Any]], fits: bool) -> None:
    assert lands_on(gpu_pod(tolerations=tolerations), pool(taints=[GPU_TAINT])) is fits


def test_prefer_no_schedule_taints_do_not_repel() -> None:
    soft = {"key": "nvidia.com/gpu", "effect": "PreferNoSchedule"}
    assert lands_on(gpu_pod(), pool(taints=[soft])) is True
    assert lands_on(gpu_pod(), pool(taints=[{**soft, "effect": "NoExecute"}])) is False


def test_taint_without_value_is_tolerated_by_an_equal_toleration_without_value() -> None:
    assert lands_on(gpu_pod(tolerations=[{"key": "dedicated"}]), pool(taints=[{"key": "dedicated", "effect": "NoSchedule"}]))


def gpu_workload(name: str = "llm", **spec: Any) -> dict[str, Any]:
    return workload(name, containers=[{"name": "nim", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
                    tolerations=[GPU_TOLERATION], nodeSelector={"nimgen.io/node-pool": "gpu"}, **spec)


def test_gpu_pod_that_fits_no_pool() -> None:
    pools = [pool("gpu", taints=[GPU_TAINT]), pool("big", taints=[GPU_TAINT])]
    stray = gpu_workload()
    stray["spec"]["template"]["spec"]["tolerations"] = []
    [finding] = run(stray, *pools)
    assert (finding.check, finding.obj, finding.path) == ("nodepool", "Deployment nim/llm", "spec.template.spec")
    assert finding.message == ("its pods fit no NodePool (big, gpu): node selector, required node affinity or the "
                               "pools' taints rule every one out")
    assert finding.hint == ("give the pod the pool's nimgen.io/node-pool selector and the nvidia.com/gpu toleration")


def test_gpu_pod_that_fits_a_pool_is_clean() -> None:
    assert run(gpu_workload(), pool("gpu", taints=[GPU_TAINT]), pool("big", taints=[GPU_TAINT])) == []


def test_placement_is_not_checked_without_pools() -> None:
    assert run(gpu_workload()) == []


def test_cpu_pod_is_checked_only_when_it_selects_a_pool_label() -> None:
    pools = [pool("gpu", taints=[GPU_TAINT])]
    assert run(workload(), *pools) == []
    assert messages(run(workload(nodeSelector={"nimgen.io/node-pool": "gpu"}), *pools), "nodepool") == [
        ("Deployment nim/web: its pods fit no NodePool (gpu): node selector, required node affinity or the pools' "
        "taints rule every one out")]


def test_gpu_request_only_in_requests_is_not_a_gpu_pod() -> None:
    requests_only = workload(containers=[{"name": "nim", "resources": {"requests": {"nvidia.com/gpu": 1}}}])
    assert run(requests_only, pool("gpu", taints=[GPU_TAINT])) == []


# ------------------------------------------------------------------ sync waves


def waves_run(pool_wave: int, model_wave: int, *, pvc_wave: int | None = None) -> list[Finding]:
    apps = {"pools": [pool("gpu", taints=[GPU_TAINT])], "llm": [gpu_workload()]}
    manifests = [application("pools", "platform", wave=pool_wave), application("llm", wave=model_wave)]
    if pvc_wave is not None:
        apps["storage"] = [claim()]
        manifests.append(application("storage", "platform", wave=pvc_wave))
        apps["llm"] = [gpu_workload(volumes=[{"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}])]
    return run(manifests=tuple(manifests), apps=apps)


def test_pool_syncing_before_its_models_is_clean() -> None:
    assert waves_run(-10, 0) == []


@pytest.mark.parametrize("pool_wave", [0, 5])
def test_pool_syncing_with_or_after_its_models(pool_wave: int) -> None:
    [finding] = waves_run(pool_wave, 0)
    assert (finding.check, finding.obj, finding.application) == ("sync-wave", "Deployment nim/llm", "llm")
    assert finding.message == (f"Application llm (wave 0) needs a NodePool from pools (wave {pool_wave}), which does "
                               "not sync before it")
    assert finding.hint == "give the provider a lower argocd.argoproj.io/sync-wave"


def test_claim_syncing_before_its_models_is_clean() -> None:
    assert waves_run(-10, 0, pvc_wave=-5) == []


def test_claim_syncing_with_its_models() -> None:
    assert messages(waves_run(-10, 0, pvc_wave=0), "sync-wave") == [
        ("Deployment nim/llm: Application llm (wave 0) needs a PersistentVolumeClaim from storage (wave 0), which does "
        "not sync before it")]


def test_provider_in_the_same_application_is_in_time() -> None:
    apps = {"llm": [pool("gpu", taints=[GPU_TAINT]), gpu_workload(), claim()]}
    apps["llm"][1]["spec"]["template"]["spec"]["volumes"] = [{"name": "c", "persistentVolumeClaim": {"claimName": "cache"}}]
    assert run(manifests=(application("llm"),), apps=apps) == []


def test_waves_are_not_checked_for_objects_outside_applications() -> None:
    # The model is applied by no Application of the tree: nothing to order it against.
    assert run(manifests=(application("pools", "platform", wave=5),),
               apps={"pools": [pool("gpu", taints=[GPU_TAINT])], "other": [gpu_workload()]}) == []


def test_committed_claim_is_no_wave_provider() -> None:
    # Only claims rendered by Applications are ordered; one committed beside them is applied by the root.
    llm = gpu_workload(volumes=[{"name": "c", "persistentVolumeClaim": {"claimName": "cache"}}])
    assert run(manifests=(application("llm", wave=0), claim()), apps={"llm": [llm]}) == []


def test_provider_of_an_unknown_application_is_named_nowhere() -> None:
    # The pools come from an Application outside the tree: the finding names no provider it cannot place.
    findings = run(manifests=(application("llm", wave=0),),
                   apps={"elsewhere": [pool("gpu", taints=[GPU_TAINT])], "llm": [gpu_workload()]})
    assert messages(findings) == [("Deployment nim/llm: Application llm (wave 0) needs a NodePool from no Application of the "
                                  "tree, which does not sync before it")]


# ------------------------------------------------------------------ shape errors


def test_a_rule_tripping_over_a_malformed_manifest_is_a_finding() -> None:
    broken = obj("NodePool", "gpu", None, "karpenter.sh/v1", spec={})
    findings = run(gpu_workload(), broken, shape_errors=True)
    assert [(f.check, f.message.split(":")[0]) for f in findings] == [("node-pools", "check could not finish")]


# ------------------------------------------------------------------ required topology spread against the pool

def spread(key: str, when: str = "DoNotSchedule") -> dict[str, Any]:
    return {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "llm"}}}


@pytest.mark.parametrize(("constraints", "unspread"), [
    ([spread("kubernetes.io/hostname")], []),  # every node has a hostname
    ([spread("topology.kubernetes.io/zone")], []),
    ([spread("nimgen.io/node-pool")], []),  # the pool's own label
    ([spread("nimgen.io/capacity-spread")], ["nimgen.io/capacity-spread"]),  # a label the pool never sets
    ([spread("nimgen.io/capacity-spread", "ScheduleAnyway")], []),  # a soft spread never holds a pod back
    ([spread("kubernetes.io/hostname"), spread("team"), spread("rack", "ScheduleAnyway")], ["team"]),
    ([], []),
])
def test_required_spread_over_a_label_the_pool_lacks(constraints: list[dict[str, Any]], unspread: list[str]) -> None:
    pod = gpu_pod(topologySpreadConstraints=constraints)
    assert crossref._unspread_keys(pod, pool()) == unspread
    assert lands_on(pod, pool()) is (not unspread)
    assert lands_on(pod, pool(), spread=False) is True


def test_a_spread_the_pools_cannot_satisfy_is_named() -> None:
    stray = gpu_workload(topologySpreadConstraints=[spread("nimgen.io/capacity-spread"), spread("kubernetes.io/hostname")])
    [finding] = run(stray, pool("gpu", taints=[GPU_TAINT]), pool("big", taints=[GPU_TAINT]))
    assert (finding.check, finding.obj, finding.path) == ("nodepool", "Deployment nim/llm", "spec.template.spec")
    assert finding.message == ("its pods spread (DoNotSchedule) over nimgen.io/capacity-spread, a label the nodes of "
                               "the NodePools they fit (gpu) do not carry: kube-scheduler never places them")
    assert finding.hint.startswith("spread over a label the pool sets (nimgen.io/capacity-spread needs a pool with ")


def test_a_spread_over_a_label_the_pool_sets_is_clean() -> None:
    spread_pool = pool("gpu", labels={"nimgen.io/node-pool": "gpu", "nimgen.io/capacity-spread": "spot"},
                       taints=[GPU_TAINT])
    assert run(gpu_workload(topologySpreadConstraints=[spread("nimgen.io/capacity-spread")]), spread_pool) == []


@pytest.mark.parametrize(("containers", "wants"), [
    ([{"name": "nim", "resources": {"limits": {"nvidia.com/gpu": 1}}}], True),
    ([{"name": "side"}, {"name": "nim", "resources": {"limits": {"nvidia.com/gpu": 2}}}], True),  # any container
    ([{"name": "nim", "resources": {"requests": {"nvidia.com/gpu": 1}}}], False),
    ([{"name": "nim", "resources": {"limits": {"cpu": "1"}}}], False),
    ([{"name": "nim"}], False),
    ([], False),
])
def test_a_gpu_pod_is_one_with_a_gpu_limit(containers: list[dict[str, Any]], wants: bool) -> None:
    pod = Pod(Applied(workload(), "web", "chart"), {}, {"containers": containers}, "spec.template.spec")
    assert crossref._wants_gpu(pod) is wants


# ------------------------------------------------------------------ the index: lookups by the rarest label

def test_lookup_by_the_rarest_label_returns_only_candidates() -> None:
    common, rare = ["a", "b", "c"], ["b"]
    by_label = {("app", "nim"): common, ("instance", "llm"): rare}
    assert crossref._fewest(by_label, {"app": "nim", "instance": "llm"}, ["everything"]) == rare
    assert crossref._fewest(by_label, {"instance": "llm", "app": "nim"}, ["everything"]) == rare
    assert crossref._fewest(by_label, {"app": "nim"}, ["everything"]) == common
    assert crossref._fewest(by_label, {"app": "other"}, ["everything"]) == []  # no object carries it
    # What cannot be looked up is compared against everything: no labels, a value that is not a label value.
    assert crossref._fewest(by_label, {}, ["everything"]) == ["everything"]
    assert crossref._fewest(by_label, {"app": ["nim"]}, ["everything"]) == ["everything"]
    assert crossref._fewest(by_label, {"app": "nim", "x": {"y": 1}}, ["everything"]) == ["everything"]
    assert crossref._fewest(by_label, None, ["everything"]) == ["everything"]


def test_the_index_finds_pods_by_label_and_objects_by_place() -> None:
    first, second = workload("a", labels={"app": "nim", "instance": "a"}), workload("b", labels={"app": "nim", "instance": "b"})
    index = crossref._Index(ENV, [], [AppResult(app={"metadata": {"name": "x"}}, file="x.yaml",
                                               objects=[Applied(o, "x", "chart") for o in (first, second)])])
    assert [pod.owner.obj["metadata"]["name"] for pod in index.pods_with({"app": "nim", "instance": "b"})] == ["b"]
    assert len(index.pods_with({"app": "nim"})) == 2
    assert index.pods_with({"app": ["nim"]}) == index.selectable  # unhashable: every pod is a candidate
    assert index.find("apps", "Deployment", "nim", "b") is not None
    assert index.find("apps", "Deployment", "nim", "c") is None
    assert index.find("", "Deployment", "nim", "b") is None  # the group counts
    assert index.find("apps", "Deployment", "other", "b") is None  # and the namespace
    # and the CoreDNS that terraform/ installs on every cluster (validation/runtime.py)
    assert [applied.obj["metadata"]["name"] for applied in index.of_kind("Deployment")] == ["a", "b", "coredns"]


def test_providers_that_sync_late_are_all_named() -> None:
    anywhere = workload("llm", containers=[{"name": "nim", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
                        tolerations=[GPU_TOLERATION])  # no pool selector: it fits both pools
    apps = {"pools": [pool("gpu", taints=[GPU_TAINT])], "more-pools": [pool("big", taints=[GPU_TAINT])],
            "llm": [anywhere]}
    manifests = (application("pools", "platform", wave=0), application("more-pools", "platform", wave=3),
                 application("llm", wave=0))
    [finding] = run(manifests=manifests, apps=apps)
    assert finding.message == ("Application llm (wave 0) needs a NodePool from more-pools (wave 3), pools (wave 0), "
                               "which does not sync before it")


@pytest.mark.parametrize(("tolerations", "fits"), [
    # A toleration of another effect is skipped, and the next one still counts.
    ([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, GPU_TOLERATION], True),
    ([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}], False),
])
def test_each_toleration_is_tried(tolerations: list[dict[str, Any]], fits: bool) -> None:
    assert lands_on(gpu_pod(tolerations=tolerations), pool(taints=[GPU_TAINT])) is fits


def test_a_pool_without_template_offers_only_what_every_node_has() -> None:
    for bare in ({}, {"spec": {}}, {"spec": {"template": {}}}):
        assert crossref._pool_admits(bare, "team", "DoesNotExist", []) is True
        assert crossref._pool_admits(bare, "team", "Exists", []) is False
        assert crossref._pool_admits(bare, "kubernetes.io/hostname", "Exists", []) is True


def test_whitelist_rules_without_a_group_or_kind() -> None:
    """An entry without `group` is the core group (Argo CD reads a missing group as ""); one without `kind`
    admits nothing."""
    core = project(namespaced=[{"kind": "ConfigMap"}])
    assert projects_run(core, application("web"), obj("ConfigMap", "settings")) == []
    kindless = project(namespaced=[{"group": "apps"}])
    assert projects_run(kindless, application("web"), workload()) == [
        ("Deployment nim/web: apps/Deployment is not in AppProject models's namespaceResourceWhitelist: Argo CD "
        "refuses to sync it")]


def test_every_service_is_checked_after_one_that_selects_nothing() -> None:
    lonely = service("lonely", selector={"app": "nobody"})
    named = service("web", ports=[{"port": 80, "targetPort": "missing"}])
    assert messages(run(workload(), lonely, named)) == [
        "Service nim/lonely: selects no pod: no pod template in namespace nim has labels {'app': 'nobody'}",
        "Service nim/web: targetPort 'missing' is no container port of the pods it selects"]


def test_a_service_and_pods_without_a_namespace_share_the_empty_one() -> None:
    """Committed manifests may leave the namespace to Argo CD's destination: both sides are then "". """
    assert run(workload(namespace=None), service(namespace=None)) == []  # type: ignore[arg-type]


def test_a_pool_without_taints_repels_nothing() -> None:
    for bare in ({}, {"spec": {}}, {"spec": {"template": {}}}):
        assert lands_on(gpu_pod(), bare) is True


def test_the_index_knows_argo_cd_applications_and_cluster_scoped_objects() -> None:
    app = application("web")
    not_an_app = obj("Application", "fake", "argocd", "example.com/v1")  # another API's kind of the same name
    project_ = obj("AppProject", "models", "argocd", "argoproj.io/v1alpha1")
    storage_class = obj("StorageClass", "gp3", None, "storage.k8s.io/v1")
    index = crossref._Index(ENV, [Applied(m, "", "x.yaml") for m in (app, not_an_app, project_)],
                            [AppResult(app={"metadata": {"name": "web"}}, file="web.yaml",
                                       objects=[Applied(storage_class, "web", "chart")])])
    assert sorted(index.apps) == ["web"]
    assert index.find("storage.k8s.io", "StorageClass", "", "gp3") is not None
    assert index.find("storage.k8s.io", "StorageClass", "nim", "gp3") is None


def test_a_claim_and_a_pod_without_a_namespace_share_the_empty_one() -> None:
    assert run(mounting(namespace=None), claim(namespace=None)) == []  # type: ignore[arg-type]


def test_services_after_one_without_a_selector_are_checked() -> None:
    headless = service("external", selector={})
    assert messages(run(workload(), headless, service("lonely", selector={"app": "nobody"}))) == [
        "Service nim/lonely: selects no pod: no pod template in namespace nim has labels {'app': 'nobody'}"]


# ------------------------------------------------------------------ every object checked, whatever came before it


def test_a_spread_finding_names_every_key_and_pool_and_says_how_to_fix_it() -> None:
    stray = gpu_workload(topologySpreadConstraints=[spread("nimgen.io/capacity-spread"), spread("example.com/rack")])
    del stray["spec"]["template"]["spec"]["nodeSelector"]  # fits both pools
    [finding] = run(stray, pool("gpu", taints=[GPU_TAINT]), pool("big", taints=[GPU_TAINT]))
    assert finding.message == ("its pods spread (DoNotSchedule) over example.com/rack, nimgen.io/capacity-spread, a "
                               "label the nodes of the NodePools they fit (big, gpu) do not carry: kube-scheduler "
                               "never places them")
    assert finding.hint == ("spread over a label the pool sets (nimgen.io/capacity-spread needs a pool with "
                            "spotPerOnDemand), or make the spread ScheduleAnyway")


def test_every_gpu_pod_is_placed_whatever_came_before_it() -> None:
    """A pod with no GPU, one whose spread no pool satisfies, one that fits no pool: each is looked at."""
    cpu = workload("cpu")
    unspread = gpu_workload("unspread", topologySpreadConstraints=[spread("nimgen.io/capacity-spread")])
    stray, lost = gpu_workload("stray"), gpu_workload("lost")
    for untolerated in (stray, lost):
        untolerated["spec"]["template"]["spec"]["tolerations"] = []
    found = run(cpu, unspread, stray, lost, pool("gpu", taints=[GPU_TAINT]))
    assert [(f.obj, f.message.split(":")[0]) for f in found] == [
        ("Deployment nim/unspread", ("its pods spread (DoNotSchedule) over nimgen.io/capacity-spread, a label the "
                                     "nodes of the NodePools they fit (gpu) do not carry")),
        ("Deployment nim/stray", "its pods fit no NodePool (gpu)"),
        ("Deployment nim/lost", "its pods fit no NodePool (gpu)")]


def test_every_application_of_a_project_is_checked() -> None:
    """An Application of an outside project first, one without a project or rendered objects: the next is checked."""
    outside = application("elsewhere", project="default", namespace="anywhere")
    bare = application("bare")
    del bare["spec"]["project"]
    wrong = application("wrong", namespace="kube-system")
    found = run(manifests=(project(), outside, bare, wrong), apps={})
    assert [f"{f.obj}: {f.message}" for f in found] == [
        "Application argocd/wrong: deploys to namespace 'kube-system', which AppProject models does not admit"]


def test_destinations_without_a_namespace() -> None:
    """An Application without a destination namespace deploys only cluster-scoped objects: it lands in ''; a
    project destination without a namespace admits only that."""
    app = application("web")
    del app["spec"]["destination"]["namespace"]
    assert projects_run(project(), app) == [
        "Application argocd/web: deploys to namespace '', which AppProject models does not admit"]
    assert projects_run(project(destinations=("*",)), app) == []
    bare = project()
    bare["spec"]["destinations"] = [{"server": "https://kubernetes.default.svc"}]
    assert projects_run(bare, app) == []
    assert projects_run(bare, application("web")) == [
        "Application argocd/web: deploys to namespace 'nim', which AppProject models does not admit"]


def test_a_source_outside_the_repos_is_a_project_finding() -> None:
    [finding] = run(manifests=(project(repos=("https://git.example.com/*",)),
                               application("web", repo="https://evil.example.org/x.git")), apps={"web": []})
    assert (finding.check, finding.hint) == ("project", "")


def test_every_service_monitor_is_checked() -> None:
    lonely = monitor({"matchLabels": {"app": "other"}})
    lonely["metadata"]["name"] = "lonely"
    by_expression = monitor({"matchExpressions": [{"key": "app", "operator": "In", "values": ["nim"]}]},
                            ports=("metrics", "http"))
    found = run(metrics_service(), lonely, by_expression)
    assert [(f.check, f.obj, f.path, f.message) for f in found] == [
        ("servicemonitor", "ServiceMonitor nim/lonely", "spec.selector", "selects no Service"),
        ("servicemonitor", "ServiceMonitor nim/mon", "spec.endpoints[1].port",
         "port 'http' is not a named port of the Services it selects")]


def test_a_rule_that_trips_says_in_which_environment() -> None:
    broken = obj("NodePool", "gpu", None, "karpenter.sh/v1", spec={})
    [finding] = run(gpu_workload(), broken, shape_errors=True)
    assert (finding.check, finding.environment) == ("node-pools", ENV.name)
