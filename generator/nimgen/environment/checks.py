"""Checks the JSON Schema cannot express: cross-field rules, name lengths, pinned images, secrets."""

from __future__ import annotations

import re
from typing import Any

from nimgen import capacity, secrets
from nimgen.components import registry
from nimgen.environment.layering import locate, locate_key
from nimgen.environment.poolchecks import Guard, gpu_fit, pool_capacity, pool_exists, pool_problems
from nimgen.errors import Location, Problem, json_path, shown
from nimgen.errors import shorten as _s  # checks also meet schema-invalid (any-length) values
from nimgen.imageref import IMAGE_FORM, ImageRef, InvalidReference
from nimgen.model import RESERVED_NAMESPACES, parse_quantity

# The chart sets these itself; a second definition would silently win or lose.
CHART_MANAGED_ENV = {
    "NGC_API_KEY": "the key comes from the Secret named by ngc.apiKeySecret",
    "NIM_CACHE_PATH": "it follows the model cache mount",
    "NIM_SERVER_PORT": "the chart pins the API port to the Service",
    "NIM_SERVED_MODEL_NAME": "set servedModelName instead",
    "NIM_MODEL_PROFILE": "set profile instead (the warm-up then downloads the same one)",
    "NIM_JSONL_LOGGING": "the chart sets it",
    "NIM_LOG_LEVEL": "the chart sets it",
    "OUTLINES_CACHE_DIR": "the chart sets it",
}
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY|CREDENTIALS?)\Z", re.IGNORECASE)

# Above this much weight data, reading the model from EFS dominates a replica's start-up.
EFS_WARN_WEIGHTS_GIB = 100

# StatefulSet names feed the controller-revision-hash label (name + '-' + 10-char hash <= 63),
# and Helm refuses release names over 53 characters.
MAX_MODEL_NAME = 52
# Longest suffix nimgen adds to the environment name (the platform AppProject).
ENV_NAME_SUFFIX = "-platform"
MIN_KUBERNETES_MINOR = 29


def environment_problems(document: Any, models: list[Any], fallback: Location, *, schema_valid: bool) -> list[Problem]:
    """Every cross-field problem in a layered environment document. When the schema accepted it
    (schema_valid), a check that could not finish is an error: nimgen would otherwise render unchecked."""
    problems: list[Problem] = []
    guarded = Guard()

    def add(path: list[Any], message: str, hint: str = "", *, key: Any = None, warning: bool = False) -> None:
        where = locate_key(document, path, key, fallback) if key is not None else locate(document, path, fallback)
        problems.append(Problem(where, json_path([*path, key] if key is not None else path), message, hint,
                                "warning" if warning else "error"))

    guarded(_environment_level, document, add)
    guarded(_secret_values, document, add)
    guarded(_prerequisites, document, add)
    for component in registry.COMPONENTS:
        guarded(component.check, document, models, add)
    pools = document.get("nodePools")
    pool_names = None
    if isinstance(pools, list):
        pool_names = pool_problems(document, pools, add, guarded)
    gitops = document.get("gitops")
    argocd_namespace = gitops.get("namespace", "argocd") if isinstance(gitops, dict) else "argocd"
    seen: dict[str, int] = {}
    env_name = document.get("name")
    # A name of the wrong type is a schema error of its own; the platform Applications' names stay reserved.
    reserved = registry.reserved_application_names(str(env_name))
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        base = ["models", index]
        for check in (_identity, _image, _placement, _env_problems, _cache_problems, _memory_problems):
            guarded(check, model, base, add, at=base)
        guarded(_namespace, model, base, add, argocd_namespace, at=base)
        guarded(pool_exists, model, base, add, pool_names, at=base)
        name = model.get("name")
        if isinstance(name, str) and name in reserved:
            add([*base, "name"], f"model name '{_s(name)}' is also the name of {reserved[name]}",
                "Argo CD would see two Applications with one name; rename the model")
        if isinstance(name, str) and name in seen:
            add([*base, "name"], f"duplicate model name '{_s(name)}' (also models[{seen[name]}])",
                "model names must be unique: they name the Application, Helm release and workload")
        elif isinstance(name, str):
            seen[name] = index
    storage = document.get("storage")
    shared_cache = isinstance(storage, dict) and bool(storage.get("modelCache"))
    for index, model in enumerate(models):
        if isinstance(model, dict) and not model.get("cache") and shared_cache:
            guarded(_efs_read_time, model, ["models", index], add, at=["models", index])
        if isinstance(model, dict) and model.get("cacheWarmup"):
            guarded(_warmup_needs_shared_cache, model, ["models", index], add, shared_cache, at=["models", index])
    if isinstance(pools, list):
        guarded(pool_capacity, pools, models, add, at=["nodePools"])
        by_name = {pool["name"]: (index, pool) for index, pool in enumerate(pools)
                   if isinstance(pool, dict) and isinstance(pool.get("name"), str)}
        for index, model in enumerate(models):
            if isinstance(model, dict) and isinstance(model.get("nodePool"), str) and model["nodePool"] in by_name:
                guarded(gpu_fit, model, ["models", index], by_name[model["nodePool"]], add, at=["models", index])
    if schema_valid:
        for path, stop in guarded.stopped:
            add(path, f"check could not finish ({stop})",
                "the schema accepts this environment, so this is a nimgen bug: report it with the file; "
                "nothing was rendered")
    return problems


_CLUSTER_SCOPED_PREREQUISITES = {"StorageClass", "PriorityClass", "Namespace"}


def _prerequisites(document: Any, add: Any) -> None:
    """A namespaced prerequisite names its namespace; a cluster-scoped one has none."""
    for index, item in enumerate(document.get("prerequisites") or []):
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
            continue
        scoped = item["kind"] in _CLUSTER_SCOPED_PREREQUISITES
        if scoped and "namespace" in item:
            add(["prerequisites", index, "namespace"], f"a {item['kind']} is cluster-scoped: it has no namespace",
                "remove namespace")
        elif not scoped and "namespace" not in item:
            add(["prerequisites", index], f"a {item['kind']} lives in a namespace: say which", "add namespace: <name>")


def _environment_level(document: Any, add: Any) -> None:
    name = document["name"]
    if len(name) + len(ENV_NAME_SUFFIX) > 63:
        add(["name"], f"name is {len(name)} characters; the AppProject '{_s(name + ENV_NAME_SUFFIX)}' would pass 63",
            f"shorten it to at most {63 - len(ENV_NAME_SUFFIX)} characters")
    minor = int(document["cluster"]["kubernetesVersion"].split(".")[1])
    if minor < MIN_KUBERNETES_MINOR:
        add(["cluster", "kubernetesVersion"],
            f"Kubernetes 1.{minor} is older than the oldest version nimgen supports (1.{MIN_KUBERNETES_MINOR})",
            "upgrade the cluster (EKS standard support covers recent versions only)")


def _identity(model: Any, base: list[Any], add: Any) -> None:
    name = model["name"]
    if len(name) > MAX_MODEL_NAME:
        add([*base, "name"],
            f"name is {len(name)} characters; as Helm release and StatefulSet name it may have at most "
            f"{MAX_MODEL_NAME} (Helm allows 53, and Kubernetes adds an 11-character revision hash to a 63-character label)",
            f"shorten it to {MAX_MODEL_NAME} characters or fewer")




def _image(model: Any, base: list[Any], add: Any) -> None:
    image = model["image"]
    if not isinstance(image, str):
        return  # the schema reports the type
    try:
        ImageRef.parse(image)
    except InvalidReference as exc:
        add([*base, "image"], f"image {shown(image)} is not a valid image reference: {exc}",
            f"{IMAGE_FORM}, e.g. nvcr.io/nim/meta/llama3-8b-instruct:1.0.3")
    except ValueError as exc:
        add([*base, "image"], f"image '{image}' is not pinned: {exc}",
            "pin a released tag (e.g. :1.0.3) or a digest (@sha256:...); see the model's NGC catalog page")


def _placement(model: Any, base: list[Any], add: Any) -> None:
    if not model.get("nodePool"):
        add(base, f"model '{_s(model.get('name', '?'))}' has no nodePool", "set nodePool on the model or in modelDefaults")
    replicas = model.get("replicas") or {}
    if replicas and replicas["min"] > replicas["max"]:
        add([*base, "replicas"], f"replicas.min ({replicas['min']}) is greater than replicas.max ({replicas['max']})",
            "set min <= max; min == max means a fixed replica count")


def _namespace(model: Any, base: list[Any], add: Any, argocd_namespace: str) -> None:
    namespace = model.get("namespace") or "nim"
    if namespace == argocd_namespace or namespace in RESERVED_NAMESPACES:
        add([*base, "namespace"] if "namespace" in model else base,
            f"model namespace '{_s(namespace)}' is reserved",
            "run models in their own namespace (the default is 'nim'); letting the environment's AppProject deploy "
            "to Argo CD's or a system namespace would grant it cluster-admin-like rights")


def _secret_values(document: Any, add: Any) -> None:
    """Anything in the file that looks like a credential would be committed to Git: refuse it where it is."""
    if not secrets.may_hold_secrets(document):
        return
    for path, what in secrets.find_secrets(document):
        add(list(path), f"{what} is in the environment file; it would be committed to Git",
            secrets.HINTS.get(what, "remove it and rotate the credential; reference a Secret instead (secretEnv, "
                              "ngc.apiKeySecret, ngc.externalSecret for AWS Secrets Manager)"))


def _env_problems(model: Any, base: list[Any], add: Any) -> None:
    for name in model.get("env") or {}:
        if name in CHART_MANAGED_ENV:
            add([*base, "env"], f"environment variable {name} is managed by nimgen", CHART_MANAGED_ENV[name], key=name)
        elif _SECRET_NAME.search(name):
            add([*base, "env"], f"environment variable {_s(name)} looks like a secret and would be committed in plain text",
                f"create a Secret in the cluster and reference it: secretEnv: {{{_s(name)}: {{secret: <name>, key: <key>}}}}",
                key=name)
    for name in model.get("secretEnv") or {}:
        if name in CHART_MANAGED_ENV:
            add([*base, "secretEnv"], f"environment variable {name} is managed by nimgen", CHART_MANAGED_ENV[name], key=name)
        if name in (model.get("env") or {}):
            add([*base, "secretEnv"], f"environment variable {_s(name)} is set in both env and secretEnv",
                "keep one of them", key=name)


def _cache_problems(model: Any, base: list[Any], add: Any) -> None:
    cache = model.get("cache")
    if not cache:
        return
    path = [*base, "cache"]
    kind = cache["type"]
    if kind == "existingClaim" and not cache.get("claimName"):
        add(path, "cache type existingClaim needs claimName", "name the ReadWriteMany PersistentVolumeClaim to mount")
    if kind != "existingClaim" and cache.get("claimName"):
        add([*path, "claimName"], f"claimName is used only with cache type existingClaim (type is {kind})",
            "remove claimName, or set type: existingClaim to mount that claim")
    if kind != "claimTemplate" and cache.get("storageClassName"):
        add([*path, "storageClassName"], f"storageClassName is used only with cache type claimTemplate (type is {kind})",
            "remove storageClassName, or set type: claimTemplate for a claim per replica")
    if kind == "claimTemplate" and (model.get("workload") or "StatefulSet") != "StatefulSet":
        add(path, "cache type claimTemplate needs workload StatefulSet (per-replica claims come from claim templates)",
            "use workload: StatefulSet, or cache type existingClaim or emptyDir")


def _memory_problems(model: Any, base: list[Any], add: Any) -> None:
    memory = (model.get("resources") or {}).get("memory")
    shm = model.get("sharedMemory")
    if memory and shm and parse_quantity(shm) >= parse_quantity(memory):
        add([*base, "sharedMemory"],
            f"sharedMemory ({shm}) must be smaller than resources.memory ({memory})",
            "/dev/shm is memory-backed and counts against the container's memory limit")


def _warmup_needs_shared_cache(model: Any, base: list[Any], add: Any, shared_cache: bool) -> None:
    kind = (model.get("cache") or {}).get("type", "existingClaim" if shared_cache else "none")
    if kind != "existingClaim":
        where = f"cache type {kind}" if kind != "none" else "no shared cache (storage.modelCache is not set)"
        add([*base, "cacheWarmup"], f"cacheWarmup fills a shared cache, but model '{_s(model['name'])}' has {where}",
            "set storage.modelCache (EFS) or cache: {type: existingClaim, claimName: ...}, or remove cacheWarmup")




def _efs_read_time(model: Any, base: list[Any], add: Any) -> None:
    """Warn when a model's weights are large enough that EFS reads dominate start-up."""
    parameters = capacity.parameters_of(model.get("parameters"), ImageRef.parse(model["image"]).repository)
    if parameters is None:
        return
    weights = capacity.weights_gib(parameters, model.get("precision", "bf16"))
    if weights > EFS_WARN_WEIGHTS_GIB:
        add(base, f"model '{_s(model['name'])}' reads about {weights:.0f} GiB of weights from the EFS cache at every start",
            ("" if model.get("cacheWarmup") else "add cacheWarmup so a Job downloads it once before the model syncs; ")
            + "give the file system Elastic or provisioned throughput; a per-replica claim "
            "(cache: {type: claimTemplate}) avoids network reads",
            warning=True)
