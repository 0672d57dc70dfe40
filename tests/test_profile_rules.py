"""The profile rules one by one, on plain environment documents: a selection resolved against the release's
manifest, an id checked against it, the pool's GPUs read from its families, types and memory floor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import VALID, write_env
from nimgen import capacity
from nimgen.components import profiles
from nimgen.components.profiles import select
from nimgen.environment.load import load_environment
from nimgen.gitops import applications

SMALL = "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3"
H100 = {"name": "h100", "instanceTypes": ["p5.48xlarge"]}
VLLM_TP1 = "193649a2eb95e821309d6023a2cabb31489d3b690a9973c7ab5d1ff58b0aa7eb"
VLLM_TP2 = "395082aa40085d35f004dd3056d7583aea330417ed509b4315099a66cfc72bdd"
H100_BF16_TP1 = "ed4af8b6563348d37f72bfd013be44573a1c88f384ef8fb3eaf0c69e4f235c20"
H100_BF16_TP1_LORA = "ebaf474b36a93eebbe8853ef58e22f95875cb45706f362d1761e7e25570d642c"
L40S_BF16_TP1 = "8af967d80ae8f30f4635a59b2140fdc2b38d3004e16e66c9667fa032e56497fd"
A100_BF16_TP1 = "9189d008806a9638d4206e6ff94c0b0d9acc2a8861f6de5a49b9d0a5acdcf049"
LIST_THEM = "list them with list-model-profiles on a node of the pool"


def model(profile: Any, **fields: Any) -> dict[str, Any]:
    return {"name": "m", "image": SMALL, "profile": profile, **fields}


def findings(models: list[dict[str, Any]], pools: list[dict[str, Any]] | None = None) -> list[tuple[Any, ...]]:
    """What profiles.check reports, as (path, message, hint)."""
    found: list[tuple[Any, ...]] = []
    profiles.check({"nodePools": pools or []}, models,
                   lambda path, message, hint="", **_: found.append((path, message, hint)))
    return found


# ------------------------------------------------------------------ select


def test_an_image_that_is_no_reference_is_left_to_its_own_check() -> None:
    assert select(model({"engine": "vllm"}, image="Not An Image!!"), None) == ("", "", "")


def test_the_one_matching_profile_comes_with_no_message() -> None:
    assert select(model({"engine": "tensorrt_llm", "precision": "bf16"}, gpus=1), H100) == (H100_BF16_TP1, "", "")


def test_a_model_without_gpus_selects_for_one_gpu() -> None:
    assert select(model({"engine": "vllm"}), None) == (VLLM_TP1, "", "")
    assert select(model({"engine": "vllm"}, gpus=2), None) == (VLLM_TP2, "", "")


def test_lora_selects_the_lora_engine_and_its_absence_the_plain_one() -> None:
    wanted = {"engine": "tensorrt_llm", "precision": "bf16"}
    assert select(model({**wanted, "lora": True}, gpus=1), H100)[0] == H100_BF16_TP1_LORA
    assert select(model({**wanted, "lora": False}, gpus=1), H100)[0] == H100_BF16_TP1


def test_without_a_pool_every_pre_built_engine_is_a_candidate_and_four_are_shown() -> None:
    assert select(model({"engine": "tensorrt_llm"}, gpus=1), None) == (
        "", ("6 profiles of meta/llama-3.1-8b-instruct:1.3.3 match the selection (engine tensorrt_llm) for this "
        "model's GPUs"),
        ("narrow it (kind: throughput or latency, tensorParallel, precision), or write one id: "
        "7fb52d5c2883c5393818bc3b0414f4a9b4b5717d6257d4b79ea227985a12bef5 (tensorrt_llm bf16 tp1 H100_NVL throughput); "
        f"{L40S_BF16_TP1} (tensorrt_llm bf16 tp1 L40S throughput); "
        f"{A100_BF16_TP1} (tensorrt_llm bf16 tp1 A100 throughput); "
        "d16635e67b41130625a0e0132a6205ba6ca048a19e9b0a6b61bde5087801ed08 (tensorrt_llm fp8 tp1 H100_NVL throughput)"))


def test_a_kind_the_pools_gpus_have_no_engine_for_matches_nothing() -> None:
    # Both H100 engines for two GPUs are latency engines: throughput must not fall back to them.
    assert select(model({"kind": "throughput"}, gpus=2), H100) == (
        "", ("no profile of meta/llama-3.1-8b-instruct:1.3.3 matches the selection (kind throughput) on 2 GPU(s) of "
        "the pool"),
        ("profiles for this model's GPUs: "
        "1b02e4b399e8e0a5f7f49b49c4cf6b8cee33fb31854767ef386e74e8ff92762f (vllm bf16 tp2 lora); "
        f"{VLLM_TP2} (vllm bf16 tp2); "
        "48696b63c4821ae61e3dae479a1a822f1d2aa4cc8d02fae64a59f1d88c487304 (tensorrt_llm bf16 tp2 lora); "
        "8c27f77dab1986e76b524c755fa5a809f8882517b503e76bfcf8d42b991adc89 (tensorrt_llm bf16 tp2 H100 latency)"))
    assert select(model({"kind": "latency", "precision": "bf16"}, gpus=2), H100)[0] == \
        "8c27f77dab1986e76b524c755fa5a809f8882517b503e76bfcf8d42b991adc89"


def test_nothing_matching_suggests_four_profiles_for_the_pools_gpus_only() -> None:
    fp8 = {"engine": "vllm", "precision": "fp8"}
    first = (f"profiles for this model's GPUs: {VLLM_TP1} (vllm bf16 tp1); "
             "3ad27031e57506f12b47d3cd74d045fe05977f0bb92e2f8c80a3240748482578 (vllm bf16 tp1 lora); "
             "3f67662fdffadc89d38abd02c2fcb3c756f6f874e6bddc6d8521383663abd5c4 (tensorrt_llm fp8 tp1 H100 throughput "
             "lora); ")
    # Without a pool an H100 NVL engine fits; on p5 (H100 SXM) it does not and the generic engine is next.
    assert select(model(fp8, gpus=1), None)[2] == first + (
        "47f45a1d55aa8a03aa64f15781e2cf28cec4ff31e67b99e59f0067bf6d2f8afc (tensorrt_llm fp8 tp1 H100_NVL throughput "
        "lora)")
    chosen, message, hint = select(model(fp8, gpus=1), H100)
    assert (chosen, message) == ("", ("no profile of meta/llama-3.1-8b-instruct:1.3.3 matches the selection (engine "
                                     "vllm precision fp8) on 1 GPU(s) of the pool"))
    assert hint == first + "7cc8597690a35aba19a3636f35e7f1c7e7dbc005fe88ce9394cad4a4adeed414 (tensorrt_llm bf16 tp1)"


def test_nothing_for_the_models_gpu_count_says_how_to_list_the_profiles() -> None:
    assert select(model({"engine": "vllm"}, gpus=3), None) == (
        "", ("no profile of meta/llama-3.1-8b-instruct:1.3.3 matches the selection (engine vllm) on 3 GPU(s) of the "
        "pool"), LIST_THEM)


def test_a_release_nimgen_does_not_know_resolves_to_nothing() -> None:
    assert select(model({"engine": "vllm"}, image="nvcr.io/nim/meta/llama-3.1-8b-instruct:9.9"), None) == (
        "", ("nimgen does not know the profiles of meta/llama-3.1-8b-instruct:9.9, so it cannot resolve the selection "
        "(engine vllm)"), "write the profile's id, from list-model-profiles on a node of the pool")


# ------------------------------------------------------------------ a selection or an id, checked


def test_a_selection_is_checked_against_the_models_own_precision() -> None:
    assert findings([model({"engine": "vllm", "precision": "bf16"}, precision="fp16", gpus=1)]) == [
        (["models", 0, "profile"], ("the profile selection runs bf16, but the model's precision (which sizes its GPU "
         "memory) is fp16"), "set precision: bf16 on the model too")]


def test_a_model_without_gpus_runs_a_one_gpu_profile() -> None:
    assert findings([model(VLLM_TP1)]) == []
    # After a model of the wrong shape (the schema's error), the next is still checked.
    assert [path for path, _, _ in findings(["junk", model(VLLM_TP2)])] == [["models", 1, "profile"]]
    assert findings([model(VLLM_TP2)]) == [
        (["models", 0, "profile"], (f"profile {VLLM_TP2[:12]}... (vllm bf16 tp2) runs on 2 GPUs, but the model has "
         "gpus: 1"), "set gpus: 2, or pick a profile for 1 GPUs")]


def test_models_of_no_listed_pool_are_checked_without_its_gpus() -> None:
    models = [model(H100_BF16_TP1, gpus=1, nodePool="nowhere"), model({"engine": "vllm"}, gpus=1, nodePool="nowhere"),
              model(VLLM_TP2, gpus=1)]
    assert [path for path, _, _ in findings(models)] == [["models", 2, "profile"]]


def test_an_unknown_id_for_a_gpu_count_no_profile_has() -> None:
    assert findings([model("b" * 64, gpus=3)]) == [
        (["models", 0, "profile"], "profile bbbbbbbbbbbb... is not a profile of meta/llama-3.1-8b-instruct:1.3.3",
         LIST_THEM)]


def test_a_pools_gpus_come_from_its_families_within_its_memory_floor() -> None:
    pools = [{"name": "l40s", "instanceFamilies": ["g6e"]},
             {"name": "big", "instanceFamilies": ["g6e", "p5"], "minGpuMemory": "80Gi"}]
    assert findings([model(H100_BF16_TP1, gpus=1, nodePool="l40s"), model(L40S_BF16_TP1, gpus=1, nodePool="big")],
                    pools) == [
        (["models", 0, "profile"], (f"profile {H100_BF16_TP1[:12]}... is built for H100, but node pool 'l40s' launches "
         "L40S"), "pick a profile built for the pool's GPUs, or a generic (vllm) one"),
        (["models", 1, "profile"], (f"profile {L40S_BF16_TP1[:12]}... is built for L40S, but node pool 'big' launches "
         "H100"), "pick a profile built for the pool's GPUs, or a generic (vllm) one")]


def test_an_a100_engine_runs_on_both_a100_sizes() -> None:
    pools = [{"name": "p4d", "instanceTypes": ["p4d.24xlarge"]}, {"name": "p4de", "instanceTypes": ["p4de.24xlarge"]}]
    assert findings([model(A100_BF16_TP1, gpus=1, nodePool="p4d"), model(A100_BF16_TP1, gpus=1, nodePool="p4de")],
                    pools) == []
    a100 = capacity.NimProfile(A100_BF16_TP1, "tensorrt_llm", "bf16", 1, 1, "A100", "throughput", False)
    assert [a100.runs_on(capacity.gpus()[name]) for name in ("A100-40GB", "A100-80GB", "H100")] == [True, True, False]


def test_a_profile_is_described_by_what_sets_it_apart() -> None:
    staged = capacity.NimProfile("f" * 64, "tensorrt_llm", "bf16", 4, 2, "H100", "latency", True)
    assert profiles._describe(staged) == f"{'f' * 64} (tensorrt_llm bf16 tp4 pp2 H100 latency lora)"
    plain = capacity.NimProfile("e" * 64, "vllm", "bf16", 2, 1, "", "", False)
    assert profiles._describe(plain, with_id=False) == "vllm bf16 tp2"


def test_the_warmup_sizes_its_disk_by_the_models_declared_parameters(tmp_path: Path) -> None:
    # An image nimgen's catalog does not know: only the declared parameter count sizes the Job's disk.
    text = VALID.replace("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", "nvcr.io/nim/acme/custom-llm:2.0.0") + \
        "    parameters: 7.0e+10\n    profile: custom\n    cacheWarmup: {}\n"
    env = load_environment(write_env(tmp_path, text), tmp_path)
    chart = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]
    # 70e9 parameters at 4 GB per billion: 280 GB, 261 GiB rounded up.
    assert chart["cacheWarmup"]["resources"]["requests"]["ephemeral-storage"] == "261Gi"


def test_an_unknown_id_suggests_four_profiles_for_the_models_gpus() -> None:
    [(_, _, hint)] = findings([model("b" * 64, gpus=1)])
    assert hint == (f"profiles for this model's GPUs: {VLLM_TP1} (vllm bf16 tp1); "
                    "3ad27031e57506f12b47d3cd74d045fe05977f0bb92e2f8c80a3240748482578 (vllm bf16 tp1 lora); "
                    "3f67662fdffadc89d38abd02c2fcb3c756f6f874e6bddc6d8521383663abd5c4 (tensorrt_llm fp8 tp1 H100 "
                    "throughput lora); "
                    "47f45a1d55aa8a03aa64f15781e2cf28cec4ff31e67b99e59f0067bf6d2f8afc (tensorrt_llm fp8 tp1 H100_NVL "
                    "throughput lora)")


def test_a_pool_of_several_gpus_names_them_all() -> None:
    [(_, message, _)] = findings([model(H100_BF16_TP1, gpus=1, nodePool="mixed")],
                                 [{"name": "mixed", "instanceFamilies": ["g6e", "g5"]}])
    assert message == f"profile {H100_BF16_TP1[:12]}... is built for H100, but node pool 'mixed' launches A10G, L40S"


def test_the_warmups_disk_is_checked_by_the_declared_parameters_where_its_pool_is_known() -> None:
    pools = [{"name": "small", "instanceFamilies": ["g5"], "diskSize": "100Gi"},
             {"name": "odd", "instanceFamilies": ["g5"], "diskSize": 300}]  # a schema error of its own
    models = [model("custom", name="custom", image="nvcr.io/nim/acme/custom-llm:2.0.0", parameters=7e10,
                    cacheWarmup={}, nodePool="small"),
              model("custom", name="unsized", image="nvcr.io/nim/acme/custom-llm:2.0.0", cacheWarmup={},
                    nodePool="small"),
              model("custom", name="lost", cacheWarmup={}, nodePool="nowhere"),
              model("custom", name="odd", cacheWarmup={}, nodePool="odd"),
              model("custom", name="huge", image="nvcr.io/nim/acme/custom-llm:2.0.0", parameters=1e11,
                    cacheWarmup={}, nodePool="default")]
    pools.append({"name": "default", "instanceFamilies": ["p5"]})  # the schema's 300Gi
    assert findings(models, pools) == [
        (["nodePools", 0, "diskSize"], ("the warm-up Job of model 'custom' needs about 261Gi of node disk for the NIM "
         "image and the model (about 4 GB per billion parameters), but node pool 'small' gives its nodes 100Gi"),
         "raise diskSize to at least 261Gi"),
        (["nodePools", 2, "diskSize"], ("the warm-up Job of model 'huge' needs about 373Gi of node disk for the NIM "
         "image and the model (about 4 GB per billion parameters), but node pool 'default' gives its nodes 300Gi"),
         "raise diskSize to at least 373Gi")]


# ------------------------------------------------------------------ the warm-up downloads what the server runs

NOT_DOWNLOADED = "which its warm-up does not download: NIM would download it again at every cold start"


def test_a_selection_resolved_on_the_pool_is_the_profile_the_warmup_must_download() -> None:
    selection = {"engine": "tensorrt_llm", "precision": "bf16"}  # one H100 engine; four without a pool
    assert findings([model(selection, gpus=1, nodePool="h100", cacheWarmup={"profiles": [VLLM_TP1]})], [H100]) == [
        (["models", 0, "cacheWarmup", "profiles"], f"model 'm' runs profile {H100_BF16_TP1}, {NOT_DOWNLOADED}",
         "add it to cacheWarmup.profiles, or leave profiles out (the warm-up then downloads the model's profile)")]


def test_every_warmup_is_checked_whatever_the_one_before() -> None:
    # An unresolved selection, a model without a warm-up, a warm-up with nothing to download.
    models = [model({"engine": "tensorrt_llm"}, gpus=1, cacheWarmup={"profiles": [VLLM_TP1]}), model("x", name="cold"),
              model("", name="empty", cacheWarmup={}),
              model(VLLM_TP1, name="last", gpus=1, cacheWarmup={"profiles": [VLLM_TP2]})]
    assert [(path, message) for path, message, _ in findings(models)][1:] == [
        (["models", 2, "cacheWarmup"], ("the warm-up of model 'empty' has no profile to download: the Job has no GPU to "
         "pick one")),
        (["models", 3, "cacheWarmup", "profiles"], f"model 'last' runs profile {VLLM_TP1}, {NOT_DOWNLOADED}")]


def test_only_a_warmup_of_several_profiles_without_a_pin_leaves_the_choice_to_nim() -> None:
    models = [model(VLLM_TP1, gpus=1, cacheWarmup={"profiles": [VLLM_TP1, VLLM_TP2]}),
              model("", name="one", cacheWarmup={"profiles": [VLLM_TP1]})]
    assert findings(models) == []
    [(path, message, _)] = findings([model("", cacheWarmup={"profiles": [VLLM_TP1, VLLM_TP2]})])
    assert (path, message) == (["models", 0, "profile"], ("the warm-up of model 'm' downloads 2 profiles, and NIM picks "
                               "one by the GPUs it finds"))
