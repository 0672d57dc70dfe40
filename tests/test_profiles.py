"""The profile a model runs is the one its warm-up downloads, and the warm-up runs where the model will."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment
from helpers import VALID, refused, run, write_env
from nimgen import helm
from nimgen.components import profiles
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.yamlio import load_all_plain

PROJECT = Path(__file__).resolve().parents[1]
MODEL_CHART = PROJECT / "generator" / "nimgen" / "charts" / "nim-llm"
ONE = "8835c31752fbc67ef658b20a9f78e056914fdef0660206d82f252d62fd96064d"
OTHER = "a" * 64
H100_BF16_TP8 = "3195a1b385c57c3cae2113f63a37c6ad5aacfd17915922b6a3abf109aa210606"
SHARED = "storage:\n  modelCache:\n    efs: {fileSystemId: fs-0123456789abcdef0}\n"
POOL = ("  karpenter: {nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}\nnodePools:\n  - name: a10g\n"
        "    instanceFamilies: [g5]\n    gpuLimit: 8\n    amiVersion: v20251112\n")


def environment(model_lines: str, *, disk: str = "") -> str:
    anchor = '  kubernetesVersion: "1.33"\n'
    pool = POOL + (f"    diskSize: {disk}\n" if disk else "")
    text = VALID.replace(anchor, anchor + pool).replace("models:\n", SHARED + "models:\n")
    return text + model_lines


def values(tmp_path: Path, text: str) -> dict[str, Any]:
    env = load_environment(write_env(tmp_path, text), tmp_path)
    result: dict[str, Any] = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]
    return result


def rendered(engine: helm.Engine, chart_values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    files = engine.template(MODEL_CHART, chart_values, release="llama3-8b-instruct", namespace="nim",
                            kube_version="1.33")
    docs = [d for path, body in files.items() if path.endswith(".yaml") for d in load_all_plain(body) if d]
    return {d["kind"]: d for d in docs if d["kind"] in ("Job", "StatefulSet", "Deployment")}


def server_env(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    workload = objects.get("StatefulSet") or objects["Deployment"]
    return {e["name"]: e.get("value") for e in workload["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_the_warmup_downloads_the_profile_the_server_runs(tmp_path: Path, helm_engine: helm.Engine) -> None:
    chart_values = values(tmp_path, environment(f"    profile: {ONE}\n    cacheWarmup: {{}}\n"))
    assert chart_values["model"]["profile"] == ONE
    assert chart_values["cacheWarmup"]["profiles"] == [ONE]
    objects = rendered(helm_engine, chart_values)
    assert server_env(objects)["NIM_MODEL_PROFILE"] == ONE
    job = objects["Job"]["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["--profiles", ONE]
    # On a node of the model's pool (which holds the image it needs next), with the disk the download needs.
    assert job["nodeSelector"] == {"nimgen.io/node-pool": "a10g"}
    assert job["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert job["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "30Gi"},
                                                 "limits": {"memory": "2Gi"}}


def test_a_single_warmup_profile_pins_the_server(tmp_path: Path, helm_engine: helm.Engine) -> None:
    chart_values = values(tmp_path, environment(f"    cacheWarmup: {{profiles: [{ONE}]}}\n"))
    assert chart_values["model"]["profile"] == ONE
    assert server_env(rendered(helm_engine, chart_values))["NIM_MODEL_PROFILE"] == ONE


def test_several_warmup_profiles_leave_the_choice_to_nim(tmp_path: Path, helm_engine: helm.Engine) -> None:
    text = environment(f"    cacheWarmup: {{profiles: [{ONE}, {OTHER}]}}\n")
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0, result.output
    assert ("$.models[0].profile: warning: the warm-up of model 'llama3-8b-instruct' downloads 2 profiles, and NIM "
            "picks one by the GPUs it finds\n    hint: set profile to the one the server should run, unless the pool "
            "mixes GPU types on purpose") in result.output
    chart_values = values(tmp_path / "again", text)
    assert chart_values["model"]["profile"] == ""
    assert "NIM_MODEL_PROFILE" not in server_env(rendered(helm_engine, chart_values))


def test_a_profile_without_warmup_only_pins_the_server(tmp_path: Path, helm_engine: helm.Engine) -> None:
    chart_values = values(tmp_path, environment(f"    profile: {ONE}\n"))
    assert chart_values["cacheWarmup"] == {"enabled": False}
    objects = rendered(helm_engine, chart_values)
    assert "Job" not in objects and server_env(objects)["NIM_MODEL_PROFILE"] == ONE


def test_no_profile_no_pin(tmp_path: Path, helm_engine: helm.Engine) -> None:
    chart_values = values(tmp_path, environment(""))
    assert "NIM_MODEL_PROFILE" not in server_env(rendered(helm_engine, chart_values))


def test_a_warmup_with_nothing_to_download(tmp_path: Path) -> None:
    assert ("$.models[0].cacheWarmup: the warm-up of model 'llama3-8b-instruct' has no profile to download: the Job "
            "has no GPU to pick one\n    hint: set the model's profile (an id or name from list-model-profiles on a "
            "node of the pool), or cacheWarmup.profiles") in refused(tmp_path, environment("    cacheWarmup: {}\n"))


def test_a_server_profile_the_warmup_does_not_download(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(f"    profile: {OTHER}\n    cacheWarmup: {{profiles: [{ONE}]}}\n"))
    assert (f"$.models[0].cacheWarmup.profiles: model 'llama3-8b-instruct' runs profile {OTHER}, which its warm-up "
            "does not download: NIM would download it again at every cold start\n    hint: add it to "
            "cacheWarmup.profiles, or leave profiles out (the warm-up then downloads the model's profile)") in output


def test_the_profile_is_set_by_its_own_field_only(tmp_path: Path) -> None:
    output = refused(tmp_path, environment(f"    env: {{NIM_MODEL_PROFILE: {ONE}}}\n"))
    assert "$.models[0].env.NIM_MODEL_PROFILE:" in output
    assert "set profile instead (the warm-up then downloads the same one)" in output


def test_the_chart_refuses_the_profile_in_env(helm_engine: helm.Engine) -> None:
    with pytest.raises(helm.HelmError, match="env may not set NIM_MODEL_PROFILE"):
        helm_engine.template(MODEL_CHART, {"image": {"tag": "1.0.3"}, "env": {"NIM_MODEL_PROFILE": ONE}},
                             release="llm", namespace="nim", kube_version="1.33")


@pytest.mark.parametrize(("disk", "refused_"), [("29Gi", True), ("30Gi", False)])
def test_the_pool_disk_holds_the_warmup(tmp_path: Path, disk: str, refused_: bool) -> None:
    result = run("render", write_env(tmp_path, environment(f"    profile: {ONE}\n    cacheWarmup: {{}}\n", disk=disk)))
    assert (result.exit_code == 1) is refused_, result.output
    assert (f"$.nodePools[0].diskSize: the warm-up Job of model 'llama3-8b-instruct' needs about 30Gi of node disk for "
            f"the NIM image and the model (about 4 GB per billion parameters), but node pool 'a10g' gives its nodes "
            f"{disk}\n    hint: raise diskSize to at least 30Gi" in result.output) is refused_


def test_disk_follows_nvidias_rule() -> None:
    # 4 GB per billion parameters (NIM for LLMs support matrix), in GiB, rounded up.
    assert (profiles.disk_gib(8.03e9), profiles.disk_gib(70.6e9), profiles.disk_gib(None)) == (30, 264, None)


def test_prod_pins_the_70b_profile_and_warms_it_on_h100(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    env = example_environment("prod")
    big = next(m for m in env.models if m.name == "llama-3-1-70b-instruct")
    assert (big.profile, big.warmup_profiles) == (H100_BF16_TP8, (H100_BF16_TP8,))
    source = applications.by_name(env)[big.name]["spec"]["source"]["helm"]
    files = helm_engine.template(rendered_repo / "charts" / "nim-llm", source["valuesObject"],
                                 release=source["releaseName"], namespace="nim", kube_version="1.33")
    [job] = [d for path, body in files.items() if path.endswith("cache-warmup-job.yaml") for d in load_all_plain(body) if d]
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nimgen.io/node-pool": "h100"}
    assert pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] == "264Gi"
    assert job["spec"]["activeDeadlineSeconds"] == 7200


# ------------------------------------------------------------------ profiles checked against the release's manifest

H100_POOL = ("  karpenter: {nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}\nnodePools:\n  - name: h100\n"
             "    instanceTypes: [p5.48xlarge]\n    gpuLimit: 8\n    amiVersion: v20251112\n")
H100_FP8_TP4 = "0462612f0f2de63b2d423bc3863030835c0fbdbc13b531868670cc416e030029"
VLLM_BF16_TP8 = "802e0f92cfaee19de7da371e545529b2241dd321fdc95b60b21a3f8d19c220e4"


def big_model(profile: str, *, pool: str = H100_POOL, image: str = "nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3",
              gpus: int = 8) -> str:
    anchor = '  kubernetesVersion: "1.33"\n'
    text = VALID.replace(anchor, anchor + pool).replace("nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", image)
    text = text.replace("nodePool: a10g", "nodePool: h100" if "h100" in pool else "nodePool: a10g")
    return text + f"    gpus: {gpus}\n    resources: {{cpu: \"32\", memory: 256Gi}}\n    profile: {profile}\n"


@pytest.mark.parametrize("profile", [H100_BF16_TP8, VLLM_BF16_TP8, "tensorrt_llm-h100-bf16-tp8-latency"],
                         ids=["h100-profile", "generic-profile", "a-name-nim-resolves"])
def test_a_profile_of_the_release_for_the_models_gpus(tmp_path: Path, profile: str) -> None:
    result = run("render", write_env(tmp_path, big_model(profile)))
    assert result.exit_code == 0, result.output


def test_a_profile_id_the_release_does_not_have(tmp_path: Path) -> None:
    output = refused(tmp_path, big_model("b" * 64))
    assert ("$.models[0].profile: profile bbbbbbbbbbbb... is not a profile of meta/llama-3.1-70b-instruct:1.3.3\n"
            f"    hint: profiles for this model's GPUs: {H100_BF16_TP8} (tensorrt_llm bf16 tp8 H100 latency); "
            "7bd243cbea7b06fb8059002c07655958f3dfe663b8acdd3d393f7ba77711c998 (tensorrt_llm bf16 tp8); "
            f"{VLLM_BF16_TP8} (vllm bf16 tp8); "
            "a29dc20fff4ad67746205295ccb4af9e010f8f31207235c75e27786fb834e574 (tensorrt_llm fp8 tp8 H100 latency)"
            ) in output


def test_a_profile_for_another_gpu_count(tmp_path: Path) -> None:
    output = refused(tmp_path, big_model(H100_FP8_TP4))
    assert ("$.models[0].profile: profile 0462612f0f2d... (tensorrt_llm fp8 tp4 H100 throughput) runs on 4 GPUs, but "
            "the model has gpus: 8\n    hint: set gpus: 4, or pick a profile for 8 GPUs") in output


def test_a_profile_built_for_another_gpu(tmp_path: Path) -> None:
    l40s = H100_POOL.replace("h100", "l40s").replace("p5.48xlarge", "g6e.48xlarge")
    output = refused(tmp_path, big_model(H100_BF16_TP8, pool=l40s).replace("nodePool: a10g", "nodePool: l40s"))
    assert ("$.models[0].profile: profile 3195a1b385c5... is built for H100, but node pool 'l40s' launches L40S\n"
            "    hint: pick a profile built for the pool's GPUs, or a generic (vllm) one") in output


def test_a_release_nimgen_does_not_know_is_not_checked(tmp_path: Path) -> None:
    text = big_model("b" * 64, image="nvcr.io/nim/meta/llama-3.1-70b-instruct:9.9.9")
    assert run("render", write_env(tmp_path, text)).exit_code == 0


# ------------------------------------------------------------------ a selection resolved against the release's manifest

SMALL_H100 = "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3"
H100_BF16_TP1 = "ed4af8b6563348d37f72bfd013be44573a1c88f384ef8fb3eaf0c69e4f235c20"
H100_FP8_TP8 = "a29dc20fff4ad67746205295ccb4af9e010f8f31207235c75e27786fb834e574"


def selected(tmp_path: Path, text: str) -> Any:
    """The model the environment loads to: its profile is the id the selection resolved to."""
    return load_environment(write_env(tmp_path, text), tmp_path).models[0]


@pytest.mark.parametrize(("selection", "expected"), [
    # A pre-built engine for the pool's GPU first: not the buildable generic TensorRT-LLM profile.
    ("{engine: tensorrt_llm, precision: bf16}", H100_BF16_TP8),
    ("{precision: bf16, tensorParallel: 8}", H100_BF16_TP8),
    ("{engine: vllm}", VLLM_BF16_TP8),
    ("{engine: tensorrt_llm, kind: latency, precision: bf16}", H100_BF16_TP8),
])
def test_a_selection_resolves_to_the_one_matching_profile(tmp_path: Path, selection: str, expected: str) -> None:
    model = selected(tmp_path, big_model(selection))
    assert model.profile == expected


def test_a_selection_is_pinned_and_warmed_like_an_id(tmp_path: Path, helm_engine: helm.Engine) -> None:
    text = big_model("{engine: vllm}") + "    cacheWarmup: {}\n"
    env = load_environment(write_env(tmp_path, text), tmp_path)
    chart_values = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]
    assert chart_values["model"]["profile"] == VLLM_BF16_TP8
    assert chart_values["cacheWarmup"]["profiles"] == [VLLM_BF16_TP8]


def test_an_ambiguous_selection_lists_the_candidates(tmp_path: Path) -> None:
    text = big_model("{engine: tensorrt_llm}", image=SMALL_H100, gpus=1)
    output = refused(tmp_path, text)
    assert ("$.models[0].profile: 2 profiles of meta/llama-3.1-8b-instruct:1.3.3 match the selection (engine "
            "tensorrt_llm) for this model's GPUs\n    hint: narrow it (kind: throughput or latency, tensorParallel, "
            f"precision), or write one id: {H100_BF16_TP1} (tensorrt_llm bf16 tp1 H100 throughput); "
            "f8b5f71dd66c36c70deac7927cbd98b1c4f78caf1abf01f768be7118e1daa278 (tensorrt_llm fp8 tp1 H100 throughput)"
            ) in output
    assert selected(tmp_path, big_model("{engine: tensorrt_llm, precision: bf16}", image=SMALL_H100,
                                        gpus=1)).profile == H100_BF16_TP1


def test_a_selection_nothing_matches(tmp_path: Path) -> None:
    output = refused(tmp_path, big_model("{engine: vllm, precision: fp8}"))
    assert ("$.models[0].profile: no profile of meta/llama-3.1-70b-instruct:1.3.3 matches the selection (engine vllm "
            "precision fp8) on 8 GPU(s) of the pool\n    hint: profiles for this model's GPUs: "
            f"{H100_BF16_TP8} (tensorrt_llm bf16 tp8 H100 latency)") in output


def test_a_selection_for_another_tensor_parallel_size_than_the_gpus(tmp_path: Path) -> None:
    output = refused(tmp_path, big_model("{engine: vllm, tensorParallel: 4}"))
    assert "no profile of meta/llama-3.1-70b-instruct:1.3.3 matches the selection (engine vllm tensorParallel 4)" \
        in output


def test_a_selection_needs_a_release_nimgen_knows(tmp_path: Path) -> None:
    output = refused(tmp_path, big_model("{engine: vllm}", image="nvcr.io/nim/meta/llama-3.1-70b-instruct:9.9.9"))
    assert ("$.models[0].profile: nimgen does not know the profiles of meta/llama-3.1-70b-instruct:9.9.9, so it "
            "cannot resolve the selection (engine vllm)\n    hint: write the profile's id, from list-model-profiles on "
            "a node of the pool") in output


def test_a_selection_of_another_precision_than_the_models(tmp_path: Path) -> None:
    text = big_model("{engine: tensorrt_llm, precision: fp8}")
    output = refused(tmp_path, text)
    assert ("$.models[0].profile: the profile selection runs fp8, but the model's precision (which sizes its GPU "
            "memory) is bf16\n    hint: set precision: fp8 on the model too") in output
    assert selected(tmp_path, text + "    precision: fp8\n").profile == H100_FP8_TP8


@pytest.mark.parametrize(("selection", "message"), [
    ("{}", "$.models[0].profile"),
    ("{engine: onnx}", "$.models[0].profile.engine"),
    ("{gpu: H100}", "$.models[0].profile.gpu: unknown key 'gpu'"),
    ("{tensorParallel: 0}", "$.models[0].profile.tensorParallel"),
])
def test_a_malformed_selection_is_a_schema_error(tmp_path: Path, selection: str, message: str) -> None:
    assert message in refused(tmp_path, big_model(selection))
