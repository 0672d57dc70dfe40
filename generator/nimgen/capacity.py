"""GPU arithmetic: which instances a pool can launch, and whether a model's weights fit their GPUs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from nimgen.model import parse_quantity
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
    on_demand_usd: dict[str, float]  # $/hour by region; empty when the catalog has no figure
    spot_share: float | None  # assumed Spot price as a share of On-Demand, None when not estimated

    def hourly(self, region: str) -> float | None:
        """On-Demand list price in `region`, None when the catalog has none."""
        return self.on_demand_usd.get(region)

    def spot_hourly(self, region: str) -> float | None:
        """Spot estimate in `region`, None when either figure is missing."""
        price = self.hourly(region)
        return None if price is None or self.spot_share is None else price * self.spot_share

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
def gpus() -> dict[str, Gpu]:
    """The GPU models of the catalog, by name."""
    data = _catalog("gpu-instances.yaml")
    return {name: Gpu(name, spec["memoryGiB"], spec["architecture"], spec["fp8"]) for name, spec in data["gpus"].items()}


@lru_cache(maxsize=1)
def instances() -> dict[str, Instance]:
    """The GPU instance catalog, by instance type."""
    data = _catalog("gpu-instances.yaml")
    by_name = gpus()
    spot = data["spotShareEstimate"]
    return {
        name: Instance(name, by_name[spec["gpu"]], spec["gpus"], spec["vcpu"], spec["memoryGiB"],
                       dict(spec["onDemandUSD"] or {}), spot[name.split(".")[0]])
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


def parameters_of(declared: Any, repository: str) -> Any:
    """A model's parameter count: the `parameters` it declares, else its catalog entry's (None: unknown)."""
    spec = model_spec(repository)
    return declared or (spec.parameters if spec else None)


@dataclass(frozen=True)
class NimProfile:
    """One profile of a NIM release, from its model manifest."""

    id: str
    engine: str
    precision: str
    tp: int
    pp: int
    gpu: str  # "" for a generic profile (any GPU with the memory)
    kind: str  # throughput | latency | ""
    lora: bool

    @property
    def gpus(self) -> int:
        """GPUs the profile runs on."""
        return self.tp * self.pp

    def runs_on(self, gpu: Gpu) -> bool:
        """Whether a GPU of nimgen's catalog is the one the profile is built for (A100 covers both sizes)."""
        return not self.gpu or self.gpu in (gpu.name, gpu.name.split("-")[0])


@lru_cache(maxsize=1)
def nim_profiles() -> dict[str, tuple[NimProfile, ...]]:
    """Profiles by image (repository below nvcr.io/nim/ and tag), for the releases the catalog lists."""
    data = _catalog("profiles.yaml")
    return {image: tuple(NimProfile(p["id"], p["engine"], p["precision"], int(p["tp"]), int(p["pp"]), p.get("gpu", ""),
                                    p.get("profile", ""), bool(p["lora"])) for p in profiles)
            for image, profiles in data["releases"].items()}


def release_profiles(repository: str, tag: str) -> tuple[NimProfile, ...] | None:
    """The catalog's profiles of an image such as nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3.3 (None: not listed)."""
    _, _, key = repository.partition("/nim/")
    return nim_profiles().get(f"{key}:{tag}")


def gpu_memory_floor_mib(pool: dict[str, Any]) -> int | None:
    """A pool's `minGpuMemory` in MiB (the instance-gpu-memory requirement), None when unset."""
    value = pool.get("minGpuMemory")
    return None if value is None else int(parse_quantity(value)) // 2**20


def pool_instances(families: list[str], types: list[str], min_gpu_memory_mib: int | None = None) -> list[Instance]:
    """Catalog instances a pool may launch (unknown names are simply absent)."""
    catalog = instances()
    if types:
        chosen = [catalog[name] for name in types if name in catalog]
    else:
        chosen = [instance for instance in catalog.values() if instance.family in families]
    floor = (min_gpu_memory_mib or 0) / 1024
    return [instance for instance in chosen if instance.gpu.memory_gib >= floor]


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
