"""GPU arithmetic: which instances a pool can launch, and whether a model's weights fit their GPUs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from nimgen.yamlio import load_plain

BYTES_PER_PARAMETER = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
# Room beyond the weights: KV cache for a useful batch and context (a fifth of the weights),
# plus CUDA context, activations and engine workspace on every GPU.
KV_CACHE_SHARE = 0.2
RUNTIME_GIB_PER_GPU = 2.0
# Tensor-parallel sizes NIM profiles ship for one node.
SINGLE_NODE_GPU_COUNTS = (1, 2, 4, 8)
GIB = 2**30


@dataclass(frozen=True)
class Gpu:
    """One GPU model."""

    name: str
    memory_gib: float
    architecture: str
    fp8: bool


@dataclass(frozen=True)
class Instance:
    """One EC2 GPU instance type."""

    name: str
    gpu: Gpu
    gpus: int
    vcpu: int
    memory_gib: int

    @property
    def family(self) -> str:
        """Instance family, e.g. g5."""
        return self.name.split(".")[0]


@dataclass(frozen=True)
class ModelSpec:
    """Parameter count and offered precisions of a known NIM model."""

    parameters: float
    precisions: tuple[str, ...]


def _catalog(name: str) -> dict[str, Any]:
    data: dict[str, Any] = load_plain(resources.files("nimgen").joinpath("catalog", name).read_text(encoding="utf-8"))
    return data


@lru_cache(maxsize=1)
def instances() -> dict[str, Instance]:
    """The GPU instance catalog, by instance type."""
    data = _catalog("gpu-instances.yaml")
    gpus = {name: Gpu(name, spec["memoryGiB"], spec["architecture"], spec["fp8"]) for name, spec in data["gpus"].items()}
    return {
        name: Instance(name, gpus[spec["gpu"]], spec["gpus"], spec["vcpu"], spec["memoryGiB"])
        for name, spec in data["instances"].items()
    }


@lru_cache(maxsize=1)
def models() -> dict[str, ModelSpec]:
    """The model catalog, by image repository below nvcr.io/nim/."""
    data = _catalog("models.yaml")
    return {name: ModelSpec(float(spec["parameters"]), tuple(spec["precisions"])) for name, spec in data["models"].items()}


def model_spec(repository: str) -> ModelSpec | None:
    """Catalog entry for an image repository such as nvcr.io/nim/meta/llama3-8b-instruct."""
    _, _, key = repository.partition("/nim/")
    return models().get(key)


def pool_instances(families: list[str], types: list[str]) -> list[Instance]:
    """Catalog instances a pool may launch (unknown names are simply absent)."""
    catalog = instances()
    if types:
        return [catalog[name] for name in types if name in catalog]
    return [instance for instance in catalog.values() if instance.family in families]


def weights_gib(parameters: float, precision: str) -> float:
    """Memory the weights take on the GPUs."""
    return parameters * BYTES_PER_PARAMETER[precision] / GIB


def needed_gib(parameters: float, precision: str, gpus: int) -> float:
    """GPU memory a replica needs in total: weights, KV cache share, per-GPU runtime."""
    return weights_gib(parameters, precision) * (1 + KV_CACHE_SHARE) + RUNTIME_GIB_PER_GPU * gpus


def fits(parameters: float, precision: str, gpus: int, gpu: Gpu) -> bool:
    """Whether a replica on `gpus` of `gpu` holds the model."""
    return needed_gib(parameters, precision, gpus) <= gpus * gpu.memory_gib


def smallest_fit(parameters: float, precision: str, gpu: Gpu, max_gpus: int) -> int | None:
    """Fewest GPUs of this kind (a NIM tensor-parallel size, at most `max_gpus`) that hold the model."""
    for count in SINGLE_NODE_GPU_COUNTS:
        if count <= max_gpus and fits(parameters, precision, count, gpu):
            return count
    return None
