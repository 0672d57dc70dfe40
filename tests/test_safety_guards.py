"""Direct tests of nimgen's safety logic, one behaviour each (issue 14: bugs a mutation trial slipped past).

Every test here names the behaviour it guards and fails when that behaviour is broken on purpose:
the pool's GPU demand is a sum, the secret-in-output guard runs on the public render path, the
HPA's ignoreDifferences names the real workload kind, validate honours NodePool taints and Service
namespaces, diff keeps an unknown price unknown, the AppProjects admit exactly their kinds, and the
chart's pull-policy defaults follow the image reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment, make_repo, read_yaml
from helpers import VALID, run, tree_digest, write_env
from nimgen import helm
from nimgen.commands import bench
from nimgen.commands.render import render_files
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.gitops.tree import SecretInOutputError, render_environment
from nimgen.yamlio import dump_all, load_all_plain

PROJECT = Path(__file__).resolve().parents[1]
MODEL_CHART = PROJECT / "generator" / "nimgen" / "charts" / "nim-llm"
KARPENTER = "  karpenter: {nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}\n"


def _with_cluster(text: str, cluster_extra: str, top_extra: str = "") -> str:
    """VALID with lines added at the end of `cluster:` and top-level keys after it."""
    anchor = '  kubernetesVersion: "1.33"\n'
    return text.replace(anchor, anchor + cluster_extra + top_extra)


# ---------------------------------------------------------------- 1. a pool's GPU demand is the SUM of its models


TWO_MODELS_ON_ONE_POOL = _with_cluster(VALID, KARPENTER, """\
nodePools:
  - name: a10g
    instanceFamilies: [g5]
    gpuLimit: LIMIT
    amiVersion: v20251112
""") + """\
    replicas: {min: 1, max: 5}
  - name: llama3-8b-instruct-b
    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3
    nodePool: a10g
    replicas: {min: 1, max: 5}
"""


def test_pool_gpu_demand_is_the_sum_over_its_models(tmp_path: Path) -> None:
    """Two models of 5 x 1 GPU need 10 GPUs of the pool, not 5: a gpuLimit of 8 is refused, in place."""
    env = write_env(tmp_path, TWO_MODELS_ON_ONE_POOL.replace("LIMIT", "8"))
    before = tree_digest(tmp_path)
    result = run("render", env)
    assert result.exit_code == 1, result.output
    assert ("environments/test.yaml:10:15: $.nodePools[0].gpuLimit: models on node pool 'a10g' may need 10 GPUs at "
            "replicas.max plus rollout surge (llama3-8b-instruct: 5 x 1, llama3-8b-instruct-b: 5 x 1) but gpuLimit is 8\n"
            "    hint: raise gpuLimit to at least 10, or lower replicas.max (or rollout.surge) of those models") in result.output
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize(("limit", "refused"), [(9, True), (10, False)])
def test_pool_gpu_limit_boundary_is_the_sum(tmp_path: Path, limit: int, refused: bool) -> None:
    """One GPU short of the sum is refused; exactly the sum fits."""
    result = run("render", write_env(tmp_path, TWO_MODELS_ON_ONE_POOL.replace("LIMIT", str(limit))))
    assert (result.exit_code == 1) is refused, result.output
    assert ("may need 10 GPUs at replicas.max plus rollout surge" in result.output) is refused


# ---------------------------------------------------------------- 2. the secret-in-output guard on the public path

# A Hugging Face token shape (hf_ + 30 or more alphanumerics); no real credential.
TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


def test_a_credential_shaped_env_var_name_passes_the_file_checks_but_not_the_output_guard(tmp_path: Path) -> None:
    """The environment-file checks look at values, not at the names of environment variables; the name
    reaches the model's Application. render_environment's own guard must refuse the output."""
    path = write_env(tmp_path, VALID + f"    env: {{{TOKEN}: \"1\"}}\n")
    env = load_environment(path, tmp_path)  # accepted: the input checks see nothing
    assert dict(env.models[0].env) == {TOKEN: "1"}
    with pytest.raises(SecretInOutputError) as caught:
        render_environment(env)
    assert "argocd/test/apps/models/llama3-8b-instruct.yaml:" in str(caught.value)
    assert re.search(r"argocd/test/apps/models/llama3-8b-instruct\.yaml:\d+: a Hugging Face token", str(caught.value))
    assert TOKEN not in str(caught.value)  # the message names the place, never the credential

    before = tree_digest(tmp_path)
    result = run("render", path)
    assert result.exit_code == 1, result.output
    assert "refusing to write output that contains secret values" in result.output
    assert TOKEN not in result.output
    assert tree_digest(tmp_path) == before  # nothing written


def test_a_credential_in_the_environment_file_name_is_refused_in_the_output(tmp_path: Path) -> None:
    """The file's path is no content the file checks read, but every generated header names it."""
    path = write_env(tmp_path, VALID, name=f"{TOKEN}.yaml")
    env = load_environment(path, tmp_path)
    with pytest.raises(SecretInOutputError) as caught:
        render_environment(env)
    assert "argocd/test/root.yaml:1: a Hugging Face token" in str(caught.value)
    before = tree_digest(tmp_path)
    result = run("render", path)
    assert result.exit_code == 1 and "refusing to write output that contains secret values" in result.output
    assert tree_digest(tmp_path) == before


# ---------------------------------------------------------------- 3. ignoreDifferences names the autoscaled workload


@pytest.mark.parametrize(("workload", "extra"), [
    ("Deployment", "    workload: Deployment\n"),
    ("StatefulSet", "    workload: StatefulSet\n"),
    ("StatefulSet", ""),  # the default workload
], ids=["deployment", "statefulset", "default-statefulset"])
def test_autoscaled_model_ignores_replicas_of_its_own_workload_kind(tmp_path: Path, helm_engine: helm.Engine,
                                                                    workload: str, extra: str) -> None:
    text = VALID + "    replicas: {min: 1, max: 3}\n" + extra
    env = load_environment(write_env(tmp_path, text), tmp_path)
    model = env.models[0]
    app = applications.by_name(env)[model.name]
    assert app["spec"]["ignoreDifferences"] == [{
        "group": "apps", "kind": workload, "name": "llama3-8b-instruct", "namespace": "nim",
        "jsonPointers": ["/spec/replicas"],
    }]
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    # The object it names is the one the chart renders, and that object leaves spec.replicas to the HPA.
    source = app["spec"]["source"]["helm"]
    rendered = helm_engine.template(MODEL_CHART, source["valuesObject"], release=source["releaseName"],
                                    namespace=model.namespace, kube_version="1.33")
    [found] = [doc for doc in load_all_plain(rendered["nim-llm/templates/workload.yaml"]) if doc]
    ignored = app["spec"]["ignoreDifferences"][0]
    assert (found["kind"], found["metadata"]["name"]) == (ignored["kind"], ignored["name"])
    assert "replicas" not in found["spec"]


def test_keda_scaled_deployment_ignores_deployment_replicas(tmp_path: Path) -> None:
    text = _with_cluster(VALID, "", "observability: {enabled: true}\n") + (
        "    workload: Deployment\n    replicas: {min: 1, max: 3}\n    autoscaling: {engine: keda}\n")
    env = load_environment(write_env(tmp_path, text), tmp_path)
    [ignored] = applications.by_name(env)[env.models[0].name]["spec"]["ignoreDifferences"]
    assert (ignored["group"], ignored["kind"]) == ("apps", "Deployment")


# ---------------------------------------------------------------- 4./5. nimgen validate: taints and Service namespaces



def _add_manifests(root: Path, *objects: dict[str, Any]) -> None:
    """Manifests beside prod's Applications (the root Application applies them), recorded in the ownership
    record with their hash as a render would, so that only the check under test has something to say."""
    relative = "argocd/prod/apps/extra.yaml"
    (root / relative).write_text(dump_all(list(objects)))
    record = root / "argocd/prod/generated-files.txt"
    digest = "sha256:" + hashlib.sha256((root / relative).read_bytes()).hexdigest()[:16]
    lines = [line for line in record.read_text().splitlines() if line.partition("  ")[0] != relative]
    record.write_text("\n".join([*lines, f"{relative}  {digest}"]) + "\n")


def _validate_errors(root: Path, schemas: Path) -> tuple[int, list[str]]:
    result = run("validate", root / "environments/prod.yaml", "--schema-location", str(schemas))
    return result.exit_code, [line for line in result.output.splitlines() if line.startswith("error:")]


def _gpu_deployment(tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    """A well-formed GPU Deployment on prod's a10g pool; only its tolerations vary."""
    container = {"name": "app", "image": "registry.example.com/app:1.2.3",
                 "resources": {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                               "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}},
                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                 "livenessProbe": {"httpGet": {"path": "/", "port": 8080}}}
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}, "containers": [container],
           "nodeSelector": {"nimgen.io/node-pool": "a10g"}, "tolerations": tolerations}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gpu-probe", "namespace": "nim"},
            "spec": {"selector": {"matchLabels": {"app": "gpu-probe"}},
                     "template": {"metadata": {"labels": {"app": "gpu-probe"}}, "spec": pod}}}


NODEPOOL_FINDING = ("error: prod/prod-root Deployment nim/gpu-probe spec.template.spec: [nodepool] its pods fit no "
                    "NodePool (a10g, a10g-on-demand, h100)")


@pytest.mark.parametrize("tolerations", [
    [],
    [{"key": "example.com/other", "operator": "Exists", "effect": "NoSchedule"}],
    [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}],
    [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "false", "effect": "NoSchedule"}],
], ids=["none", "other-key", "other-effect", "other-value"])
def test_gpu_pod_without_the_pools_toleration_fits_no_nodepool(repo_copy: Path, crd_schemas: Path,
                                                               tolerations: list[dict[str, Any]]) -> None:
    """Every nimgen NodePool taints its nodes nvidia.com/gpu=true:NoSchedule: a pod that does not tolerate
    it never lands on any of them, whatever its node selector says."""
    _add_manifests(repo_copy, _gpu_deployment(tolerations))
    code, errors = _validate_errors(repo_copy, crd_schemas)
    assert code == 1
    assert any(line.startswith(NODEPOOL_FINDING) for line in errors), "\n".join(errors)


@pytest.mark.parametrize("toleration", [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
    {"operator": "Exists"},
], ids=["exists", "equal", "tolerate-everything"])
def test_gpu_pod_with_the_pools_toleration_fits(repo_copy: Path, crd_schemas: Path,
                                                toleration: dict[str, Any]) -> None:
    _add_manifests(repo_copy, _gpu_deployment([toleration]))
    _, errors = _validate_errors(repo_copy, crd_schemas)
    assert not [line for line in errors if "[nodepool]" in line], "\n".join(errors)


def _service(namespace: str) -> dict[str, Any]:
    """A Service selecting the pods of prod's llama3-8b-instruct model (which run in namespace nim)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cross", "namespace": namespace},
            "spec": {"selector": {"app.kubernetes.io/instance": "llama3-8b-instruct"}, "ports": [{"port": 8000}]}}


def test_service_selects_no_pod_of_another_namespace(repo_copy: Path, crd_schemas: Path) -> None:
    """A Service's selector picks pods of its own namespace only: matching labels elsewhere do not count."""
    _add_manifests(repo_copy, _service("open-webui"))
    code, errors = _validate_errors(repo_copy, crd_schemas)
    assert code == 1
    expected = ("error: prod/prod-root Service open-webui/cross spec.selector: [service-selector] selects no pod: no "
                "pod template in namespace open-webui has labels {'app.kubernetes.io/instance': 'llama3-8b-instruct'}")
    assert any(line.startswith(expected) for line in errors), "\n".join(errors)


def test_service_selects_the_pods_of_its_own_namespace(repo_copy: Path, crd_schemas: Path) -> None:
    _add_manifests(repo_copy, _service("nim"))
    _, errors = _validate_errors(repo_copy, crd_schemas)
    assert not [line for line in errors if "Service nim/cross" in line], "\n".join(errors)


# ---------------------------------------------------------------- 6. diff: an unknown price stays unknown

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "nimgen tests",
           "GIT_AUTHOR_EMAIL": "tests@example.com", "GIT_COMMITTER_NAME": "nimgen tests",
           "GIT_COMMITTER_EMAIL": "tests@example.com"}
# p5e.48xlarge has no price in nimgen's catalog (onDemandUSD: null): sold mainly as Capacity Blocks.
H200_POOL = """\
  - name: h200
    instanceTypes: [p5e.48xlarge]
    capacityTypes: [on-demand]
    gpuLimit: 16
    amiVersion: v20251112
"""
H200_MODEL = """\
  - name: llama-3-1-70b-h200
    image: nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3
    gpus: 8
    nodePool: h200
    replicas: {min: 2, max: 2}   # production: two replicas
    resources: {cpu: "32", memory: 256Gi}
    sharedMemory: 32Gi
    gateway: {enabled: false}
"""


@pytest.fixture()
def unpriced_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """prod committed on main; the work tree adds a pool of unpriced p5e nodes and a model on it."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    root = make_repo(tmp_path / "repo", names=["prod"])
    env_file = root / "environments/prod.yaml"
    render_files([env_file])

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), "-c", "commit.gpgsign=false", *args], check=True,
                       capture_output=True, env={**os.environ, **GIT_ENV})

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "prod")
    text = env_file.read_text(encoding="utf-8")
    text = text.replace("ngc:\n", H200_POOL + "ngc:\n", 1) + H200_MODEL
    env_file.write_text(text, encoding="utf-8")
    return env_file


def test_diff_shows_an_unknown_price_as_unknown_never_zero(unpriced_diff: Path) -> None:
    result = run("diff", unpriced_diff, "-o", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)["summary"]
    assert summary["headline"] == "+1 model; min 10→26, max 29→45 GPUs; $/h unknown (a price is not in the catalog)"
    [model] = summary["models"]
    assert (model["name"], model["change"]) == ("llama-3-1-70b-h200", "added")
    assert model["after"]["instance"] == "p5e.48xlarge"
    assert (model["after"]["onDemandUsdMin"], model["after"]["onDemandUsdMax"]) == (None, None)
    assert model["delta"] == {"gpusMin": 16, "gpusMax": 16, "onDemandUsdMin": None, "onDemandUsdMax": None}
    h200 = next(pool for pool in summary["pools"] if pool["pool"] == "h200")
    assert h200["before"] is None
    assert (h200["after"]["onDemandUsdMin"], h200["after"]["onDemandUsdMax"]) == (None, None)
    assert (h200["delta"]["onDemandUsdMin"], h200["delta"]["onDemandUsdMax"]) == (None, None)
    totals = summary["totals"]
    assert totals["before"]["onDemandUsdMin"] > 0  # prod's own models are priced
    assert (totals["after"]["onDemandUsdMin"], totals["after"]["onDemandUsdMax"]) == (None, None)
    assert (totals["delta"]["onDemandUsdMin"], totals["delta"]["onDemandUsdMax"]) == (None, None)

    text = run("diff", unpriced_diff)
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[1] == "+1 model; min 10→26, max 29→45 GPUs; $/h unknown (a price is not in the catalog)"
    [model_row] = [line for line in lines if line.startswith("llama-3-1-70b-h200 ")]
    assert model_row.split()[-2:] == ["16", "unknown"], model_row
    [pool_row] = [line for line in lines if line.startswith("h200 (new)")]
    assert pool_row.split()[-1] == "unknown", pool_row
    [total_row] = [line for line in lines if line.startswith("total ")]
    assert total_row.endswith("→unknown"), total_row
    for row in (model_row, pool_row, total_row):
        assert "$0" not in row and "0.00" not in row.rpartition(" ")[2], row

    markdown = run("diff", unpriced_diff, "-o", "markdown").output
    assert "**+1 model; min 10→26, max 29→45 GPUs; $/h unknown (a price is not in the catalog)**" in markdown
    assert "| h200 (new) | 16 | 16 | unknown |" in markdown


# ---------------------------------------------------------------- 7. the AppProjects admit exactly these kinds

MODEL_KINDS = [
    {"group": "", "kind": "Service"}, {"group": "", "kind": "ServiceAccount"},
    {"group": "", "kind": "PersistentVolumeClaim"}, {"group": "apps", "kind": "StatefulSet"},
    {"group": "apps", "kind": "Deployment"}, {"group": "autoscaling", "kind": "HorizontalPodAutoscaler"},
    {"group": "policy", "kind": "PodDisruptionBudget"}, {"group": "networking.k8s.io", "kind": "NetworkPolicy"},
]
MONITORING_MODEL_KINDS = [{"group": "monitoring.coreos.com", "kind": "ServiceMonitor"},
                          {"group": "monitoring.coreos.com", "kind": "PrometheusRule"}]
NAMESPACE_ONLY = [{"group": "", "kind": "Namespace"}]
ROOT_KINDS = [{"group": "argoproj.io", "kind": "AppProject"}, {"group": "argoproj.io", "kind": "Application"}]
BENCH_KINDS = [{"group": "batch", "kind": "Job"}, {"group": "networking.k8s.io", "kind": "NetworkPolicy"}]

PROD_PLATFORM_CLUSTER = [
    {"group": "", "kind": "Namespace"},
    {"group": "karpenter.sh", "kind": "NodePool"}, {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass"},
    {"group": "storage.k8s.io", "kind": "StorageClass"},
    {"group": "external-secrets.io", "kind": "ClusterSecretStore"},
    {"group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition"},
    {"group": "rbac.authorization.k8s.io", "kind": "ClusterRole"},
    {"group": "rbac.authorization.k8s.io", "kind": "ClusterRoleBinding"},
    {"group": "admissionregistration.k8s.io", "kind": "MutatingWebhookConfiguration"},
    {"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration"},
    {"group": "apiregistration.k8s.io", "kind": "APIService"},
    # The gateway: Envoy Gateway's CRD chart guards its CRDs with a ValidatingAdmissionPolicy; the GatewayClass.
    {"group": "admissionregistration.k8s.io", "kind": "ValidatingAdmissionPolicy"},
    {"group": "admissionregistration.k8s.io", "kind": "ValidatingAdmissionPolicyBinding"},
    {"group": "gateway.networking.k8s.io", "kind": "GatewayClass"},
]
PROD_PLATFORM_NAMESPACED = [
    {"group": "", "kind": "ConfigMap"}, {"group": "", "kind": "PersistentVolumeClaim"},
    {"group": "", "kind": "Secret"}, {"group": "", "kind": "Service"}, {"group": "", "kind": "ServiceAccount"},
    {"group": "aigateway.envoyproxy.io", "kind": "AIGatewayRoute"},
    {"group": "aigateway.envoyproxy.io", "kind": "AIServiceBackend"},
    {"group": "apps", "kind": "DaemonSet"}, {"group": "apps", "kind": "Deployment"},
    {"group": "apps", "kind": "StatefulSet"}, {"group": "batch", "kind": "Job"},
    {"group": "external-secrets.io", "kind": "ExternalSecret"},
    {"group": "gateway.envoyproxy.io", "kind": "Backend"}, {"group": "gateway.envoyproxy.io", "kind": "BackendTrafficPolicy"},
    {"group": "gateway.envoyproxy.io", "kind": "ClientTrafficPolicy"}, {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy"},
    {"group": "gateway.envoyproxy.io", "kind": "SecurityPolicy"}, {"group": "gateway.networking.k8s.io", "kind": "Gateway"},
    {"group": "monitoring.coreos.com", "kind": "Alertmanager"}, {"group": "monitoring.coreos.com", "kind": "PodMonitor"},
    {"group": "monitoring.coreos.com", "kind": "Prometheus"},
    {"group": "monitoring.coreos.com", "kind": "PrometheusRule"},
    {"group": "monitoring.coreos.com", "kind": "ServiceMonitor"},
    {"group": "networking.k8s.io", "kind": "NetworkPolicy"}, {"group": "policy", "kind": "PodDisruptionBudget"},
    {"group": "rbac.authorization.k8s.io", "kind": "Role"},
    {"group": "rbac.authorization.k8s.io", "kind": "RoleBinding"},
]
DEV_PLATFORM_CLUSTER = [{"group": "", "kind": "Namespace"}, {"group": "karpenter.sh", "kind": "NodePool"},
                        {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass"}]
DEV_PLATFORM_NAMESPACED = [{"group": "", "kind": "ConfigMap"}, {"group": "", "kind": "ServiceAccount"},
                           {"group": "apps", "kind": "DaemonSet"}]

# (file under argocd/<env>/, project name, clusterResourceWhitelist, namespaceResourceWhitelist)
PROJECTS = {
    "prod": [
        # prod's 70B model fills the cache with a warm-up Job.
        ("apps/project.yaml", "prod", NAMESPACE_ONLY, MODEL_KINDS + [{"group": "batch", "kind": "Job"}]
         + MONITORING_MODEL_KINDS),
        ("apps/platform/project.yaml", "prod-platform", PROD_PLATFORM_CLUSTER, PROD_PLATFORM_NAMESPACED),
        ("root-project.yaml", "prod-root", [], ROOT_KINDS),
    ],
    "dev": [
        ("apps/project.yaml", "dev", NAMESPACE_ONLY, MODEL_KINDS),
        ("apps/platform/project.yaml", "dev-platform", DEV_PLATFORM_CLUSTER, DEV_PLATFORM_NAMESPACED),
        ("root-project.yaml", "dev-root", [], ROOT_KINDS),
    ],
}


@pytest.mark.parametrize(("env_name", "file", "name", "cluster", "namespaced"),
                         [(env_name, *entry) for env_name, entries in PROJECTS.items() for entry in entries],
                         ids=[f"{env_name}-{entry[1]}" for env_name, entries in PROJECTS.items() for entry in entries])
def test_rendered_appprojects_admit_exactly_their_kinds(rendered_repo: Path, env_name: str, file: str, name: str,
                                                        cluster: list[dict[str, str]],
                                                        namespaced: list[dict[str, str]]) -> None:
    project = read_yaml(rendered_repo / "argocd" / env_name / file)
    assert project["metadata"]["name"] == name
    assert project["spec"]["clusterResourceWhitelist"] == cluster
    assert project["spec"]["namespaceResourceWhitelist"] == namespaced


@pytest.mark.parametrize("env_name", ["prod", "dev"])
def test_bench_project_admits_exactly_jobs_and_network_policies(env_name: str) -> None:
    project = bench.bench_project(example_environment(env_name))
    assert project["metadata"]["name"] == f"{env_name}-bench"
    assert project["spec"]["clusterResourceWhitelist"] == []
    assert project["spec"]["namespaceResourceWhitelist"] == BENCH_KINDS


def test_models_project_adds_exactly_the_warmup_job_and_keda_kinds(tmp_path: Path) -> None:
    text = _with_cluster(VALID, "", "observability: {enabled: true}\n"
                                    "storage: {modelCache: {efs: {fileSystemId: fs-0123456789abcdef0}}}\n") + (
        "    replicas: {min: 1, max: 3}\n    autoscaling: {engine: keda}\n"
        "    cacheWarmup: {profiles: [8835c31752fbc67ef658b20a9f78e056914fdef0660206d82f252d62fd96064d]}\n")
    env = load_environment(write_env(tmp_path, text), tmp_path)
    project = applications.app_project(env)
    assert project["spec"]["clusterResourceWhitelist"] == NAMESPACE_ONLY
    assert project["spec"]["namespaceResourceWhitelist"] == MODEL_KINDS + [
        {"group": "batch", "kind": "Job"}, *MONITORING_MODEL_KINDS, {"group": "keda.sh", "kind": "ScaledObject"}]


# ---------------------------------------------------------------- 8. the chart's image pull-policy defaults

DIGEST = "sha256:" + "0123456789abcdef" * 4
WARMUP = {"cache": {"type": "existingClaim", "existingClaim": "nim-model-cache", "subPath": "m"},
          "workload": {"kind": "Deployment"},
          "cacheWarmup": {"enabled": True,
                          "profiles": ["8835c31752fbc67ef658b20a9f78e056914fdef0660206d82f252d62fd96064d"]}}


def _pull_policies(engine: helm.Engine, image: dict[str, str]) -> set[str]:
    """imagePullPolicy of every container the chart renders (the model's and the warm-up Job's)."""
    rendered = engine.template(MODEL_CHART, {"image": image, **WARMUP}, release="llm", namespace="nim",
                               kube_version="1.33")
    docs = [doc for path, text in rendered.items() if not path.endswith("NOTES.txt") for doc in load_all_plain(text)]
    pods = [doc["spec"]["template"]["spec"] for doc in docs if doc and doc["kind"] in ("Deployment", "Job")]
    assert len(pods) == 2
    return {c["imagePullPolicy"] for pod in pods for c in pod["containers"]}


@pytest.mark.parametrize(("image", "policy"), [
    ({"tag": "1.0.3"}, "Always"),  # a tag is resolved again at every container start
    ({"digest": DIGEST}, "IfNotPresent"),  # a digest's bytes cannot change
    ({"tag": "1.0.3", "digest": DIGEST}, "IfNotPresent"),  # the digest wins over the tag
    ({"tag": "1.0.3", "pullPolicy": "IfNotPresent"}, "IfNotPresent"),  # an explicit policy wins
    ({"digest": DIGEST, "pullPolicy": "Always"}, "Always"),
], ids=["tag", "digest", "tag-and-digest", "explicit-on-tag", "explicit-on-digest"])
def test_image_pull_policy_defaults(helm_engine: helm.Engine, image: dict[str, str], policy: str) -> None:
    assert _pull_policies(helm_engine, image) == {policy}


@pytest.mark.parametrize(("image", "policy"), [
    ("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", "Always"),
    (f"nvcr.io/nim/meta/llama3-8b-instruct@{DIGEST}", "IfNotPresent"),
])
def test_environment_image_reference_sets_the_pull_policy(tmp_path: Path, helm_engine: helm.Engine, image: str,
                                                          policy: str) -> None:
    """Through nimgen's own values: an environment pinning a digest gets IfNotPresent, a tag gets Always."""
    text = VALID.replace("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", image)
    env = load_environment(write_env(tmp_path, text), tmp_path)
    source = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]
    rendered = helm_engine.template(MODEL_CHART, source["valuesObject"], release=source["releaseName"],
                                    namespace="nim", kube_version="1.33")
    [workload] = [doc for doc in load_all_plain(rendered["nim-llm/templates/workload.yaml"]) if doc]
    [container] = workload["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    assert container["imagePullPolicy"] == policy
