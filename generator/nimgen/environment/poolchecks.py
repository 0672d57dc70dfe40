"""Cross-field checks of the GPU node pools: names, AMI pins, capacity, and each model's GPU fit on its pool."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nimgen import amis, capacity
from nimgen.errors import shorten as _s  # checks also meet schema-invalid (any-length) values
from nimgen.imageref import ImageRef

_AMI_VERSION = {"al2023": re.compile(r"v[0-9]{8}"), "bottlerocket": re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+")}
_KUBERNETES = re.compile(r"1\.[0-9]+")


class Guard:
    """Runs the checks of one document, which may still hold schema errors (reported separately): a check that
    meets a value of the wrong shape stops there instead of failing, and is remembered, because on a document
    the schema accepts the same stop is a check that did not run."""

    def __init__(self) -> None:
        self.stopped: list[tuple[list[Any], str]] = []

    def __call__(self, check: Callable[..., None], *args: Any, at: list[Any] | None = None) -> None:
        try:
            check(*args)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            name = f"{check.__module__.rpartition('.')[2]}.{check.__name__.removeprefix('_')}"
            self.stopped.append((at or [], f"{name}: {type(error).__name__} {_s(str(error))}"))


def pool_problems(document: Any, pools: list[Any], add: Any, guard: Guard) -> set[str]:
    """Check the node pools; return the names models may use."""
    names: dict[str, int] = {}
    if pools and "karpenter" not in (document.get("cluster") or {}):
        add(["cluster"], "nodePools needs cluster.karpenter (nodeRole and discoveryTag) for the EC2NodeClasses",
            "add cluster.karpenter: {nodeRole: <IAM role name>, discoveryTag: <karpenter.sh/discovery tag value>}")
    for index, pool in enumerate(pools):
        if isinstance(pool, dict):
            guard(_pool, document, pool, ["nodePools", index], add, names, index, at=["nodePools", index])
    return set(names)


def _pool(document: Any, pool: Any, base: list[Any], add: Any, names: dict[str, int], index: int) -> None:
    name = pool["name"]
    if name in names:
        add([*base, "name"], f"duplicate node pool name '{_s(name)}' (also nodePools[{names[name]}])")
    names.setdefault(name, index)
    if bool(pool.get("instanceFamilies")) == bool(pool.get("instanceTypes")):
        add(base, f"node pool '{_s(name)}' needs exactly one of instanceFamilies or instanceTypes",
            "instanceFamilies: [g5] lets Karpenter pick any size; instanceTypes: [g5.12xlarge] pins sizes")
    floor = capacity.gpu_memory_floor_mib(pool)
    known = capacity.pool_instances(pool.get("instanceFamilies") or [], pool.get("instanceTypes") or [])
    if floor is not None and known and not capacity.pool_instances(
            pool.get("instanceFamilies") or [], pool.get("instanceTypes") or [], floor):
        largest = max(known, key=lambda instance: instance.gpu.memory_gib)
        add([*base, "minGpuMemory"], f"node pool '{_s(name)}' has no instance with {_s(pool['minGpuMemory'])} per GPU "
                                     f"(largest: {largest.gpu.name}, {largest.gpu.memory_gib:g} GiB)",
            "lower minGpuMemory, or add instance families with larger GPUs")
    version = pool["amiVersion"]
    family = pool.get("amiFamily", "al2023")
    if version == "latest":
        if document.get("production") is True:
            add([*base, "amiVersion"], f"node pool '{_s(name)}' uses amiVersion latest in a production environment",
                "every new AMI release would drift and replace every GPU node (restarting every model); "
                "pin a release and upgrade it in a reviewed change")
    elif not _AMI_VERSION[family].fullmatch(version):
        example = "v20251112" if family == "al2023" else "v1.26.2"
        add([*base, "amiVersion"], f"'{_s(version)}' is not a {family} AMI release", f"write it like {example}")
    else:
        kubernetes = document["cluster"]["kubernetesVersion"]
        if isinstance(kubernetes, str) and _KUBERNETES.fullmatch(kubernetes):
            _ami_release(name, family, version, kubernetes, [*base, "amiVersion"], add)


def _ami_release(name: str, family: str, version: str, kubernetes: str, path: list[Any], add: Any) -> None:
    """A pinned release must ship the pool's image for the cluster's Kubernetes version (nimgen pools are GPU
    pools: the NVIDIA variant); Karpenter finds no AMI otherwise and the EC2NodeClass never becomes Ready."""
    found = amis.lookup(family, version, kubernetes, gpu=True)
    if found.answer is amis.Answer.OK:
        return
    image = amis.image_name(family, kubernetes, gpu=True)
    nearest = amis.nearest_pins(family, version, kubernetes, gpu=True)
    pins = _pins_hint(family, nearest, image)
    pool = f"node pool '{_s(name)}' pins {family} {version}"
    if found.answer is amis.Answer.UNKNOWN:
        confirm = f"check its release notes for {image} and add it to {amis.CATALOG_PATH}"
        add(path, f"nimgen's AMI catalog (dated {amis.catalog().dated}) does not list {family} {version}; "
                  f"whether it ships {image} is not checked",
            f"{confirm}, or {pins}" if nearest else confirm, warning=True)
    elif found.answer is amis.Answer.NO_SUCH_RELEASE:
        known = amis.catalog().families[family]
        add(path, f"{pool}, which is not a {family} release (nimgen's AMI catalog lists every one from "
                  f"{known.oldest.version} to {known.newest.version})", pins)
    elif found.answer is amis.Answer.NO_NVIDIA:
        add(path, f"{pool}, which has a Kubernetes {kubernetes} image but no NVIDIA variant ({image}); "
                  f"Karpenter would find no AMI for the pool's GPU instances", pins)
    else:
        add(path, f"{pool}, which ships no {image} image; Karpenter would find no AMI for Kubernetes {kubernetes} "
                  f"and the EC2NodeClass would never become Ready", pins)


def _pins_hint(family: str, pins: amis.Pins | None, image: str) -> str:
    if pins is None:
        return (f"no {family} release in nimgen's AMI catalog ships {image}; pin a newer release once it is "
                f"added to {amis.CATALOG_PATH}, or use the other amiFamily")
    if pins.newest:
        return f"pin {pins.family} {pins.first} or later (ships {image}; newest in nimgen's AMI catalog: {pins.last})"
    return f"pin {pins.family} {pins.first} to {pins.last} (the releases that ship {image})"


def pool_exists(model: Any, base: list[Any], add: Any, pool_names: set[str] | None) -> None:
    if pool_names is None or not model.get("nodePool") or model["nodePool"] in pool_names:
        return
    known = _s(", ".join(sorted(pool_names)) or "none")
    # The layered model has the key even when modelDefaults sets it.
    add([*base, "nodePool"],
        f"node pool '{_s(model['nodePool'])}' is not defined in nodePools (defined: {known})",
        "add the pool under nodePools or pick a defined one")


def pool_capacity(pools: list[Any], models: list[Any], add: Any) -> None:
    """GPUs the models of each pool may hold at full scale, against the pool's gpuLimit."""
    demand: dict[str, list[tuple[str, int, int]]] = {}
    for model in models:
        if isinstance(model, dict) and isinstance(model.get("nodePool"), str):
            # A surge rollout's spare replicas hold GPUs too, on top of a model at full scale.
            replicas = (model.get("replicas") or {}).get("max", 1) + (model.get("rollout") or {}).get("surge", 0)
            demand.setdefault(model["nodePool"], []).append((model["name"], int(replicas), int(model.get("gpus", 1))))
    for index, pool in enumerate(pools):
        if not isinstance(pool, dict) or not isinstance(pool.get("gpuLimit"), int):
            continue
        users = demand.get(pool["name"], [])
        if not users:
            add(["nodePools", index, "name"], f"no model uses node pool '{_s(pool['name'])}'",
                "remove the pool, or point a model's nodePool at it", warning=True)
            continue
        needed = sum(replicas * gpus for _, replicas, gpus in users)
        if needed > pool["gpuLimit"]:
            detail = _s(", ".join(f"{name}: {replicas} x {gpus}" for name, replicas, gpus in users), 400)
            add(["nodePools", index, "gpuLimit"],
                f"models on node pool '{_s(pool['name'])}' may need {needed} GPUs at replicas.max plus rollout surge "
                f"({detail}) "
                f"but gpuLimit is {pool['gpuLimit']}",
                f"raise gpuLimit to at least {needed}, or lower replicas.max (or rollout.surge) of those models")


def gpu_fit(model: Any, base: list[Any], pool_entry: tuple[int, Any], add: Any) -> None:
    """GPU count, per-node fit, precision support and memory fit of a model on its pool."""
    pool_index, pool = pool_entry
    gpus = int(model.get("gpus", 1))
    gpus_path = [*base, "gpus"] if "gpus" in model else base
    if gpus not in capacity.SINGLE_NODE_GPU_COUNTS:
        hint = ("multi-node serving (LeaderWorkerSet) is not supported by nimgen yet" if gpus % 8 == 0
                else "use 1, 2, 4 or 8 GPUs per replica")
        add(gpus_path, f"NIM runs a model on 1, 2, 4 or 8 GPUs of one node, not {gpus}", hint)
        return
    candidates = capacity.pool_instances(pool.get("instanceFamilies") or [], pool.get("instanceTypes") or [],
                                         capacity.gpu_memory_floor_mib(pool))
    if not candidates:
        add(["nodePools", pool_index, "name"],
            f"node pool '{_s(pool['name'])}' launches no instance nimgen knows; GPU fit of its models is not checked",
            "see generator/nimgen/catalog/gpu-instances.yaml for the known instances", warning=True)
        return
    placeable = [instance for instance in candidates if instance.gpus >= gpus]
    if not placeable:
        largest = max(candidates, key=lambda instance: instance.gpus)
        add(gpus_path, f"node pool '{_s(pool['name'])}' offers at most {largest.gpus} GPUs per node ({largest.name}), "
                       f"but a replica needs {gpus} on one node",
            "lower gpus, or add larger instance types to the pool")
        return
    precision = model.get("precision", "bf16")
    # Only a precision the model (or modelDefaults) sets can be refused: the default, bf16, is always offered.
    precision_path = [*base, "precision"]
    no_fp8 = sorted({instance.gpu.name for instance in placeable if not instance.gpu.fp8})
    if precision == "fp8" and no_fp8:
        add(precision_path, f"fp8 needs Ada or Hopper GPUs, but node pool '{_s(pool['name'])}' may launch {', '.join(no_fp8)}",
            "use bf16, or limit the pool to L4, L40S, H100 or H200 instances")
    spec = capacity.model_spec(ImageRef.parse(model["image"]).repository)
    if spec and precision not in spec.precisions:
        add(precision_path, f"NIM offers this model in {', '.join(spec.precisions)}, not {precision}",
            f"set precision to one of {', '.join(spec.precisions)}")
    parameters = capacity.parameters_of(model.get("parameters"), ImageRef.parse(model["image"]).repository)
    if parameters is None:
        add(base, f"model '{_s(model['name'])}' is not in nimgen's catalog; its GPU memory fit is not checked",
            "declare parameters (e.g. parameters: 8e9) and precision on the model", warning=True)
        return
    smallest = min(placeable, key=lambda instance: instance.gpu.memory_gib)
    if not capacity.fits(parameters, precision, gpus, smallest.gpu):
        need = capacity.needed_gib(parameters, precision, gpus)
        weights = capacity.weights_gib(parameters, precision)
        best = capacity.smallest_fit(parameters, precision, smallest.gpu, max(i.gpus for i in candidates))
        hint = (f"{best} x {smallest.gpu.name} would fit (gpus: {best})" if best
                else f"no count of {smallest.gpu.name} on one node fits; use larger GPUs or a smaller precision")
        add(gpus_path,
            f"{parameters / 1e9:.1f}B parameters at {precision} need about {need:.0f} GiB of GPU memory "
            f"({weights:.0f} GiB of weights plus KV cache and runtime), but {gpus} x {smallest.gpu.name} "
            f"({smallest.name}) have {gpus * smallest.gpu.memory_gib:.0f} GiB",
            hint)
