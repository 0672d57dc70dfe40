"""GPU arithmetic (table-driven) and the GPU-fit checks on environment files."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import VALID, run, tree_digest, write_env
from nimgen import capacity


def _gpu(name: str) -> capacity.Gpu:
    return next(i.gpu for i in capacity.instances().values() if i.gpu.name == name)


@pytest.mark.parametrize(("model", "precision", "gpus", "gpu", "fits"), [
    ("meta/llama3-8b-instruct", "bf16", 1, "A10G", True),
    ("meta/llama-3.1-70b-instruct", "bf16", 2, "A10G", False),
    ("meta/llama-3.1-70b-instruct", "fp8", 2, "H100", True),
    ("meta/llama-3.1-70b-instruct", "bf16", 4, "H100", True),
    ("meta/llama-3.1-70b-instruct", "bf16", 2, "H100", False),
    ("meta/llama-3.1-70b-instruct", "bf16", 8, "A10G", True),
    ("meta/llama-3.1-405b-instruct", "fp8", 8, "H100", True),
    ("meta/llama-3.1-405b-instruct", "bf16", 8, "H100", False),
    ("mistralai/mixtral-8x7b-instruct-v01", "bf16", 2, "A100-80GB", True),
    ("mistralai/mistral-7b-instruct-v0.3", "bf16", 1, "L4", True),
])
def test_memory_fit(model: str, precision: str, gpus: int, gpu: str, fits: bool) -> None:
    spec = capacity.models()[model]
    assert capacity.fits(spec.parameters, precision, gpus, _gpu(gpu)) is fits


def test_smallest_fit_names_the_gpu_count() -> None:
    spec = capacity.models()["meta/llama-3.1-70b-instruct"]
    assert capacity.smallest_fit(spec.parameters, "bf16", _gpu("H100"), 8) == 4
    assert capacity.smallest_fit(spec.parameters, "fp8", _gpu("H100"), 8) == 2
    huge = capacity.models()["meta/llama-3.1-405b-instruct"]
    assert capacity.smallest_fit(huge.parameters, "bf16", _gpu("L4"), 8) is None


def test_pool_instances_by_family_and_type() -> None:
    assert {i.name for i in capacity.pool_instances(["p5"], [])} == {"p5.48xlarge"}
    assert [i.name for i in capacity.pool_instances([], ["g5.12xlarge", "x9.unknown"])] == ["g5.12xlarge"]
    assert len(capacity.pool_instances(["g5", "g6", "g6e"], [])) == 24


def test_catalog_covers_the_instance_families() -> None:
    families = {i.family for i in capacity.instances().values()}
    assert families >= {"g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e", "p5en"}


POOLS = """\
  karpenter: {nodeRole: KarpenterNodeRole-nim-test, discoveryTag: nim-test}
nodePools:
  - name: a10g
    instanceFamilies: [g5]
    gpuLimit: 64
    amiVersion: v20251112
"""
SEVENTY_B = """\
  - name: big
    image: nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3
    nodePool: a10g
"""


def _env(models: str = "", pools: str = POOLS) -> str:
    return VALID.replace('  kubernetesVersion: "1.33"\n', '  kubernetesVersion: "1.33"\n' + pools) + models


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(_env(SEVENTY_B + "    gpus: 2\n"),
                 "environments/test.yaml:21:11: $.models[1].gpus: 70.6B parameters at bf16 need about 162 GiB of GPU "
                 "memory (132 GiB of weights plus KV cache and runtime), but 2 x A10G (g5.12xlarge) have 48 GiB\n"
                 "    hint: 8 x A10G would fit (gpus: 8)", id="70b-bf16-on-two-a10g"),
    pytest.param(_env(SEVENTY_B + "    gpus: 8\n    precision: fp8\n"),
                 "$.models[1].precision: fp8 needs Ada or Hopper GPUs, but node pool 'a10g' may launch A10G",
                 id="fp8-on-ampere"),
    pytest.param(_env(SEVENTY_B + "    gpus: 3\n"),
                 "$.models[1].gpus: NIM runs a model on 1, 2, 4 or 8 GPUs of one node, not 3", id="odd-gpu-count"),
    pytest.param(_env(SEVENTY_B + "    gpus: 16\n"),
                 "hint: multi-node serving (LeaderWorkerSet) is not supported by nimgen yet", id="multi-node"),
    pytest.param(_env(SEVENTY_B + "    gpus: 8\n", POOLS.replace("instanceFamilies: [g5]", "instanceTypes: [g5.12xlarge]")),
                 "$.models[1].gpus: node pool 'a10g' offers at most 4 GPUs per node (g5.12xlarge), but a replica needs 8 on one node",
                 id="too-many-gpus-for-node"),
    pytest.param(_env(SEVENTY_B + "    gpus: 8\n    precision: int4\n"),
                 "$.models[1].precision: NIM offers this model in bf16, fp8, not int4", id="precision-not-offered"),
])
def test_models_that_do_not_fit_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    env = write_env(tmp_path, text)
    before = tree_digest(tmp_path)
    result = run("render", env)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert tree_digest(tmp_path) == before


def test_fitting_models_render(tmp_path: Path) -> None:
    result = run("render", write_env(tmp_path, _env(SEVENTY_B + "    gpus: 8\n")))
    assert result.exit_code == 0, result.output


def test_unknown_model_with_declared_parameters_is_checked(tmp_path: Path) -> None:
    custom = "  - name: custom\n    image: nvcr.io/nim/acme/big-model:1.0.0\n    nodePool: a10g\n    parameters: 3e11\n"
    result = run("render", write_env(tmp_path, _env(custom)))
    assert result.exit_code == 1
    assert "300.0B parameters at bf16 need about" in result.output


def test_unknown_model_without_parameters_is_a_warning(tmp_path: Path) -> None:
    custom = "  - name: custom\n    image: nvcr.io/nim/acme/small-model:1.0.0\n    nodePool: a10g\n"
    result = run("render", write_env(tmp_path, _env(custom)))
    assert result.exit_code == 0, result.output
    assert "warning: model 'custom' is not in nimgen's catalog; its GPU memory fit is not checked" in result.output


# gpu_fit directly: each refusal with its path, message and hint (cases the mutation run found unasserted).
def _fit(model: dict[str, object], pool: dict[str, object]) -> list[tuple[list[object], str, str, bool]]:
    from nimgen.environment.poolchecks import gpu_fit

    found: list[tuple[list[object], str, str, bool]] = []
    gpu_fit({"name": "m", "image": "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", **model}, ["models", 0],
            (2, {"name": "p", **pool}),
            lambda path, message, hint="", warning=False: found.append((path, message, hint, warning)))
    return found


@pytest.mark.parametrize(("gpus", "hint"), [
    (3, "use 1, 2, 4 or 8 GPUs per replica"),
    (16, "multi-node serving (LeaderWorkerSet) is not supported by nimgen yet"),
])
def test_gpu_counts_nim_cannot_run(gpus: int, hint: str) -> None:
    assert _fit({"gpus": gpus}, {"instanceFamilies": ["g5"]}) == [
        (["models", 0, "gpus"], f"NIM runs a model on 1, 2, 4 or 8 GPUs of one node, not {gpus}", hint, False)]


def test_gpu_fit_defaults_to_one_gpu_and_the_model_path() -> None:
    assert _fit({}, {"instanceTypes": ["g5.xlarge"]}) == []  # one A10G holds an 8B model
    big = {"image": "nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3"}
    [(path, message, _, _)] = _fit(big, {"instanceTypes": ["g5.xlarge"]})
    assert path == ["models", 0] and "but 1 x A10G" in message  # no `gpus` key: the finding is on the model


def test_a_pool_of_unknown_instances_is_a_warning_on_its_name() -> None:
    assert _fit({}, {"instanceTypes": ["x9.mega"]}) == [
        (["nodePools", 2, "name"], ("node pool 'p' launches no instance nimgen knows; GPU fit of its models is not "
         "checked"), "see generator/nimgen/catalog/gpu-instances.yaml for the known instances", True)]


def test_a_models_parameters_are_its_own_else_the_catalogs() -> None:
    llama = "nvcr.io/nim/meta/llama3-8b-instruct"
    catalog = capacity.model_spec(llama)
    assert catalog is not None
    assert capacity.parameters_of(None, llama) == catalog.parameters
    assert capacity.parameters_of(7.5e9, llama) == 7.5e9  # what the environment declares wins
    assert capacity.parameters_of(None, "registry.example.com/nim/acme/unknown-model") is None
    assert capacity.parameters_of(3e9, "registry.example.com/nim/acme/unknown-model") == 3e9
