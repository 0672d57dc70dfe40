"""Karpenter GPU node pools: environment checks, the gpu-nodepools chart under the real Helm engine, CRD schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_NAMES, example_environment, shared
from helpers import VALID, run, tree_digest, write_env
from kube import crd_errors
from nimgen import helm
from nimgen.components import deviceplugin, gateway, monitoring, nodepools, openwebui
from nimgen.gitops import applications
from nimgen.yamlio import load_all_plain

POOLS = """\
  karpenter:
    nodeRole: KarpenterNodeRole-nim-test
    discoveryTag: nim-test
nodePools:
  - name: a10g
    instanceFamilies: [g5]
    gpuLimit: 8
    amiVersion: v20251112
"""


def _with_pools(text: str = VALID, pools_text: str = POOLS) -> str:
    return text.replace('  kubernetesVersion: "1.33"\n', '  kubernetesVersion: "1.33"\n' + pools_text)


def _render(engine: helm.Engine, root: Path, env_name: str) -> list[dict[str, Any]]:
    app = applications.by_name(example_environment(env_name))["gpu-nodepools"]
    rendered = engine.template(root / nodepools.CHART_PATH, app["spec"]["source"]["helm"]["valuesObject"],
                               release=app["spec"]["source"]["helm"]["releaseName"],
                               namespace=app["spec"]["destination"]["namespace"], kube_version="1.33")
    return [doc for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt") for doc in load_all_plain(text)]


@pytest.fixture(scope=shared("module"))
def objects(rendered_repo: Path, helm_engine: helm.Engine) -> dict[str, list[dict[str, Any]]]:
    return {name: _render(helm_engine, rendered_repo, name) for name in EXAMPLE_NAMES}


def _by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("env_name", EXAMPLE_NAMES)
def test_rendered_pools_validate_against_karpenter_crds(objects: Any, crd_schemas: Path, env_name: str) -> None:
    rendered = objects[env_name]
    expected = {p.name for p in example_environment(env_name).node_pools}
    # A pool with spotPerOnDemand adds its On-Demand NodePool, which shares the pool's EC2NodeClass.
    pairs = {f"{p.name}-on-demand" for p in example_environment(env_name).node_pools if p.spot_per_on_demand}
    assert {o["metadata"]["name"] for o in rendered if o["kind"] == "NodePool"} == expected | pairs
    assert {o["metadata"]["name"] for o in rendered if o["kind"] == "EC2NodeClass"} == expected
    for obj in rendered:
        assert crd_errors(obj, crd_schemas) == [], f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("env_name", EXAMPLE_NAMES)
def test_chart_lints_strict(rendered_repo: Path, helm_engine: helm.Engine, env_name: str) -> None:
    values = nodepools.nodepool_values(example_environment(env_name))
    findings = helm_engine.lint(rendered_repo / nodepools.CHART_PATH, values, kube_version="1.33")
    assert [f for f in findings if f.severity != "info"] == []


def test_nodepool_settings(objects: Any) -> None:
    pool = _by(objects["prod"], "NodePool", "a10g")["spec"]
    template = pool["template"]
    assert template["metadata"]["labels"] == {"nimgen.io/node-pool": "a10g"}
    assert template["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert template["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "a10g"}
    requirements = {r["key"]: (r["operator"], r["values"]) for r in template["spec"]["requirements"]}
    assert requirements["karpenter.k8s.aws/instance-family"] == ("In", ["g5"])
    assert requirements["karpenter.sh/capacity-type"] == ("In", ["spot", "on-demand"])
    assert requirements["kubernetes.io/arch"] == ("In", ["amd64"])
    assert requirements["karpenter.k8s.aws/instance-gpu-manufacturer"] == ("In", ["nvidia"])
    assert template["spec"]["expireAfter"] == "720h"
    assert template["spec"]["terminationGracePeriod"] == "2h"
    assert pool["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30m", "budgets": [{"nodes": "10%"}]}
    # A string, as the API server stores it; prod's gpuLimit 16 is split with a10g-on-demand (spotPerOnDemand 1).
    assert pool["limits"] == {"nvidia.com/gpu": "8"}
    assert _by(objects["prod"], "NodePool", "a10g-on-demand")["spec"]["limits"] == {"nvidia.com/gpu": "8"}
    h100 = _by(objects["prod"], "NodePool", "h100")["spec"]["template"]["spec"]["requirements"]
    assert {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]} in h100


def test_ec2nodeclass_settings(objects: Any) -> None:
    a10g = _by(objects["prod"], "EC2NodeClass", "a10g")["spec"]
    assert a10g["role"] == "KarpenterNodeRole-nim-prod"
    assert a10g["amiSelectorTerms"] == [{"alias": "al2023@v20251112"}]
    assert a10g["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "nim-prod"}}]
    assert a10g["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "nim-prod"}}]
    assert a10g["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {
        "volumeSize": "300Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}}]
    assert a10g["metadataOptions"]["httpTokens"] == "required"
    h100 = _by(objects["prod"], "EC2NodeClass", "h100")["spec"]
    assert h100["amiSelectorTerms"] == [{"alias": "bottlerocket@v1.57.0"}]
    assert [m["deviceName"] for m in h100["blockDeviceMappings"]] == ["/dev/xvda", "/dev/xvdb"]
    assert h100["blockDeviceMappings"][1]["ebs"]["volumeSize"] == "500Gi"


def test_model_pods_land_on_their_pool(objects: Any) -> None:
    """Cross-object: each model's node selector and tolerations match the NodePool it names."""
    from nimgen.components.model_values import chart_values

    env = example_environment("prod")
    for model in env.models:
        pool = _by(objects["prod"], "NodePool", model.node_pool)["spec"]["template"]
        values = chart_values(env, model)
        assert pool["metadata"]["labels"]["nimgen.io/node-pool"] == values["nodePool"]
        [taint] = pool["spec"]["taints"]
        assert taint["key"] == "nvidia.com/gpu" and taint["effect"] == "NoSchedule"


def test_platform_project_and_application() -> None:
    env = example_environment("prod")
    project = applications.platform_project(env)
    assert project["metadata"]["name"] == "prod-platform"
    assert {(k["group"], k["kind"]) for k in project["spec"]["clusterResourceWhitelist"]} == {
        ("", "Namespace"), ("karpenter.sh", "NodePool"), ("karpenter.k8s.aws", "EC2NodeClass"),
        ("storage.k8s.io", "StorageClass"), *monitoring.CLUSTER_KINDS,  # prod runs the monitoring stack
        ("external-secrets.io", "ClusterSecretStore"),  # and takes its NGC key from Secrets Manager
        *gateway.CONTROLLER_CLUSTER_KINDS}  # and serves its models through the gateway
    assert {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]} == {
        ("", "PersistentVolumeClaim"), ("", "ConfigMap"), ("", "ServiceAccount"), ("apps", "DaemonSet"),
        *monitoring.NAMESPACED_KINDS, ("external-secrets.io", "ExternalSecret"),
        *openwebui.NAMESPACED_KINDS,  # and Open WebUI (its NetworkPolicy is the one kind the others lack)
        *gateway.NAMESPACED_KINDS, *gateway.MONITORING_KINDS}
    dev = applications.platform_project(example_environment("dev"))  # pools and device plugin, no storage
    assert {(k["group"], k["kind"]) for k in dev["spec"]["clusterResourceWhitelist"]} == {
        ("", "Namespace"), ("karpenter.sh", "NodePool"), ("karpenter.k8s.aws", "EC2NodeClass")}
    assert ("", "PersistentVolumeClaim") not in {(k["group"], k["kind"]) for k in dev["spec"]["namespaceResourceWhitelist"]}
    models_project = applications.app_project(env)
    assert ("karpenter.sh", "NodePool") not in {(k["group"], k["kind"]) for k in models_project["spec"]["clusterResourceWhitelist"]}
    app = applications.by_name(env)["gpu-nodepools"]
    assert app["spec"]["project"] == "prod-platform"
    assert app["spec"]["source"]["path"] == "charts/gpu-nodepools"
    wave = int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    model_wave = int(applications.by_name(env)[env.models[0].name]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    project_wave = int(project["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    assert project_wave < wave < model_wave


@pytest.mark.parametrize("env_name", EXAMPLE_NAMES)
def test_platform_objects_validate_against_argo_cd_crds(crd_schemas: Path, env_name: str) -> None:
    env = example_environment(env_name)
    for obj in (applications.platform_project(env), applications.by_name(env)["gpu-nodepools"]):
        assert crd_errors(obj, crd_schemas) == []


def test_environment_without_pools_renders_no_pool_chart(tmp_path: Path) -> None:
    assert run("render", write_env(tmp_path, VALID)).exit_code == 0
    assert not (tmp_path / "charts" / "gpu-nodepools").exists()
    # Only the StorageClass of the model's per-replica cache claims is on the platform.
    platform = tmp_path / "argocd" / "test" / "apps" / "platform"
    assert sorted(p.name for p in platform.iterdir()) == ["block-storage.yaml", "project.yaml"]


def test_pools_render_and_validate_end_to_end(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, _with_pools()))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "argocd/test/apps/platform/gpu-nodepools.yaml").exists()


BAD = [
    pytest.param(_with_pools(VALID.replace("nodePool: a10g", "nodePool: l4")),
                 "$.models[0].nodePool: node pool 'l4' is not defined in nodePools (defined: a10g)", id="unknown-pool"),
    pytest.param(_with_pools(pools_text=POOLS[POOLS.index("nodePools"):]),
                 "$.cluster: nodePools needs cluster.karpenter", id="no-karpenter"),
    pytest.param(_with_pools(VALID.replace("name: test\n", "name: test\nproduction: true\n"),
                             POOLS.replace("v20251112", "latest")),
                 "$.nodePools[0].amiVersion: node pool 'a10g' uses amiVersion latest in a production environment",
                 id="latest-ami-in-production"),
    pytest.param(_with_pools(pools_text=POOLS.replace("instanceFamilies: [g5]", "instanceFamilies: [g5]\n    instanceTypes: [g5.xlarge]")),
                 "$.nodePools[0]: node pool 'a10g' needs exactly one of instanceFamilies or instanceTypes", id="families-and-types"),
    pytest.param(_with_pools(pools_text=POOLS + "  - name: a10g\n    instanceTypes: [g5.xlarge]\n    gpuLimit: 1\n    amiVersion: v20251112\n"),
                 "$.nodePools[1].name: duplicate node pool name 'a10g'", id="duplicate-pool"),
    pytest.param(_with_pools(pools_text=POOLS.replace("v20251112", "v1.26.2")),
                 "$.nodePools[0].amiVersion: 'v1.26.2' is not a al2023 AMI release", id="ami-version-format"),
    pytest.param(_with_pools(pools_text=POOLS.replace("gpuLimit: 8", "gpuLimit: 8\n    diskSize: 300GB")),
                 "$.nodePools[0].diskSize: invalid value \"300GB\"", id="disk-size-unit"),
    pytest.param(_with_pools(pools_text=POOLS.replace("gpuLimit: 8", "gpuLimit: 8\n    minGpuMemory: 48Gi")),
                 "$.nodePools[0].minGpuMemory: node pool 'a10g' has no instance with 48Gi per GPU "
                 "(largest: A10G, 24 GiB)", id="memory-floor-excludes-all"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_pools_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    env = write_env(tmp_path, text)
    before = tree_digest(tmp_path)
    result = run("render", env)
    assert result.exit_code == 1
    assert expected in result.output
    assert tree_digest(tmp_path) == before


def test_dev_may_follow_the_latest_ami() -> None:
    [pool] = example_environment("dev").node_pools
    assert pool.ami_alias == "al2023@latest"


def test_pool_capacity_is_checked_against_replicas_max(tmp_path: Path) -> None:
    text = _with_pools(VALID + "    gpus: 2\n    replicas: {min: 1, max: 5}\n")
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1
    assert ("$.nodePools[0].gpuLimit: models on node pool 'a10g' may need 10 GPUs at replicas.max plus "
            "rollout surge (llama3-8b-instruct: 5 x 2) but gpuLimit is 8") in result.output
    assert "hint: raise gpuLimit to at least 10" in result.output


def test_unused_pool_is_a_warning_not_an_error(tmp_path: Path) -> None:
    spare = POOLS + "  - name: spare\n    instanceFamilies: [g6]\n    gpuLimit: 4\n    amiVersion: v20251112\n"
    result = run("render", write_env(tmp_path, _with_pools(pools_text=spare)))
    assert result.exit_code == 0, result.output
    assert "environments/test.yaml:14:11: $.nodePools[1].name: warning: no model uses node pool 'spare'" in result.output


def test_do_not_disrupt_annotates_model_pods(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    env = example_environment("prod")
    assert all(model.do_not_disrupt for model in env.models)
    app = applications.by_name(env)[env.models[0].name]
    rendered = helm_engine.template(rendered_repo / "charts" / "nim-llm", app["spec"]["source"]["helm"]["valuesObject"],
                                    release=env.models[0].name, namespace="nim", kube_version="1.33")
    [workload] = [d for d in load_all_plain(rendered["nim-llm/templates/workload.yaml"])]
    assert workload["spec"]["template"]["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}
    assert not any(m.do_not_disrupt for m in example_environment("dev").models)


def test_device_plugin_runs_only_where_the_ami_lacks_it(crd_schemas: Path) -> None:
    env = example_environment("prod")  # a10g: al2023 (needs the plugin), h100: bottlerocket (ships it)
    app = applications.by_name(env)["nvidia-device-plugin"]
    assert crd_errors(app, crd_schemas) == []
    source = app["spec"]["source"]
    assert (source["repoURL"], source["chart"], source["targetRevision"]) == (
        "https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.18.2")
    assert "path" not in source
    values = source["helm"]["valuesObject"]
    [term] = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": "nimgen.io/node-pool", "operator": "In", "values": ["a10g"]}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    assert values["resources"] == {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    # Root and no probe are the plugin's nature: waived, each with its reason, for the chart's two DaemonSets.
    waived = deviceplugin.DevicePlugin().policy_waivers(env)["nvidia-device-plugin"]
    assert sorted((w.rule, w.workload.name, w.container) for w in waived) == [
        ("non-root", "nvidia-device-plugin", "nvidia-device-plugin-ctr"),
        ("non-root", "nvidia-device-plugin-mps-control-daemon", "mps-control-daemon-ctr"),
        ("non-root", "nvidia-device-plugin-mps-control-daemon", "mps-control-daemon-mounts"),
        ("probes", "nvidia-device-plugin", "nvidia-device-plugin-ctr"),
        ("probes", "nvidia-device-plugin-mps-control-daemon", "mps-control-daemon-ctr")]
    assert {(w.workload.kind, w.workload.namespace) for w in waived} == {("DaemonSet", "nvidia-device-plugin")}
    assert all(w.reason for w in waived)
    project = applications.platform_project(env)
    assert "https://nvidia.github.io/k8s-device-plugin" in project["spec"]["sourceRepos"]
    assert "nvidia-device-plugin" in {d["namespace"] for d in project["spec"]["destinations"]}
    assert {"group": "apps", "kind": "DaemonSet"} in project["spec"]["namespaceResourceWhitelist"]
    wave = int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    assert wave < int(applications.by_name(env)[env.models[0].name]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


@pytest.mark.parametrize(("pools_text", "expected"), [
    (POOLS, True),
    (POOLS.replace("amiVersion: v20251112", "amiFamily: bottlerocket\n    amiVersion: v1.57.0"), False),
    (POOLS.replace("  karpenter:", "  devicePlugin: none\n  karpenter:"), False),
])
def test_device_plugin_application_is_rendered_when_needed(tmp_path: Path, pools_text: str, expected: bool) -> None:
    result = run("render", write_env(tmp_path, _with_pools(pools_text=pools_text)))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "argocd/test/apps/platform/nvidia-device-plugin.yaml").exists() is expected


def _pool_values(tmp_path: Path, text: str) -> dict[str, Any]:
    from nimgen.environment.load import load_environment

    values: dict[str, Any] = nodepools.nodepool_values(load_environment(write_env(tmp_path, text), tmp_path))
    return values


def test_gpu_count_requirement_leaves_out_nodes_too_small_for_any_replica(tmp_path: Path) -> None:
    four = _with_pools(VALID + "    gpus: 4\n", POOLS.replace("gpuLimit: 8", "gpuLimit: 16"))
    assert _pool_values(tmp_path, four)["pools"]["a10g"]["gpuCounts"] == [4, 8]  # g5 has 1, 4 and 8
    # A 1-GPU model can use every size, so nothing narrows and the requirement is left out.
    assert "gpuCounts" not in _pool_values(tmp_path, _with_pools())["pools"]["a10g"]


def test_memory_floor_sits_above_the_gpus_it_excludes(tmp_path: Path) -> None:
    text = _with_pools(VALID.replace("nodePool: a10g", "nodePool: big"),
                       POOLS.replace("a10g", "big").replace("[g5]", "[g6, g6e]").replace("gpuLimit: 8",
                                                                                    "gpuLimit: 8\n    minGpuMemory: 48Gi"))
    entry = _pool_values(tmp_path, text)["pools"]["big"]
    # L4 and A10G (24 GiB) are out; EC2 reports an L40S below 48 GiB, so the floor is not 48Gi itself.
    assert entry["minGpuMemoryMiB"] == 24 * 1024 + 1
    # Instances nimgen does not know: the floor is taken as written.
    unknown = text.replace("instanceFamilies: [g6, g6e]", "instanceFamilies: [g7x]")
    floor = _pool_values(tmp_path, unknown)["pools"]["big"]["minGpuMemoryMiB"]
    assert (floor, type(floor)) == (48 * 1024, int)  # a whole MiB count: the requirement's value is an integer
    # A floor below every GPU of the pool narrows nothing and is left out.
    low = text.replace("minGpuMemory: 48Gi", "minGpuMemory: 16Gi")
    assert "minGpuMemoryMiB" not in _pool_values(tmp_path, low)["pools"]["big"]


def test_memory_floor_renders_as_karpenter_requirement(tmp_path: Path, helm_engine: helm.Engine,
                                                      crd_schemas: Path) -> None:
    from nimgen.environment.load import load_environment

    text = _with_pools(VALID.replace("nodePool: a10g", "nodePool: big") + "    gpus: 4\n",
                       POOLS.replace("a10g", "big").replace("[g5]", "[g6, g6e]").replace("gpuLimit: 8",
                                                                                    "gpuLimit: 8\n    minGpuMemory: 48Gi"))
    assert run("render", write_env(tmp_path, text)).exit_code == 0
    app = applications.by_name(load_environment(tmp_path / "environments/test.yaml", tmp_path))["gpu-nodepools"]
    rendered = helm_engine.template(tmp_path / nodepools.CHART_PATH, app["spec"]["source"]["helm"]["valuesObject"],
                                    release="gpu-nodepools", namespace="kube-system", kube_version="1.33")
    objs = [doc for path, body in rendered.items() if not path.endswith("NOTES.txt") for doc in load_all_plain(body)]
    nodepool = _by(objs, "NodePool", "big")
    requirements = {r["key"]: r for r in nodepool["spec"]["template"]["spec"]["requirements"]}
    assert requirements["karpenter.k8s.aws/instance-gpu-memory"] == {
        "key": "karpenter.k8s.aws/instance-gpu-memory", "operator": "Gt", "values": ["24576"]}
    assert requirements["karpenter.k8s.aws/instance-gpu-count"]["values"] == ["4", "8"]
    assert crd_errors(nodepool, crd_schemas) == []


def test_fit_check_uses_the_memory_floor(tmp_path: Path) -> None:
    # 70B at bf16 needs about 172 GiB: 4 x L4 (96 GiB) would be refused, 4 x L40S (192 GiB) fits.
    model = VALID.replace("llama3-8b-instruct:1.0.3", "llama-3.1-70b-instruct:1.3.3").replace(
        "nodePool: a10g", "nodePool: big") + "    gpus: 4\n    resources: {cpu: '16', memory: 128Gi}\n" \
        "    sharedMemory: 16Gi\n"
    pool = POOLS.replace("a10g", "big").replace("[g5]", "[g6, g6e]").replace("gpuLimit: 8", "gpuLimit: 8")
    refused = run("render", write_env(tmp_path, _with_pools(model, pool)))
    assert refused.exit_code == 1 and "4 x L4 (g6.12xlarge) have 96 GiB" in refused.output
    floored = _with_pools(model, pool.replace("gpuLimit: 8", "gpuLimit: 8\n    minGpuMemory: 48Gi"))
    assert run("render", write_env(tmp_path, floored)).exit_code == 0
