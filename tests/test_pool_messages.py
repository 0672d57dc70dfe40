"""Every node-pool refusal, word for word: where it points, what it says, and the fix it offers.

A hint is half of a message: a user who reads "pin a release" must find how to pin one. These tests fail
when a message, its field path or its hint changes, so each change is a deliberate one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import VALID, run, write_env

KARPENTER = "  karpenter: {nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}\n"
A10G = "  - name: a10g\n    instanceFamilies: [g5]\n    gpuLimit: 8\n    amiVersion: v20251112\n"


def environment(pools: str, *, karpenter: bool = True, top: str = "", cluster_version: str = '"1.33"') -> str:
    anchor = '  kubernetesVersion: "1.33"\n'
    cluster = f"  kubernetesVersion: {cluster_version}\n" + (KARPENTER if karpenter else "")
    return top + VALID.replace(anchor, cluster + ("nodePools:\n" + pools if pools else ""))


def problems(tmp_path: Path, text: str) -> str:
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def expect(output: str, path: str, message: str, hint: str = "") -> None:
    line = f"{path}: {message}\n" + (f"    hint: {hint}\n" if hint else "")
    assert line in output, output
    if not hint:  # a message without a fix says so by having no hint line at all
        assert f"{path}: {message}\n    hint:" not in output, output


def test_pools_need_the_karpenter_settings(tmp_path: Path) -> None:
    expect(problems(tmp_path, environment(A10G, karpenter=False)), "$.cluster",
           "nodePools needs cluster.karpenter (nodeRole and discoveryTag) for the EC2NodeClasses",
           "add cluster.karpenter: {nodeRole: <IAM role name>, discoveryTag: <karpenter.sh/discovery tag value>}")


def test_duplicate_pool_names_point_at_the_first_one(tmp_path: Path) -> None:
    l40s = "  - name: l40s\n    instanceFamilies: [g6e]\n    gpuLimit: 8\n    amiVersion: v20251112\n"
    output = problems(tmp_path, environment(l40s + A10G + A10G + A10G))
    expect(output, "$.nodePools[2].name", "duplicate node pool name 'a10g' (also nodePools[1])")
    expect(output, "$.nodePools[3].name", "duplicate node pool name 'a10g' (also nodePools[1])")


@pytest.mark.parametrize("sizes", ["", "    instanceTypes: [g5.xlarge]\n"], ids=["neither", "both"])
def test_a_pool_names_families_or_types(tmp_path: Path, sizes: str) -> None:
    pool = A10G.replace("    instanceFamilies: [g5]\n", "" if not sizes else "    instanceFamilies: [g5]\n" + sizes)
    expect(problems(tmp_path, environment(pool)), "$.nodePools[0]",
           "node pool 'a10g' needs exactly one of instanceFamilies or instanceTypes",
           "instanceFamilies: [g5] lets Karpenter pick any size; instanceTypes: [g5.12xlarge] pins sizes")


@pytest.mark.parametrize("sizes", ["    instanceFamilies: [g5]\n", "    instanceTypes: [g5.xlarge, g5.12xlarge]\n"],
                         ids=["families", "types"])
def test_a_gpu_memory_floor_no_instance_meets(tmp_path: Path, sizes: str) -> None:
    pool = A10G.replace("    instanceFamilies: [g5]\n", sizes + "    minGpuMemory: 48Gi\n")
    expect(problems(tmp_path, environment(pool)), "$.nodePools[0].minGpuMemory",
           "node pool 'a10g' has no instance with 48Gi per GPU (largest: A10G, 24 GiB)",
           "lower minGpuMemory, or add instance families with larger GPUs")


def test_a_floor_an_instance_type_meets_is_fine(tmp_path: Path) -> None:
    pool = A10G.replace("    instanceFamilies: [g5]\n", "    instanceTypes: [g6e.xlarge]\n    minGpuMemory: 40Gi\n")
    text = environment(pool).replace("nodePool: a10g", "nodePool: a10g\n    gpus: 1")
    assert run("render", write_env(tmp_path, text)).exit_code == 0


def test_latest_ami_in_production(tmp_path: Path) -> None:
    pool = A10G.replace("v20251112", "latest")
    output = problems(tmp_path, environment(pool, top="production: true\n"))
    expect(output, "$.nodePools[0].amiVersion", "node pool 'a10g' uses amiVersion latest in a production environment",
           "every new AMI release would drift and replace every GPU node (restarting every model); pin a release "
           "and upgrade it in a reviewed change")


@pytest.mark.parametrize(("family", "version", "example"), [("al2023", "v1.26.2", "v20251112"),
                                                            ("bottlerocket", "v20251112", "v1.26.2")])
def test_an_ami_version_of_the_wrong_form(tmp_path: Path, family: str, version: str, example: str) -> None:
    pool = A10G.replace("v20251112", version) + f"    amiFamily: {family}\n"
    expect(problems(tmp_path, environment(pool)), "$.nodePools[0].amiVersion",
           f"'{version}' is not a {family} AMI release", f"write it like {example}")


def test_a_malformed_kubernetes_version_skips_the_ami_release_check(tmp_path: Path) -> None:
    # The schema reports the version; the AMI check must not guess with it.
    output = problems(tmp_path, environment(A10G, cluster_version='"1.x"'))
    assert "$.cluster.kubernetesVersion:" in output
    assert "AMI catalog" not in output and "amiVersion" not in output


@pytest.mark.parametrize(("pools", "known"), [(A10G, "a10g"), (A10G + A10G.replace("a10g", "h100"), "a10g, h100")])
def test_a_model_on_an_undefined_pool(tmp_path: Path, pools: str, known: str) -> None:
    text = environment(pools).replace("nodePool: a10g", "nodePool: l4")
    expect(problems(tmp_path, text), "$.models[0].nodePool",
           f"node pool 'l4' is not defined in nodePools (defined: {known})",
           "add the pool under nodePools or pick a defined one")


def test_no_pools_at_all_is_named(tmp_path: Path) -> None:
    expect(problems(tmp_path, environment("  []\n".replace("  ", ""), karpenter=False).replace(
        "nodePools:\n[]", "nodePools: []")), "$.models[0].nodePool",
        "node pool 'a10g' is not defined in nodePools (defined: none)", "add the pool under nodePools or pick a defined one")


def test_a_pool_from_model_defaults_points_at_the_model(tmp_path: Path) -> None:
    text = environment(A10G).replace("    nodePool: a10g\n", "").replace("models:\n", "modelDefaults:\n  nodePool: l4\nmodels:\n")
    output = problems(tmp_path, text)
    # Line 17 is the model (its file names no pool; the path names the layered setting).
    assert "environments/test.yaml:17:5: $.models[0].nodePool:" in output
    expect(output, "$.models[0].nodePool", "node pool 'l4' is not defined in nodePools (defined: a10g)",
           "add the pool under nodePools or pick a defined one")


# ------------------------------------------------------------------ a model on its pool


def on_pool(pool: str, model: str = "", image: str = "") -> str:
    text = environment(pool) + model
    return text.replace("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", image) if image else text


G5 = "  - name: a10g\n    instanceFamilies: [g5]\n    gpuLimit: 16\n    amiVersion: v20251112\n"


@pytest.mark.parametrize(("gpus", "hint"), [(3, "use 1, 2, 4 or 8 GPUs per replica"),
                                            (16, "multi-node serving (LeaderWorkerSet) is not supported by nimgen yet")])
def test_gpu_counts_nim_runs_on(tmp_path: Path, gpus: int, hint: str) -> None:
    expect(problems(tmp_path, on_pool(G5, f"    gpus: {gpus}\n")), "$.models[0].gpus",
           f"NIM runs a model on 1, 2, 4 or 8 GPUs of one node, not {gpus}", hint)


def test_a_replica_larger_than_the_largest_node(tmp_path: Path) -> None:
    pool = G5.replace("instanceFamilies: [g5]", "instanceTypes: [g5.xlarge, g5.12xlarge]")
    expect(problems(tmp_path, on_pool(pool, "    gpus: 8\n")), "$.models[0].gpus",
           "node pool 'a10g' offers at most 4 GPUs per node (g5.12xlarge), but a replica needs 8 on one node",
           "lower gpus, or add larger instance types to the pool")


def test_fp8_names_every_gpu_without_it(tmp_path: Path) -> None:
    pool = G5.replace("[g5]", "[g5, p4d]")
    expect(problems(tmp_path, on_pool(pool, "    precision: fp8\n")), "$.models[0].precision",
           "fp8 needs Ada or Hopper GPUs, but node pool 'a10g' may launch A100-40GB, A10G",
           "use bf16, or limit the pool to L4, L40S, H100 or H200 instances")


def test_fp8_from_model_defaults_points_at_the_precision(tmp_path: Path) -> None:
    text = on_pool(G5).replace("models:\n", "modelDefaults:\n  precision: fp8\nmodels:\n")
    expect(problems(tmp_path, text), "$.models[0].precision",
           "fp8 needs Ada or Hopper GPUs, but node pool 'a10g' may launch A10G",
           "use bf16, or limit the pool to L4, L40S, H100 or H200 instances")


def test_a_precision_nim_does_not_offer(tmp_path: Path) -> None:
    expect(problems(tmp_path, on_pool(G5.replace("[g5]", "[g6e]"), "    precision: int4\n")), "$.models[0].precision",
           "NIM offers this model in bf16, fp16, fp8, not int4", "set precision to one of bf16, fp16, fp8")


def test_a_model_too_large_for_one_gpu_names_the_count_that_fits(tmp_path: Path) -> None:
    text = on_pool(G5, image="nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3")
    expect(problems(tmp_path, text), "$.models[0]",
           "70.6B parameters at bf16 need about 160 GiB of GPU memory (132 GiB of weights plus KV cache and runtime), "
           "but 1 x A10G (g5.xlarge) have 24 GiB", "8 x A10G would fit (gpus: 8)")


def test_a_model_no_node_of_the_pool_can_hold(tmp_path: Path) -> None:
    text = on_pool(G5, "    gpus: 8\n", image="nvcr.io/nim/meta/llama-3.1-405b-instruct:1.3.3")
    expect(problems(tmp_path, text), "$.models[0].gpus",
           "405.9B parameters at bf16 need about 923 GiB of GPU memory (756 GiB of weights plus KV cache and runtime), "
           "but 8 x A10G (g5.48xlarge) have 192 GiB",
           "no count of A10G on one node fits; use larger GPUs or a smaller precision")


def warnings(tmp_path: Path, text: str) -> str:
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_model_outside_the_catalog_is_a_warning(tmp_path: Path) -> None:
    output = warnings(tmp_path, on_pool(G5, image="nvcr.io/nim/acme/mystery-llm:1.0.0"))
    expect(output, "$.models[0]", "warning: model 'llama3-8b-instruct' is not in nimgen's catalog; its GPU memory fit "
           "is not checked", "declare parameters (e.g. parameters: 8e9) and precision on the model")


def test_a_pool_of_unknown_instances_is_a_warning(tmp_path: Path) -> None:
    output = warnings(tmp_path, on_pool(G5.replace("instanceFamilies: [g5]", "instanceTypes: [x9.huge]")))
    expect(output, "$.nodePools[0].name", "warning: node pool 'a10g' launches no instance nimgen knows; GPU fit of its "
           "models is not checked", "see generator/nimgen/catalog/gpu-instances.yaml for the known instances")


def test_an_unused_pool_is_a_warning_and_the_next_pool_is_still_checked(tmp_path: Path) -> None:
    spare = "  - name: spare\n    instanceFamilies: [g6]\n    gpuLimit: 4\n    amiVersion: v20251112\n"
    output = warnings(tmp_path, on_pool(spare + G5))
    expect(output, "$.nodePools[0].name", "warning: no model uses node pool 'spare'",
           "remove the pool, or point a model's nodePool at it")
    tight = G5.replace("gpuLimit: 16", "gpuLimit: 1")
    expect(problems(tmp_path, on_pool(spare + tight, "    replicas: {min: 1, max: 2}\n")), "$.nodePools[1].gpuLimit",
           "models on node pool 'a10g' may need 2 GPUs at replicas.max plus rollout surge (llama3-8b-instruct: 2 x 1) "
           "but gpuLimit is 1", "raise gpuLimit to at least 2, or lower replicas.max (or rollout.surge) of those models")


def test_a_model_without_replicas_counts_one(tmp_path: Path) -> None:
    pool = G5.replace("[g5]", "[p5]").replace("gpuLimit: 16", "gpuLimit: 8")
    text = on_pool(pool, "    gpus: 8\n", image="nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3")
    assert run("render", write_env(tmp_path, text)).exit_code == 0


def test_capacity_is_checked_past_a_model_without_pool_and_a_pool_without_limit(tmp_path: Path) -> None:
    # models[1] names no pool and nodePools[0] has no gpuLimit (a schema error): nodePools[1] is still checked.
    loose = "  - name: loose\n    instanceFamilies: [g6]\n    amiVersion: v20251112\n"
    tight = G5.replace("gpuLimit: 16", "gpuLimit: 1")
    text = on_pool(loose + tight, "    replicas: {min: 1, max: 2}\n")
    text += ("  - name: elsewhere\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n"
             "  - name: on-loose\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: loose\n")
    output = problems(tmp_path, text)
    assert "$.nodePools[0].gpuLimit: missing required key 'gpuLimit'" in output
    expect(output, "$.nodePools[1].gpuLimit",
           "models on node pool 'a10g' may need 2 GPUs at replicas.max plus rollout surge (llama3-8b-instruct: 2 x 1) "
           "but gpuLimit is 1", "raise gpuLimit to at least 2, or lower replicas.max (or rollout.surge) of those models")


def _crowded(names: list[str]) -> str:
    models = "".join(f"  - name: {name}\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: a10g\n"
                     for name in names)
    return environment(G5.replace("gpuLimit: 16", "gpuLimit: 1")).split("models:\n")[0] + "models:\n" + models


@pytest.mark.parametrize(("lengths", "cut"), [([41] * 7 + [43], False), ([41] * 7 + [44], True)],
                         ids=["400-characters-whole", "401-characters-cut"])
def test_the_list_of_a_pools_models_is_cut_at_400_characters(tmp_path: Path, lengths: list[int], cut: bool) -> None:
    names = [f"m{i}-" + "x" * (length - 3) for i, length in enumerate(lengths)]
    detail = ", ".join(f"{name}: 1 x 1" for name in names)
    assert len(detail) == (401 if cut else 400)
    output = problems(tmp_path, _crowded(names))
    shown = f"{detail[:400]}… (401 characters)" if cut else detail
    assert (f"$.nodePools[0].gpuLimit: models on node pool 'a10g' may need 8 GPUs at replicas.max plus rollout surge "
            f"({shown}) but gpuLimit is 1") in output
