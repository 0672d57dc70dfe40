"""The nim-llm chart, rendered by the real Helm engine exactly as Argo CD renders each model Application."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_NAMES, PROJECT, example_environment, model_applications, shared
from kube import kubernetes_errors
from nimgen import helm
from nimgen.gitops import applications
from nimgen.yamlio import load_all_plain

CHART = PROJECT / "charts" / "nim-llm"


def _cases() -> list[tuple[str, str]]:
    return [(env, model.name) for env in EXAMPLE_NAMES for model in example_environment(env).models]


CASES = _cases()


def render_app(engine: helm.Engine, chart: Path, app: dict[str, Any], kube_version: str) -> list[dict[str, Any]]:
    """`helm template` with Argo CD's inputs: release = helm.releaseName, namespace = destination."""
    rendered = engine.template(
        chart, app["spec"]["source"]["helm"]["valuesObject"],
        release=app["spec"]["source"]["helm"]["releaseName"],
        namespace=app["spec"]["destination"]["namespace"],
        kube_version=kube_version,
    )
    return [doc for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
            for doc in load_all_plain(text)]


@pytest.fixture(scope=shared("module"))
def manifests(rendered_repo: Path, helm_engine: helm.Engine) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out = {}
    for env_name in EXAMPLE_NAMES:
        version = example_environment(env_name).kubernetes_version
        for app in model_applications(rendered_repo, env_name):
            out[(env_name, app["metadata"]["name"])] = render_app(
                helm_engine, rendered_repo / "charts" / "nim-llm", app, version)
    return out


def _one(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)
               and (suffix or not o["metadata"]["name"].endswith("-headless"))]
    return found


def _workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
    return found


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [container] = _workload(objects)["spec"]["template"]["spec"]["containers"]
    return container


def test_helm_lint_strict_is_clean(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    for env_name in EXAMPLE_NAMES:
        version = example_environment(env_name).kubernetes_version
        for app in model_applications(rendered_repo, env_name):
            findings = helm_engine.lint(rendered_repo / "charts" / "nim-llm",
                                        app["spec"]["source"]["helm"]["valuesObject"], kube_version=version)
            problems = [f for f in findings if f.severity in ("warning", "error")]
            assert problems == [], f"{env_name}/{app['metadata']['name']}: {problems}"


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_every_manifest_passes_kubernetes_strict_schema(manifests: Any, env_name: str, model: str) -> None:
    version = example_environment(env_name).kubernetes_version
    objects = manifests[(env_name, model)]
    assert {o["kind"] for o in objects} >= {"Service", "ServiceAccount", "PodDisruptionBudget"}
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # Prometheus Operator kinds: checked against their CRD schemas in test_observability
        assert kubernetes_errors(obj, version) == [], f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_names_match_what_argo_cd_expects(manifests: Any, env_name: str, model: str) -> None:
    for obj in manifests[(env_name, model)]:
        assert obj["metadata"]["name"] in (model, f"{model}-headless", f"{model}-cache-warmup")
        assert obj["metadata"]["namespace"] == "nim"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == model
        assert len(obj["metadata"]["name"]) <= 63


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_project_admits_every_rendered_kind(manifests: Any, env_name: str, model: str) -> None:
    project = applications.app_project(example_environment(env_name))
    admitted = {(kind["group"], kind["kind"]) for kind in project["spec"]["namespaceResourceWhitelist"]}
    for obj in manifests[(env_name, model)]:
        group = obj["apiVersion"].rpartition("/")[0]
        assert (group, obj["kind"]) in admitted


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_pod_spec_has_what_nim_needs(manifests: Any, env_name: str, model: str) -> None:
    spec_model = next(m for m in example_environment(env_name).models if m.name == model)
    objects = manifests[(env_name, model)]
    pod = _workload(objects)["spec"]["template"]["spec"]
    container = _container(objects)
    gpus = str(spec_model.gpus)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nimgen.io/node-pool": spec_model.node_pool}
    env = {e["name"]: e for e in container["env"]}
    assert env["NGC_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ngc-api", "key": "NGC_API_KEY"}
    assert "value" not in env["NGC_API_KEY"]
    assert pod["imagePullSecrets"] == [{"name": "ngc-secret"}]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["NIM_CACHE_PATH"]["value"] == mounts["model-cache"]
    assert env["NIM_SERVED_MODEL_NAME"]["value"] == spec_model.served_model_name
    assert mounts["dshm"] == "/dev/shm"
    [shm] = [v for v in pod["volumes"] if v["name"] == "dshm"]
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": spec_model.shared_memory}
    assert container["image"] == str(spec_model.image)


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_pods_run_non_root_with_dropped_capabilities(manifests: Any, env_name: str, model: str) -> None:
    objects = manifests[(env_name, model)]
    pod = _workload(objects)["spec"]["template"]["spec"]
    container = _container(objects)
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_network_policy_admits_cluster_clients_and_prometheus_to_the_api_port(
        manifests: Any, env_name: str, model: str) -> None:
    env = example_environment(env_name)
    objects = manifests[(env_name, model)]
    [policy] = [o for o in objects if o["kind"] == "NetworkPolicy" and not o["metadata"]["name"].endswith("-cache-warmup")]
    assert policy["spec"]["podSelector"] == _workload(objects)["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress open: NIM downloads from NGC
    assert {"name": "http-openai", "containerPort": 8000, "protocol": "TCP"} in _container(objects)["ports"]
    rules = policy["spec"]["ingress"]
    assert all(rule["ports"] == [{"port": "http-openai", "protocol": "TCP"}] for rule in rules)
    peers = [peer for rule in rules for peer in rule["from"]]
    assert {"namespaceSelector": {}} in peers  # any pod of the cluster, nothing outside it
    scraper = env.observability.namespace if env.observability else "monitoring"
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": scraper}}} in peers
    assert kubernetes_errors(policy, env.kubernetes_version) == []


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_probes_allow_a_cold_download(manifests: Any, env_name: str, model: str) -> None:
    container = _container(manifests[(env_name, model)])
    assert container["livenessProbe"]["httpGet"] == {"path": "/v1/health/live", "port": "http-openai"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/health/ready", "port": "http-openai"}
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/v1/health/ready", "port": "http-openai"}
    budget = startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= 20 * 60


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_rollout_surges_only_when_asked(manifests: Any, env_name: str, model: str) -> None:
    spec_model = next(m for m in example_environment(env_name).models if m.name == model)
    workload = _workload(manifests[(env_name, model)])
    if workload["kind"] == "Deployment":
        expected = {"maxSurge": spec_model.surge, "maxUnavailable": 0} if spec_model.surge else {
            "maxSurge": 0, "maxUnavailable": 1}
        assert workload["spec"]["strategy"]["rollingUpdate"] == expected
    else:
        assert spec_model.surge == 0
        assert workload["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_replicas_belong_to_the_hpa_when_autoscaled(manifests: Any, env_name: str, model: str) -> None:
    spec_model = next(m for m in example_environment(env_name).models if m.name == model)
    objects = manifests[(env_name, model)]
    workload = _workload(objects)
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    if spec_model.autoscaled:
        assert "replicas" not in workload["spec"]
        [hpa] = hpas
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": workload["kind"], "name": model}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (spec_model.min_replicas, spec_model.max_replicas)
        [metric] = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
        assert metric["pods"]["metric"]["name"] == spec_model.autoscaling_metric
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    else:
        assert workload["spec"]["replicas"] == spec_model.min_replicas
        assert hpas == []


@pytest.mark.parametrize(("env_name", "model"), CASES)
def test_services_pdb_and_selectors(manifests: Any, env_name: str, model: str) -> None:
    objects = manifests[(env_name, model)]
    workload = _workload(objects)
    selector = {"app.kubernetes.io/name": "nim-llm", "app.kubernetes.io/instance": model}
    assert workload["spec"]["selector"]["matchLabels"] == selector
    assert "helm.sh/chart" not in workload["spec"]["template"]["metadata"]["labels"]
    service = _one(objects, "Service")
    assert service["spec"]["ports"] == [{"name": "http-openai", "port": 8000, "targetPort": "http-openai", "protocol": "TCP"}]
    assert service["spec"]["selector"] == selector
    headless = [o for o in objects if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"]
    if workload["kind"] == "StatefulSet":
        assert [h["metadata"]["name"] for h in headless] == [workload["spec"]["serviceName"]]
    else:
        assert headless == []
    pdb = _one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    spec_model = next(m for m in example_environment(env_name).models if m.name == model)
    if spec_model.min_replicas >= 2:
        assert (pdb["spec"]["minAvailable"], "maxUnavailable" in pdb["spec"]) == (spec_model.min_replicas - 1, False)
    else:
        assert (pdb["spec"]["maxUnavailable"], "minAvailable" in pdb["spec"]) == (1, False)


def test_cache_modes(manifests: Any, rendered_repo: Path, helm_engine: helm.Engine) -> None:
    prod = _workload(manifests[("prod", "llama3-8b-instruct")])
    assert "volumeClaimTemplates" not in prod["spec"]
    [cache] = [v for v in prod["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-cache"]
    assert cache["persistentVolumeClaim"] == {"claimName": "nim-model-cache"}  # the shared EFS claim
    [mount] = [m for m in _container([prod])["volumeMounts"] if m["name"] == "model-cache"]
    assert mount == {"name": "model-cache", "mountPath": "/model-store", "subPath": "llama3-8b-instruct"}
    dev = _workload(manifests[("dev", "llama3-8b-instruct")])
    [cache] = [v for v in dev["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-cache"]
    assert cache == {"name": "model-cache", "emptyDir": {"sizeLimit": "60Gi"}}
    values = {"image": {"tag": "1.0.3"}, "cache": {"type": "claimTemplate", "size": "50Gi", "storageClassName": "gp3"}}
    objects = [d for p, t in helm_engine.template(rendered_repo / "charts" / "nim-llm", values, release="m",
                                                   namespace="nim", kube_version="1.33").items()
               if not p.endswith("NOTES.txt") for d in load_all_plain(t)]
    workload = _workload(objects)
    [claim] = workload["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "model-cache"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "gp3"
    assert workload["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    for obj in objects:
        assert kubernetes_errors(obj, "1.33") == []


def test_existing_claim_mode(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    values = {"image": {"tag": "1.0.3"}, "cache": {"type": "existingClaim", "existingClaim": "nim-cache"},
              "workload": {"kind": "Deployment"}}
    objects = [d for p, t in helm_engine.template(rendered_repo / "charts" / "nim-llm", values, release="m",
                                                   namespace="nim", kube_version="1.33").items()
               if not p.endswith("NOTES.txt") for d in load_all_plain(t)]
    [volume] = [v for v in _workload(objects)["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-cache"]
    assert volume["persistentVolumeClaim"] == {"claimName": "nim-cache"}
    for obj in objects:
        assert kubernetes_errors(obj, "1.33") == []


@pytest.mark.parametrize(("values", "message"), [
    ({"image": {"tag": "latest"}}, "image.tag 'latest' floats"),
    ({"image": {"tag": ""}}, "set image.tag or image.digest"),
    ({"image": {"tag": "1"}, "workload": {"kind": "Deployment"}}, "cache.type claimTemplate needs workload.kind StatefulSet"),
    ({"image": {"tag": "1"}, "cache": {"type": "existingClaim"}}, "cache.type existingClaim needs cache.existingClaim"),
    ({"image": {"tag": "1"}, "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 2}},
     "autoscaling.maxReplicas must be at least autoscaling.minReplicas"),
    ({"image": {"tag": "1"}, "gpus": 2}, "additional properties"),
])
def test_chart_refuses_bad_values(rendered_repo: Path, helm_engine: helm.Engine, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError) as caught:
        helm_engine.template(rendered_repo / "charts" / "nim-llm", values, release="m", namespace="nim", kube_version="1.33")
    assert message in str(caught.value).lower() or message in str(caught.value)


def test_rendering_is_byte_stable(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    [app, *_] = model_applications(rendered_repo, "prod")
    values = app["spec"]["source"]["helm"]["valuesObject"]
    first = helm_engine.template(rendered_repo / "charts" / "nim-llm", values, release="x", namespace="nim", kube_version="1.33")
    second = helm_engine.template(rendered_repo / "charts" / "nim-llm", values, release="x", namespace="nim", kube_version="1.33")
    assert first == second


def test_templates_use_nothing_argo_cd_cannot_reproduce() -> None:
    # lookup needs a cluster; random, time and key generation differ on every refresh (endless OutOfSync).
    forbidden = re.compile(r"\b(lookup|rand\w*|uuidv4|now|date\w*|genPrivateKey|genCA|genSelfSignedCert\w*|genSignedCert\w*)\b")
    for template in sorted((CHART / "templates").iterdir()):
        code = " ".join(re.findall(r"\{\{(.*?)\}\}", template.read_text(), flags=re.DOTALL))
        assert not forbidden.search(code), template.name


def test_values_are_documented_and_schema_covers_them() -> None:
    from nimgen.gitops.charts import chart_default_values, chart_values_schema, documented_values

    rows = {row.key: row for row in documented_values((CHART / "values.yaml").read_text())}
    schema = chart_values_schema("nim-llm")["properties"]
    for key, spec in schema.items():
        children = spec.get("properties", {}) if spec.get("additionalProperties") is False else {}
        documented = key in rows or (children and all(f"{key}.{child}" in rows for child in children))
        assert documented, f"values.yaml key {key} lacks a helm-docs '# --' comment"
    assert set(chart_default_values("nim-llm")) == set(schema), "values.yaml and values.schema.json list different keys"
    assert rows["imagePullSecrets"].type == "list"
    readme = (CHART / "README.md").read_text()
    assert "| `image.tag` | string | `\"\"` |" in readme


def test_kubernetes_schema_check_catches_unknown_fields(manifests: Any) -> None:
    """Guards the guard: strict validation must reject a field Kubernetes does not know."""
    workload = dict(_workload(manifests[("prod", "llama3-8b-instruct")]))
    workload["spec"] = {**workload["spec"], "replica": 2}
    assert kubernetes_errors(workload, "1.33") != []
