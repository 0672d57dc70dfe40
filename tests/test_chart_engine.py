"""The nim-llm chart source (package data), exercised directly with the real Helm engine.

Every value set is linted like `helm lint --strict`, rendered like Argo CD's
`helm template --name-template R --namespace N --kube-version V`, and each rendered
object is checked against Kubernetes' own strict schema. The `ci/*-values.yaml` files
(one feature each, as in argo-helm) are part of the matrix.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from conftest import shared
from kube import crd_errors
from nimgen.gitops.charts import coalesce
from nimgen.helm import HelmError, engine

PROJECT = Path(__file__).resolve().parents[1]
CHART = PROJECT / "generator" / "nimgen" / "charts" / "nim-llm"
KUBE_VERSION = "v1.33.0"
SCHEMA_VERSION = "1.33"
RELEASE = "llm"
ENGINE = engine()
NAMESPACE = "nim"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CHART_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by"}

# values.yaml leaves image.tag empty on purpose (a NIM must be pinned), so "defaults" means
# the chart defaults plus the one value they lack. Helm merges every set over values.yaml.
DEFAULTS: dict[str, Any] = {"image": {"tag": "1.0.3"}}

INLINE: dict[str, dict[str, Any]] = {
    "defaults": DEFAULTS,
    "deployment-autoscaling-emptydir": {
        "image": {"tag": "1.0.3"},
        "workload": {"kind": "Deployment"},
        "cache": {"type": "emptyDir", "size": "80Gi"},
        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3},
        "nodePool": "gpu-l4",
    },
    "statefulset-existing-claim-8-gpus": {
        "image": {"tag": "1.3.3", "digest": "sha256:" + "ab" * 32},
        "cache": {"type": "existingClaim", "existingClaim": "shared-cache", "subPath": "llama-3-1-70b"},
        "gpu": {"count": 8},
        "resources": {"requests": {"cpu": 0.5, "memory": "512Gi"}, "limits": {"memory": "512Gi"}},
        "sharedMemory": {"sizeLimit": "32Gi"},
        "replicaCount": 0,
        "nodePool": "gpu-h100",
    },
    "name-override-deployment": {
        "image": {"tag": "1.0.3"},
        "workload": {"kind": "Deployment"},
        "cache": {"type": "emptyDir"},
        "nameOverride": "nim",
    },
}


def _ci_cases() -> dict[str, dict[str, Any]]:
    return {f"ci/{path.name}": yaml.safe_load(path.read_text()) for path in sorted((CHART / "ci").glob("*-values.yaml"))}


CASES: dict[str, dict[str, Any]] = {**INLINE, **_ci_cases()}


def merged(values: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of `values` over values.yaml (maps merge, anything else replaces)."""
    return coalesce(yaml.safe_load((CHART / "values.yaml").read_text()), values)


def render(values: dict[str, Any], *, release: str = RELEASE, namespace: str = NAMESPACE,
           chart: Path = CHART) -> dict[str, str]:
    """`helm template` output: template path to text (NOTES.txt included)."""
    return ENGINE.template(chart, values, release=release, namespace=namespace, kube_version=KUBE_VERSION)


def objects(values: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    rendered = render(values, **kwargs)
    return [doc for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def workload(objs: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [o for o in objs if o["kind"] in ("StatefulSet", "Deployment")]
    return found


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = workload(objs)["spec"]["template"]["spec"]["containers"]
    return found


@pytest.fixture(scope=shared("module"), params=sorted(CASES), ids=str)
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(values given, values after the merge, rendered objects) for each value set."""
    values = CASES[request.param]
    return values, merged(values), objects(values)


# ---------------------------------------------------------------- lint, render, Kubernetes schema


@pytest.mark.parametrize("name", sorted(CASES))
def test_lint_strict_is_clean(name: str) -> None:
    report = helm.lint(str(CHART), CASES[name], strict=True, kube_version=KUBE_VERSION)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [] and not report.get("errors"), problems or report.get("errors")


CRD_GROUPS = ("monitoring.coreos.com/", "keda.sh/")


def test_every_rendered_object_passes_kubernetes_strict_schema(case: Any) -> None:
    _, _, objs = case
    assert objs
    for obj in objs:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            continue  # validated against the upstream CRD schema below
        try:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}")


def test_custom_resources_pass_their_crd_schemas(case: Any, crd_schemas: Path) -> None:
    _, values, objs = case
    crd_objects = [o for o in objs if o["apiVersion"].startswith(CRD_GROUPS)]
    expected = {kind for kind, key in (("ServiceMonitor", "serviceMonitor"), ("PrometheusRule", "prometheusRule"))
                if values["metrics"][key]["enabled"]}
    if values["autoscaling"]["enabled"] and values["autoscaling"]["engine"] == "keda":
        expected.add("ScaledObject")
    assert {o["kind"] for o in crd_objects} == expected
    for obj in crd_objects:
        assert crd_errors(obj, crd_schemas) == [], obj["kind"]


def test_service_monitor_scrapes_the_api_service_once(case: Any) -> None:
    _, values, objs = case
    monitors = of_kind(objs, "ServiceMonitor")
    if not values["metrics"]["serviceMonitor"]["enabled"]:
        assert monitors == []
        return
    [monitor] = monitors
    selector = monitor["spec"]["selector"]["matchLabels"]
    matching = [svc for svc in of_kind(objs, "Service") if selector.items() <= svc["metadata"]["labels"].items()]
    # One Service only: the headless one (StatefulSets) would double every series.
    assert [svc["metadata"]["name"] for svc in matching] == [workload(objs)["metadata"]["name"]]
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http-openai" and endpoint["path"] == values["metrics"]["serviceMonitor"]["path"]
    assert monitor["metadata"]["labels"].items() >= values["metrics"]["serviceMonitor"]["labels"].items()
    assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "model",
                                        "replacement": workload(objs)["metadata"]["name"]}]
    [rule] = of_kind(objs, "PrometheusRule")
    assert rule["spec"]["groups"] == values["metrics"]["prometheusRule"]["groups"]


def test_every_object_has_namespace_and_labels(case: Any) -> None:
    _, merged_values, objs = case
    for obj in objs:
        meta = obj["metadata"]
        assert meta["namespace"] == NAMESPACE
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == (merged_values["nameOverride"] or "nim-llm")
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["helm.sh/chart"] == "nim-llm-0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        warmup = obj["kind"] == "Job" or (obj["kind"] == "NetworkPolicy" and meta["name"].endswith("-cache-warmup"))
        assert labels["app.kubernetes.io/component"] == ("cache-warmup" if warmup else "inference")
        assert labels["app.kubernetes.io/part-of"] == "nimgen"
        assert labels.get("app.kubernetes.io/version") == (merged_values["image"]["tag"] or None)
        for key, value in merged_values["commonLabels"].items():
            assert labels[key] == value
        assert len(meta["name"]) <= 63


# ---------------------------------------------------------------- what a NIM pod needs


def test_gpu_request_and_limit(case: Any) -> None:
    _, values, objs = case
    resources = container(objs)["resources"]
    gpus = str(values["gpu"]["count"])
    assert resources["limits"]["nvidia.com/gpu"] == gpus
    assert resources["requests"]["nvidia.com/gpu"] == gpus
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    for section in ("requests", "limits"):
        assert all(isinstance(q, str) for q in resources[section].values()), resources[section]
        for name, quantity in values["resources"][section].items():
            assert resources[section][name] == str(quantity)


def test_gpu_toleration_comes_first(case: Any) -> None:
    _, values, objs = case
    tolerations = workload(objs)["spec"]["template"]["spec"]["tolerations"]
    assert tolerations == [GPU_TOLERATION, *values["tolerations"]]


def test_node_pool_selector(case: Any) -> None:
    _, values, objs = case
    pod = workload(objs)["spec"]["template"]["spec"]
    expected = dict(values["nodeSelector"])
    if values["nodePool"]:
        expected["nimgen.io/node-pool"] = values["nodePool"]
    assert pod.get("nodeSelector", {}) == expected


def test_environment(case: Any) -> None:
    _, values, objs = case
    cont = container(objs)
    env = cont["env"]
    by_name = {e["name"]: e for e in env}
    assert len(by_name) == len(env), "duplicate environment variable"
    assert by_name["NGC_API_KEY"] == {"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": values["model"]["ngcAPISecret"], "key": values["model"]["ngcAPISecretKey"]}}}
    assert by_name["NIM_SERVER_PORT"]["value"] == str(values["model"]["openaiPort"])
    assert by_name["NIM_JSONL_LOGGING"]["value"] == ("1" if values["model"]["jsonLogging"] else "0")
    assert by_name["NIM_LOG_LEVEL"]["value"] == values["model"]["logLevel"]
    assert by_name["OUTLINES_CACHE_DIR"]["value"] == "/tmp/outlines"
    served = values["model"]["servedModelName"]
    assert by_name.get("NIM_SERVED_MODEL_NAME", {}).get("value", "") == served
    mounts = {m["name"]: m for m in cont["volumeMounts"]}
    assert by_name["NIM_CACHE_PATH"]["value"] == mounts["model-cache"]["mountPath"] == values["cache"]["mountPath"]
    assert mounts["model-cache"].get("subPath", "") == values["cache"]["subPath"]
    own = ["NIM_CACHE_PATH", "NIM_SERVER_PORT", "NIM_JSONL_LOGGING", "NIM_LOG_LEVEL", "OUTLINES_CACHE_DIR"]
    own += ["NIM_SERVED_MODEL_NAME"] if served else []
    own += ["NGC_API_KEY"]
    names = [e["name"] for e in env]
    assert names == own + sorted(values["env"]) + sorted(values["secretEnv"])
    for name, value in values["env"].items():
        assert by_name[name] == {"name": name, "value": str(value)}
    for name, ref in values["secretEnv"].items():
        assert by_name[name]["valueFrom"]["secretKeyRef"] == {"name": ref["secretName"], "key": ref["key"]}


def test_image_pull_secrets_and_image(case: Any) -> None:
    _, values, objs = case
    pod = workload(objs)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == values["imagePullSecrets"] == [{"name": "ngc-secret"}]
    image = values["image"]
    expected = image["repository"] + (f":{image['tag']}" if image["tag"] else "") + (
        f"@{image['digest']}" if image["digest"] else "")
    assert container(objs)["image"] == expected
    # An explicit policy wins; else a digest cannot change: IfNotPresent, and a tag is resolved at the registry on
    # every start: Always (the defaults are asserted literally in test_safety_guards.py).
    expected_policy = image["pullPolicy"] or ("IfNotPresent" if image["digest"] else "Always")
    assert container(objs)["imagePullPolicy"] == expected_policy


def test_volumes(case: Any) -> None:
    _, values, objs = case
    spec = workload(objs)["spec"]
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container(objs)["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": values["sharedMemory"]["sizeLimit"]}
    cache = values["cache"]
    if cache["type"] == "claimTemplate":
        assert "model-cache" not in volumes
        [claim] = spec["volumeClaimTemplates"]
        assert claim["apiVersion"] == "v1" and claim["kind"] == "PersistentVolumeClaim"
        assert claim["metadata"]["name"] == "model-cache"
        assert claim["spec"]["volumeMode"] == "Filesystem"
        assert claim["spec"]["accessModes"] == [cache["accessMode"]]
        assert claim["spec"]["resources"] == {"requests": {"storage": cache["size"]}}
        assert claim["spec"].get("storageClassName", "") == cache["storageClassName"]
        assert spec["persistentVolumeClaimRetentionPolicy"] == cache["retentionPolicy"]
    else:
        assert "volumeClaimTemplates" not in spec
        assert "persistentVolumeClaimRetentionPolicy" not in spec
        if cache["type"] == "existingClaim":
            assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": cache["existingClaim"]}
        else:
            assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": cache["size"]}


def test_cache_warmup_job(case: Any) -> None:
    _, values, objs = case
    jobs = of_kind(objs, "Job")
    if not values["cacheWarmup"]["enabled"]:
        assert jobs == []
        return
    [job] = jobs
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "cache-warmup"
    assert job["metadata"]["labels"]["app.kubernetes.io/instance"] == workload(objs)["metadata"]["labels"][
        "app.kubernetes.io/instance"]
    notes = job["metadata"]["annotations"]
    # Argo CD runs it before the model's objects sync; the next sync replaces the finished Job.
    assert notes["argocd.argoproj.io/hook"] == "PreSync"
    assert notes["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    [cont] = pod["containers"]
    assert cont["command"] == ["download-to-cache"]
    assert cont["args"] == ["--profiles", *values["cacheWarmup"]["profiles"]]
    assert cont["image"] == container(objs)["image"]
    assert "nvidia.com/gpu" not in cont["resources"]["requests"] and "tolerations" not in pod
    env = {e["name"]: e for e in cont["env"]}
    assert env["NIM_CACHE_PATH"]["value"] == values["cache"]["mountPath"]
    assert env["NGC_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == values["model"]["ngcAPISecret"]
    # Same claim and directory as the model's pods, so they find what the Job downloaded.
    assert cont["volumeMounts"] == [m for m in container(objs)["volumeMounts"] if m["name"] == "model-cache"]
    assert pod["volumes"] == [{"name": "model-cache",
                               "persistentVolumeClaim": {"claimName": values["cache"]["existingClaim"]}}]
    assert pod["securityContext"] == workload(objs)["spec"]["template"]["spec"]["securityContext"]
    # Never selected by the model's Services or PodDisruptionBudget.
    selector = workload(objs)["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()


def test_runs_non_root_with_dropped_capabilities(case: Any) -> None:
    _, values, objs = case
    pod = workload(objs)["spec"]["template"]["spec"]
    cont = container(objs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert cont["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert cont["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is values["serviceAccount"]["automountServiceAccountToken"]
    assert pod["enableServiceLinks"] is False


def test_probes(case: Any) -> None:
    _, values, objs = case
    cont = container(objs)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        settings = values[probe]
        if not settings["enabled"]:
            assert probe not in cont
            continue
        assert cont[probe]["httpGet"] == {"path": settings["path"], "port": "http-openai"}
        for field in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
            assert cont[probe][field] == settings[field]
    startup = cont["startupProbe"]
    budget = startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= 1200, "a cold model download needs at least 20 minutes"
    assert cont["ports"] == [{"name": "http-openai", "containerPort": values["model"]["openaiPort"], "protocol": "TCP"}]


# ---------------------------------------------------------------- workload, HPA, PDB, Services


def test_rollout_never_needs_a_spare_gpu(case: Any) -> None:
    _, values, objs = case
    wl = workload(objs)
    spec = wl["spec"]
    assert wl["kind"] == values["workload"]["kind"]
    assert spec["revisionHistoryLimit"] == 5
    if wl["kind"] == "Deployment":
        assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        assert spec["progressDeadlineSeconds"] == 3600
        assert "serviceName" not in spec and "updateStrategy" not in spec
    else:
        assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        assert spec["podManagementPolicy"] == "Parallel"
        assert spec["serviceName"] == f"{wl['metadata']['name']}-headless"
        assert "strategy" not in spec


def test_replicas_belong_to_the_hpa_when_autoscaled(case: Any) -> None:
    _, values, objs = case
    wl = workload(objs)
    hpas = of_kind(objs, "HorizontalPodAutoscaler")
    scaling = values["autoscaling"]
    if scaling["enabled"] and scaling["engine"] == "keda":
        assert "replicas" not in wl["spec"] and hpas == []  # KEDA creates the HPA itself
    elif scaling["enabled"]:
        assert "replicas" not in wl["spec"]
        assert of_kind(objs, "ScaledObject") == []
        [hpa] = hpas
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["metadata"]["name"] == wl["metadata"]["name"]
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": wl["kind"], "name": wl["metadata"]["name"]}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (scaling["minReplicas"], scaling["maxReplicas"])
        assert hpa["spec"]["metrics"] == scaling["metrics"]
        assert hpa["spec"]["behavior"] == scaling["behavior"]
        for metric in hpa["spec"]["metrics"]:
            assert metric["type"] == "Pods"
            assert metric["pods"]["target"]["type"] == "AverageValue"
    else:
        assert wl["spec"]["replicas"] == values["replicaCount"]
        assert hpas == [] and of_kind(objs, "ScaledObject") == []


def test_keda_scaled_object_owns_the_replicas(case: Any) -> None:
    _, values, objs = case
    scaling = values["autoscaling"]
    if not (scaling["enabled"] and scaling["engine"] == "keda"):
        assert of_kind(objs, "ScaledObject") == []
        return
    wl = workload(objs)
    [scaled] = of_kind(objs, "ScaledObject")
    spec = scaled["spec"]
    assert scaled["metadata"]["name"] == wl["metadata"]["name"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": wl["kind"], "name": wl["metadata"]["name"]}
    # KEDA's own default minimum is 0: the chart must always write the bound.
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (scaling["minReplicas"], scaling["maxReplicas"])
    assert spec["triggers"] == scaling["keda"]["triggers"]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"] == {"name": wl["metadata"]["name"],
                                                                "behavior": scaling["behavior"]}
    assert spec.get("fallback", {}) == scaling["keda"]["fallback"]


def test_keda_without_triggers_is_refused() -> None:
    with pytest.raises(HelmError, match="autoscaling.engine keda needs autoscaling.keda.triggers"):
        render({"autoscaling": {"enabled": True, "engine": "keda", "minReplicas": 1, "maxReplicas": 2}})


def test_pod_disruption_budget(case: Any) -> None:
    _, values, objs = case
    pdbs = of_kind(objs, "PodDisruptionBudget")
    if not values["podDisruptionBudget"]["enabled"]:
        assert pdbs == []
        return
    [pdb] = pdbs
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == values["podDisruptionBudget"]["maxUnavailable"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["spec"]["selector"]["matchLabels"] == workload(objs)["spec"]["selector"]["matchLabels"]


def test_services(case: Any) -> None:
    _, values, objs = case
    wl = workload(objs)
    name = wl["metadata"]["name"]
    services = {s["metadata"]["name"]: s for s in of_kind(objs, "Service")}
    port = [{"name": "http-openai", "port": values["service"]["port"], "targetPort": "http-openai", "protocol": "TCP"}]
    service = services.pop(name)
    assert service["spec"]["type"] == values["service"]["type"]
    assert service["spec"]["ports"] == port
    assert service["spec"]["ports"][0]["port"] == 8000
    assert service["spec"]["selector"] == wl["spec"]["selector"]["matchLabels"]
    assert service["metadata"].get("annotations", {}) == values["service"]["annotations"]
    if wl["kind"] == "StatefulSet":
        headless = services.pop(f"{name}-headless")
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["publishNotReadyAddresses"] is True
        assert headless["spec"]["ports"] == port
        assert headless["spec"]["selector"] == wl["spec"]["selector"]["matchLabels"]
    assert services == {}, "a headless Service exists only for a StatefulSet"


def test_selector_and_pod_labels(case: Any) -> None:
    _, values, objs = case
    wl = workload(objs)
    selector = wl["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": values["nameOverride"] or "nim-llm",
                        "app.kubernetes.io/instance": RELEASE}
    pod_labels = wl["spec"]["template"]["metadata"]["labels"]
    assert not CHART_LABELS & set(pod_labels), "a chart version bump must not restart GPU pods"
    assert selector.items() <= pod_labels.items()
    assert values["podLabels"].items() <= pod_labels.items()
    assert values["commonLabels"].items() <= pod_labels.items()
    assert wl["spec"]["template"]["metadata"].get("annotations", {}) == values["podAnnotations"]


def test_service_account(case: Any) -> None:
    _, values, objs = case
    pod = workload(objs)["spec"]["template"]["spec"]
    accounts = of_kind(objs, "ServiceAccount")
    if values["serviceAccount"]["create"]:
        [account] = accounts
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert account["automountServiceAccountToken"] is values["serviceAccount"]["automountServiceAccountToken"]
    else:
        assert accounts == []
        assert pod["serviceAccountName"] == (values["serviceAccount"]["name"] or "default")


API_PORT = [{"port": "http-openai", "protocol": "TCP"}]


def test_network_policy(case: Any) -> None:
    _, values, objs = case
    policies = {p["metadata"]["name"]: p for p in of_kind(objs, "NetworkPolicy")}
    settings = values["networkPolicy"]
    if not settings["enabled"]:
        assert policies == {}
        return
    wl = workload(objs)
    policy = policies.pop(wl["metadata"]["name"])
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["labels"] == wl["metadata"]["labels"]
    spec = policy["spec"]
    # Exactly the model's pods: the workload's (immutable) selector labels.
    assert spec["podSelector"] == wl["spec"]["selector"]
    assert spec["podSelector"]["matchLabels"].items() <= wl["spec"]["template"]["metadata"]["labels"].items()
    # Ingress only: egress stays open, NIM downloads its model from NGC.
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
    assert {"name": "http-openai", "containerPort": values["model"]["openaiPort"], "protocol": "TCP"} in container(
        objs)["ports"]
    for rule in spec["ingress"]:
        assert rule["from"], "a rule without peers admits every source, inside or outside the cluster"
        assert rule["ports"] == API_PORT
    rules = list(spec["ingress"])
    if settings["clients"]:
        assert rules.pop(0)["from"] == settings["clients"]
    prometheus = settings["prometheus"]
    if prometheus["namespace"]:
        peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": prometheus["namespace"]}}}
        if prometheus["podLabels"]:
            peer["podSelector"] = {"matchLabels": prometheus["podLabels"]}
        assert rules.pop(0)["from"] == [peer]
    assert rules == []
    if values["cacheWarmup"]["enabled"]:
        [job] = of_kind(objs, "Job")
        warmup = policies.pop(job["metadata"]["name"])
        # The download Job serves nothing: no ingress at all, and the model's policy does not select it.
        assert warmup["spec"] == {"podSelector": {"matchLabels": job["spec"]["template"]["metadata"]["labels"]},
                                  "policyTypes": ["Ingress"], "ingress": []}
        assert not spec["podSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert policies == {}


def test_network_policy_defaults_admit_the_cluster_and_the_monitoring_namespace() -> None:
    [policy] = of_kind(objects(DEFAULTS), "NetworkPolicy")
    assert policy["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {}}], "ports": API_PORT},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
         "ports": API_PORT},
    ]


@pytest.mark.parametrize(("network", "ingress"), [
    ({"enabled": False}, None),
    ({"clients": [], "prometheus": {"namespace": ""}}, []),
    ({"clients": [], "prometheus": {"namespace": "observability"}},
     [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
       "ports": API_PORT}]),
    ({"clients": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "prometheus": {"namespace": ""}},
     [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": API_PORT}]),
], ids=["disabled", "no-one", "prometheus-only", "clients-only"])
def test_network_policy_rules(network: dict[str, Any], ingress: list[dict[str, Any]] | None) -> None:
    objs = objects({**DEFAULTS, "networkPolicy": network})
    policies = of_kind(objs, "NetworkPolicy")
    if ingress is None:
        assert policies == []
        return
    [policy] = policies
    assert policy["spec"]["ingress"] == ingress
    kubernetes_validate.validate(policy, SCHEMA_VERSION, strict=True)


def test_notes_warn_that_a_load_balancer_needs_an_ip_block() -> None:
    hint = "reaches the pods only through an ipBlock"
    assert hint not in render(DEFAULTS)["nim-llm/templates/NOTES.txt"]
    assert hint in render({**DEFAULTS, "service": {"type": "LoadBalancer"}})["nim-llm/templates/NOTES.txt"]
    assert hint not in render({**DEFAULTS, "service": {"type": "LoadBalancer"}, "networkPolicy": {"enabled": False}})[
        "nim-llm/templates/NOTES.txt"]


def test_chart_version_bump_leaves_the_pod_template_alone(tmp_path: Path) -> None:
    copy = tmp_path / "nim-llm"
    shutil.copytree(CHART, copy)
    chart_yaml = copy / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 0.1.0", "version: 0.2.0"))
    before = workload(objects(DEFAULTS))
    after = workload(objects(DEFAULTS, chart=copy))
    assert after["metadata"]["labels"]["helm.sh/chart"] == "nim-llm-0.2.0"
    assert after["spec"]["template"] == before["spec"]["template"]
    assert after["spec"]["volumeClaimTemplates"] == before["spec"]["volumeClaimTemplates"]


def test_notes_explain_how_to_reach_the_api() -> None:
    notes = render({**DEFAULTS, "model": {"servedModelName": "meta/llama3-8b-instruct"}})["nim-llm/templates/NOTES.txt"]
    assert f"kubectl -n {NAMESPACE} port-forward service/{RELEASE}-nim-llm 8000:http-openai" in notes
    assert "/v1/models" in notes
    assert '"model": "meta/llama3-8b-instruct"' in notes and "/v1/chat/completions" in notes
    assert "1830 seconds" in notes  # 30 + 10 x 180
    assert "1830 seconds" not in render({**DEFAULTS, "startupProbe": {"enabled": False}})["nim-llm/templates/NOTES.txt"]


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("values", "message"), [
    ({"image": {"tag": "latest"}}, "image.tag 'latest' floats between NIM releases"),
    ({}, "set image.tag or image.digest"),
    ({"image": {"tag": "1.0.3"}, "workload": {"kind": "Deployment"}},
     "cache.type claimTemplate needs workload.kind StatefulSet"),
    ({"image": {"tag": "1.0.3"}, "cache": {"type": "existingClaim"}},
     "cache.type existingClaim needs cache.existingClaim"),
    ({"image": {"tag": "1.0.3"}, "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 2}},
     "autoscaling.maxReplicas must be at least autoscaling.minReplicas"),
    ({"image": {"tag": "1.0.3"}, "commonLabels": {"app.kubernetes.io/instance": "other"}},
     'commonLabels may not set "app.kubernetes.io/instance"'),
    ({"image": {"tag": "1.0.3"}, "podLabels": {"helm.sh/chart": "x"}}, 'podLabels may not set "helm.sh/chart"'),
    ({"image": {"tag": "1.0.3"}, "env": {"NGC_API_KEY": "plain-text"}}, "env may not set NGC_API_KEY"),
    ({"image": {"tag": "1.0.3"}, "secretEnv": {"NIM_CACHE_PATH": {"secretName": "s", "key": "k"}}},
     "secretEnv may not set NIM_CACHE_PATH"),
    ({"image": {"tag": "1.0.3"}, "env": {"HF_TOKEN": "x"}, "secretEnv": {"HF_TOKEN": {"secretName": "s", "key": "k"}}},
     "HF_TOKEN is in both env and secretEnv"),
    ({"image": {"tag": "1.0.3"}, "cacheWarmup": {"enabled": True, "profiles": ["p"]}},
     "cacheWarmup needs cache.type existingClaim"),
    ({"image": {"tag": "1.0.3"}, "workload": {"kind": "Deployment"},
      "cache": {"type": "existingClaim", "existingClaim": "c"}, "cacheWarmup": {"enabled": True}},
     "cacheWarmup.profiles is empty"),
], ids=["tag-latest", "no-tag-no-digest", "claim-template-deployment", "existing-claim-without-name",
        "max-below-min", "reserved-common-label", "reserved-pod-label", "reserved-env", "reserved-secret-env",
        "env-and-secret-env", "warmup-without-shared-claim", "warmup-without-profiles"])
def test_chart_refuses_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as caught:
        render(values)
    assert message in str(caught.value)


def test_statefulset_name_longer_than_52_is_refused() -> None:
    release = "a-release-name-that-is-long-enough-to-overflow"  # + "-nim-llm" = 54 characters
    with pytest.raises(HelmError) as caught:
        render(DEFAULTS, release=release)
    assert "longer than 52 characters" in str(caught.value)
    # A Deployment has no controller-revision-hash label: the same name is fine.
    assert objects({**DEFAULTS, "workload": {"kind": "Deployment"}, "cache": {"type": "emptyDir"}}, release=release)


@pytest.mark.parametrize("values", [
    {"image": {"tag": "1.0.3"}, "gpus": 2},
    {"image": {"tag": "1.0.3", "name": "x"}},
    {"image": {"tag": "1.0.3"}, "cache": {"size": "lots"}},
    {"image": {"tag": "1.0.3"}, "workload": {"kind": "DaemonSet"}},
    {"image": {"tag": "1.0.3"}, "model": {"logLevel": "TRACE"}},
    {"image": {"tag": "1.0.3"}, "env": {"NIM_MAX_MODEL_LEN": 8192}},
    {"image": {"tag": "1.0.3", "digest": "sha256:short"}},
    {"image": {"tag": "1.0.3"}, "podDisruptionBudget": {"maxUnavailable": "1"}},
    {"image": {"tag": "1.0.3"}, "networkPolicy": {"clients": [{"namespaceSelector": {}, "ipBlock": {"cidr": "10.0.0.0/8"}}]}},
    {"image": {"tag": "1.0.3"}, "networkPolicy": {"clients": [{}]}},
    {"image": {"tag": "1.0.3"}, "networkPolicy": {"clients": [{"namespaceSelector": {"matchLabel": {"a": "b"}}}]}},
    {"image": {"tag": "1.0.3"}, "networkPolicy": {"prometheus": {"namespace": "Monitoring"}}},
    {"image": {"tag": "1.0.3", "pullPolicy": "Sometimes"}},
], ids=["unknown-top-level", "unknown-nested", "bad-quantity", "bad-kind", "bad-log-level", "env-not-string",
        "bad-digest", "pdb-bare-string", "peer-ipblock-with-selector", "peer-empty", "peer-selector-typo",
        "prometheus-namespace-not-dns", "bad-pull-policy"])
def test_schema_rejects_bad_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(str(CHART)) as loaded, pytest.raises(helm.HelmError):
        loaded.validate_schema(values)
    with pytest.raises(HelmError) as caught:
        render(values)
    assert "schema" in str(caught.value)


# ---------------------------------------------------------------- determinism and chart files


def test_rendering_is_byte_stable() -> None:
    for values in CASES.values():
        assert render(values) == render(values)


def test_templates_use_nothing_argo_cd_cannot_reproduce() -> None:
    # lookup needs a cluster; random, time and key generation differ on every refresh (endless OutOfSync).
    forbidden = re.compile(r"\b(lookup|rand\w*|uuidv4|now|date\w*|unixEpoch|genPrivateKey|genCA|"
                           r"genSelfSignedCert\w*|genSignedCert\w*)\b")
    templates = sorted((CHART / "templates").iterdir())
    assert templates
    for template in templates:
        code = " ".join(re.findall(r"\{\{(.*?)\}\}", template.read_text(), flags=re.DOTALL))
        code = re.sub(r"/\*.*?\*/", "", code, flags=re.DOTALL)
        assert not forbidden.search(code), template.name


def test_chart_yaml() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "nim-llm" and chart["version"] == "0.1.0"
    assert chart["kubeVersion"] == ">=1.29.0-0" and chart["type"] == "application"
    assert chart["description"] and chart["keywords"]
    assert not {"appVersion", "home", "sources", "icon"} & set(chart)


def _schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _schema_nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _schema_nodes(node["additionalProperties"], f"{path}.*")
    return found


def test_values_schema_is_closed_and_described() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(defaults)) == []
    assert set(defaults) == set(schema["properties"])
    verbatim = {".affinity", ".tolerations[]", ".cacheWarmup.tolerations[]", ".metrics.prometheusRule.groups[]", ".topologySpreadConstraints[]", ".autoscaling.metrics[]",
                ".autoscaling.behavior", ".autoscaling.keda.triggers[]", ".autoscaling.keda.fallback",
                ".podSecurityContext", ".securityContext"}
    for path, node in _schema_nodes(schema):
        if path.endswith(".*") and node == {"type": "string"}:
            continue  # value type of a free-form string map
        assert node.get("description"), f"{path or '<root>'} lacks a description"
        if node.get("type") == "object" and path not in verbatim:
            assert "additionalProperties" in node, f"{path or '<root>'} is open"
            if "properties" in node:
                assert node["additionalProperties"] is False, path


def test_values_yaml_is_documented() -> None:
    from nimgen.gitops.charts import documented_values

    text = (CHART / "values.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=values.schema.json"
    rows = {row.key for row in documented_values(text)}
    schema = json.loads((CHART / "values.schema.json").read_text())

    def leaves(node: dict[str, Any], prefix: str) -> list[str]:
        if node.get("additionalProperties") is False and "properties" in node and prefix.count(".") < 2 \
                and not prefix.startswith("resources."):
            return [leaf for name, child in node["properties"].items() for leaf in leaves(child, f"{prefix}.{name}")]
        return [prefix]

    expected = [leaf for name, node in schema["properties"].items() for leaf in leaves(node, name)]
    assert [key for key in expected if key not in rows] == []


def test_ci_values_files_validate_and_cover_each_mode() -> None:
    ci = _ci_cases()
    assert len(ci) >= 3
    kinds = {merged(v)["workload"]["kind"] for v in ci.values()}
    caches = {merged(v)["cache"]["type"] for v in ci.values()}
    assert kinds == {"StatefulSet", "Deployment"}
    assert caches == {"claimTemplate", "existingClaim", "emptyDir"}
    assert any(merged(v)["autoscaling"]["enabled"] for v in ci.values())
    assert any(merged(v)["cacheWarmup"]["enabled"] for v in ci.values())
