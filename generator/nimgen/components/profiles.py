"""The NIM profile a model runs, and the warm-up Job that downloads it where the model will run.

A NIM picks a profile (engine, precision, tensor parallelism) from the GPUs it finds, unless
NIM_MODEL_PROFILE pins one. The warm-up Job has no GPU, so it downloads named profiles; if the server
then picks another one, it downloads again at every cold start and the warm-up was wasted. So the
profile the Job downloads is the one the server is pinned to, and the Job runs on a node of the
model's pool: a system node may not have the disk for a NIM image, and the pool's node is the one the
model's pods land on next (with the image already pulled).
"""

from __future__ import annotations

import math
import re
from typing import Any

from nimgen import capacity
from nimgen.errors import shorten as _s
from nimgen.imageref import ImageRef, InvalidReference
from nimgen.model import Environment, Model, parse_quantity

# NVIDIA's sizing rule for NIM for LLMs (1.x support matrix, "Disk Space"): the runtime and a model
# take about 4 GB per billion parameters.
DISK_GB_PER_BILLION_PARAMETERS = 4
POOL_LABEL = "nimgen.io/node-pool"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
DEFAULT_DISK = "300Gi"  # the schema's default diskSize of a pool


def disk_gib(parameters: float | None) -> int | None:
    """Node disk a NIM image plus one profile of a model this size needs, in GiB (None: size unknown)."""
    if parameters is None:
        return None
    return math.ceil(parameters * DISK_GB_PER_BILLION_PARAMETERS / capacity.GIB)


def served_profile(model: Model) -> str:
    """The profile the server is pinned to: the model's own, else the warm-up's only one ("": NIM picks)."""
    if model.profile:
        return model.profile
    return model.warmup_profiles[0] if len(model.warmup_profiles) == 1 else ""


def _parameters(model: Model) -> float | None:
    parameters: float | None = capacity.parameters_of(model.parameters, model.image.repository)
    return parameters


def warmup_values(env: Environment, model: Model) -> dict[str, Any]:
    """The nim-llm chart's cacheWarmup block: the profiles, and a node of the model's pool with the disk they need."""
    if not model.warmup_profiles:
        return {"enabled": False}
    requests: dict[str, str] = {"cpu": "1", "memory": "2Gi"}
    disk = disk_gib(_parameters(model))
    if disk is not None:
        requests["ephemeral-storage"] = f"{disk}Gi"
    values: dict[str, Any] = {
        "enabled": True, "profiles": list(model.warmup_profiles),
        "activeDeadlineSeconds": model.warmup_timeout_minutes * 60,
        "resources": {"requests": requests, "limits": {"memory": "2Gi"}},
    }
    if model.node_pool:
        values["nodeSelector"] = {POOL_LABEL: model.node_pool}
        values["tolerations"] = [dict(GPU_TOLERATION)]
    return values


def select(model: dict[str, Any], pool: dict[str, Any] | None) -> tuple[str, str, str]:
    """The id of the one profile a selection ({engine, precision, tensorParallel, kind, lora}) names, or "" with
    what is wrong and how to fix it.

    Candidates are the release's profiles (nimgen's catalog) that match the selection, run on the model's gpus
    and are built for a GPU the pool launches (or for any GPU); when some are pre-built for the pool's GPUs,
    only those (NIM's own choice too). A selection left ambiguous is an error that lists the candidates.
    """
    selection: dict[str, Any] = model["profile"]
    try:
        image = ImageRef.parse(str(model.get("image")))
    except InvalidReference:
        return "", "", ""  # the image's own error says why
    listed = capacity.release_profiles(image.repository, image.tag) if image.tag else None
    release = f"{image.repository.partition('/nim/')[2] or image.repository}:{image.tag}"
    wanted = " ".join(f"{key} {value}" for key, value in selection.items())
    if listed is None:
        return "", (f"nimgen does not know the profiles of {release}, so it cannot resolve the selection "
                    f"({wanted})"), "write the profile's id, from list-model-profiles on a node of the pool"
    gpus = model.get("gpus", 1)
    pool_gpus = _pool_gpus(pool) if pool else []

    def matches(profile: capacity.NimProfile) -> bool:
        return (selection.get("engine", profile.engine) == profile.engine
                and selection.get("precision", profile.precision) == profile.precision
                and selection.get("tensorParallel", profile.tp) == profile.tp
                and selection.get("kind", profile.kind) == profile.kind
                and bool(selection.get("lora", False)) == profile.lora
                and (not isinstance(gpus, int) or profile.gpus == gpus)
                and (not pool_gpus or any(profile.runs_on(gpu) for gpu in pool_gpus)))

    found = [profile for profile in listed if matches(profile)]
    built = [profile for profile in found if profile.gpu]
    found = built or found
    if len(found) == 1:
        return found[0].id, "", ""
    if found:
        return "", (f"{len(found)} profiles of {release} match the selection ({wanted}) for this model's GPUs"), \
            "narrow it (kind: throughput or latency, tensorParallel, precision), or write one id: " + \
            "; ".join(_describe(profile) for profile in found[:4])
    fitting = [profile for profile in listed if (not isinstance(gpus, int) or profile.gpus == gpus)
               and (not pool_gpus or any(profile.runs_on(gpu) for gpu in pool_gpus))]
    return "", f"no profile of {release} matches the selection ({wanted}) on {gpus} GPU(s) of the pool", \
        ("profiles for this model's GPUs: " + "; ".join(_describe(profile) for profile in fitting[:4])
         if fitting else "list them with list-model-profiles on a node of the pool")


def profile_id(model: dict[str, Any], pool: dict[str, Any] | None) -> str:
    """The profile the model names: its id or name as written, or the id a selection resolves to."""
    profile = model.get("profile")
    if isinstance(profile, dict):
        return select(model, pool)[0]
    return str(profile or "")


def check(document: Any, models: list[Any], add: Any) -> None:
    """A profile is one of its release's (when nimgen knows the release) and fits the model's GPUs, a selection
    names exactly one; a warm-up downloads the profile the server runs, and fits the disk of the pool it runs on."""
    pools = {pool.get("name"): (index, pool) for index, pool in enumerate(document.get("nodePools") or [])
             if isinstance(pool, dict)}
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        base = ["models", index]
        entry = pools.get(model.get("nodePool"))
        if isinstance(model.get("profile"), str):
            _known_profile(model, base, entry, add)
        elif isinstance(model.get("profile"), dict):
            _selected_profile(model, base, entry, add)
        if "cacheWarmup" not in model:
            continue
        name = _s(str(model.get("name")))
        profile = profile_id(model, entry[1] if entry else None)
        if isinstance(model.get("profile"), dict) and not profile:
            continue  # the selection's own error says why
        listed = (model.get("cacheWarmup") or {}).get("profiles") or []
        if not listed and not profile:
            add([*base, "cacheWarmup"], f"the warm-up of model '{name}' has no profile to download: the Job has no "
                "GPU to pick one", "set the model's profile (an id or name from list-model-profiles on a node of "
                "the pool), or cacheWarmup.profiles")
            continue
        if profile and listed and profile not in listed:
            add([*base, "cacheWarmup", "profiles"], f"model '{name}' runs profile {_s(str(profile))}, which its "
                "warm-up does not download: NIM would download it again at every cold start",
                "add it to cacheWarmup.profiles, or leave profiles out (the warm-up then downloads the model's profile)")
        elif not profile and len(listed) > 1:
            add([*base, "profile"], f"the warm-up of model '{name}' downloads {len(listed)} profiles, and NIM picks "
                "one by the GPUs it finds", "set profile to the one the server should run, unless the pool mixes "
                "GPU types on purpose", warning=True)
        _fits_pool_disk(model, name, entry, add)


_PROFILE_ID = re.compile(r"[0-9a-f]{64}")


def _selected_profile(model: dict[str, Any], base: list[Any], entry: tuple[int, Any] | None, add: Any) -> None:
    """A selection resolves to one profile, of the model's own precision."""
    chosen, message, hint = select(model, entry[1] if entry else None)
    path = [*base, "profile"]
    if message:
        add(path, message, hint)
    wanted = model["profile"].get("precision")
    if chosen and wanted and wanted != model.get("precision", "bf16"):
        add(path, f"the profile selection runs {wanted}, but the model's precision (which sizes its GPU memory) is "
            f"{_s(str(model.get('precision', 'bf16')))}", f"set precision: {wanted} on the model too")


def _known_profile(model: dict[str, Any], base: list[Any], entry: tuple[int, Any] | None, add: Any) -> None:
    """A profile id the release's manifest lists, for the model's GPU count and the pool's GPUs."""
    try:
        image = ImageRef.parse(str(model.get("image")))
    except InvalidReference:
        return
    listed = capacity.release_profiles(image.repository, image.tag) if image.tag else None
    profile = str(model["profile"])
    if listed is None or not _PROFILE_ID.fullmatch(profile):
        return  # a release nimgen does not know, or a human-readable name NIM resolves itself
    gpus = model.get("gpus", 1)
    pool_gpus = _pool_gpus(entry[1]) if entry else []
    found = next((p for p in listed if p.id == profile), None)
    release = f"{image.repository.partition('/nim/')[2]}:{image.tag}"
    path = [*base, "profile"]
    if found is None:
        fitting = [p for p in listed if p.gpus == gpus and (not pool_gpus or any(p.runs_on(g) for g in pool_gpus))]
        add(path, f"profile {profile[:12]}... is not a profile of {release}",
            "profiles for this model's GPUs: " + "; ".join(_describe(p) for p in fitting[:4]) if fitting
            else "list them with list-model-profiles on a node of the pool")
        return
    if isinstance(gpus, int) and found.gpus != gpus:
        add(path, f"profile {profile[:12]}... ({_describe(found, with_id=False)}) runs on {found.gpus} GPUs, but the "
            f"model has gpus: {gpus}", f"set gpus: {found.gpus}, or pick a profile for {gpus} GPUs")
    if found.gpu and pool_gpus and not any(found.runs_on(g) for g in pool_gpus):
        names = ", ".join(sorted({g.name for g in pool_gpus}))
        pool = _s(str(entry[1].get("name"))) if entry else ""
        add(path, f"profile {profile[:12]}... is built for {found.gpu}, but node pool '{pool}' launches {names}",
            "pick a profile built for the pool's GPUs, or a generic (vllm) one")


def _pool_gpus(pool: dict[str, Any]) -> list[capacity.Gpu]:
    return [i.gpu for i in capacity.pool_instances(list(pool.get("instanceFamilies") or []),
                                                   list(pool.get("instanceTypes") or []),
                                                   capacity.gpu_memory_floor_mib(pool))]


def _describe(profile: capacity.NimProfile, *, with_id: bool = True) -> str:
    what = " ".join(x for x in (profile.engine, profile.precision, f"tp{profile.tp}",
                                f"pp{profile.pp}" if profile.pp > 1 else "", profile.gpu, profile.kind,
                                "lora" if profile.lora else "") if x)
    return f"{profile.id} ({what})" if with_id else what


def _fits_pool_disk(model: dict[str, Any], name: str, entry: tuple[int, Any] | None, add: Any) -> None:
    if entry is None or not isinstance(entry[1].get("diskSize", DEFAULT_DISK), str):
        return
    index, pool = entry
    try:
        parameters = capacity.parameters_of(model.get("parameters"), ImageRef.parse(str(model.get("image"))).repository)
    except InvalidReference:
        return
    needed = disk_gib(float(parameters)) if isinstance(parameters, (int, float)) else None
    size = pool.get("diskSize", DEFAULT_DISK)
    if needed is not None and parse_quantity(size) < needed * capacity.GIB:
        add(["nodePools", index, "diskSize"], f"the warm-up Job of model '{name}' needs about {needed}Gi of node "
            f"disk for the NIM image and the model (about {DISK_GB_PER_BILLION_PARAMETERS} GB per billion "
            f"parameters), but node pool '{_s(str(pool.get('name')))}' gives its nodes {_s(size)}",
            f"raise diskSize to at least {needed}Gi")
