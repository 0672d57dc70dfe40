"""Checks the JSON Schema cannot express: cross-field rules, name lengths, pinned images, secrets."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nimgen import capacity, openwebui, secrets
from nimgen.argocd import reserved_application_names
from nimgen.errors import Location, Problem, json_path, shown
from nimgen.errors import shorten as _s  # checks also meet schema-invalid (any-length) values
from nimgen.imageref import ImageRef, InvalidReference
from nimgen.layering import locate, locate_key
from nimgen.model import parse_quantity

# The chart sets these itself; a second definition would silently win or lose.
CHART_MANAGED_ENV = {
    "NGC_API_KEY": "the key comes from the Secret named by ngc.apiKeySecret",
    "NIM_CACHE_PATH": "it follows the model cache mount",
    "NIM_SERVER_PORT": "the chart pins the API port to the Service",
    "NIM_SERVED_MODEL_NAME": "set servedModelName instead",
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
_AMI_VERSION = {"al2023": re.compile(r"v[0-9]{8}"), "bottlerocket": re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+")}
MIN_KUBERNETES_MINOR = 29
RESERVED_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease", "default"}


def environment_problems(document: Any, models: list[Any], fallback: Location) -> list[Problem]:
    """Every cross-field problem in a schema-valid, layered environment document."""
    problems: list[Problem] = []

    def add(path: list[Any], message: str, hint: str = "", *, key: Any = None, warning: bool = False) -> None:
        where = locate_key(document, path, key, fallback) if key is not None else locate(document, path, fallback)
        problems.append(Problem(where, json_path([*path, key] if key is not None else path), message, hint,
                                "warning" if warning else "error"))

    # The document may still hold schema errors (reported separately): a check that meets
    # a value of the wrong shape skips it instead of failing.
    _guarded(_environment_level, document, add)
    _guarded(_secret_values, document, add)
    _guarded(_observability, document, models, add)
    _guarded(_open_webui, document, models, add)
    pools = document.get("nodePools")
    pool_names = None
    if isinstance(pools, list):
        pool_names = _pool_problems(document, pools, add)
    gitops = document.get("gitops")
    argocd_namespace = gitops.get("namespace", "argocd") if isinstance(gitops, dict) else "argocd"
    seen: dict[str, int] = {}
    env_name = document.get("name")
    reserved = reserved_application_names(env_name) if isinstance(env_name, str) else {}
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        base = ["models", index]
        for check in (_identity, _image, _placement, _env_problems, _cache_problems, _memory_problems):
            _guarded(check, model, base, add)
        _guarded(_namespace, model, base, add, argocd_namespace)
        _guarded(_pool_exists, model, base, add, pool_names)
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
            _guarded(_efs_read_time, model, ["models", index], add)
        if isinstance(model, dict) and model.get("cacheWarmup"):
            _guarded(_warmup_needs_shared_cache, model, ["models", index], add, shared_cache)
    if isinstance(pools, list):
        _guarded(_pool_capacity, pools, models, add)
        by_name = {pool["name"]: (index, pool) for index, pool in enumerate(pools)
                   if isinstance(pool, dict) and isinstance(pool.get("name"), str)}
        for index, model in enumerate(models):
            if isinstance(model, dict) and model.get("nodePool") in by_name:
                _guarded(_gpu_fit, model, ["models", index], by_name[model["nodePool"]], add)
    return problems


def _guarded(check: Callable[..., None], *args: Any) -> None:
    try:
        check(*args)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        pass


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


IMAGE_FORM = "write registry/repository:tag or registry/repository@sha256:<digest>"


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
        add([*path, "claimName"], f"claimName is used only with cache type existingClaim (type is {kind})")
    if kind != "claimTemplate" and cache.get("storageClassName"):
        add([*path, "storageClassName"], f"storageClassName is used only with cache type claimTemplate (type is {kind})")
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


def _pool_problems(document: Any, pools: list[Any], add: Any) -> set[str]:
    """Check the node pools; return the names models may use."""
    names: dict[str, int] = {}
    if pools and "karpenter" not in (document.get("cluster") or {}):
        add(["cluster"], "nodePools needs cluster.karpenter (nodeRole and discoveryTag) for the EC2NodeClasses",
            "add cluster.karpenter: {nodeRole: <IAM role name>, discoveryTag: <karpenter.sh/discovery tag value>}")
    for index, pool in enumerate(pools):
        if isinstance(pool, dict):
            _guarded(_pool, document, pool, ["nodePools", index], add, names, index)
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


def _pool_exists(model: Any, base: list[Any], add: Any, pool_names: set[str] | None) -> None:
    if pool_names is None or not model.get("nodePool") or model["nodePool"] in pool_names:
        return
    known = _s(", ".join(sorted(pool_names)) or "none")
    add([*base, "nodePool"] if "nodePool" in model else base,
        f"node pool '{_s(model['nodePool'])}' is not defined in nodePools (defined: {known})",
        "add the pool under nodePools or pick a defined one")


def _pool_capacity(pools: list[Any], models: list[Any], add: Any) -> None:
    """GPUs the models of each pool may hold at full scale, against the pool's gpuLimit."""
    demand: dict[str, list[tuple[str, int, int]]] = {}
    for model in models:
        if isinstance(model, dict) and isinstance(model.get("nodePool"), str):
            replicas = (model.get("replicas") or {}).get("max", 1)
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
                f"models on node pool '{_s(pool['name'])}' may need {needed} GPUs at replicas.max ({detail}) "
                f"but gpuLimit is {pool['gpuLimit']}",
                f"raise gpuLimit to at least {needed}, or lower replicas.max of those models")


def _gpu_fit(model: Any, base: list[Any], pool_entry: tuple[int, Any], add: Any) -> None:
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
    precision_path = [*base, "precision"] if "precision" in model else base
    no_fp8 = sorted({instance.gpu.name for instance in placeable if not instance.gpu.fp8})
    if precision == "fp8" and no_fp8:
        add(precision_path, f"fp8 needs Ada or Hopper GPUs, but node pool '{_s(pool['name'])}' may launch {', '.join(no_fp8)}",
            "use bf16, or limit the pool to L4, L40S, H100 or H200 instances")
    spec = capacity.model_spec(ImageRef.parse(model["image"]).repository)
    if spec and precision not in spec.precisions:
        add(precision_path, f"NIM offers this model in {', '.join(spec.precisions)}, not {precision}")
    parameters = model.get("parameters") or (spec.parameters if spec else None)
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


def _warmup_needs_shared_cache(model: Any, base: list[Any], add: Any, shared_cache: bool) -> None:
    kind = (model.get("cache") or {}).get("type", "existingClaim" if shared_cache else "none")
    if kind != "existingClaim":
        where = f"cache type {kind}" if kind != "none" else "no shared cache (storage.modelCache is not set)"
        add([*base, "cacheWarmup"], f"cacheWarmup fills a shared cache, but model '{_s(model['name'])}' has {where}",
            "set storage.modelCache (EFS) or cache: {type: existingClaim, claimName: ...}, or remove cacheWarmup")


def _observability(document: Any, models: list[Any], add: Any) -> None:
    """The monitoring stack must be reachable, and HPAs need something serving their metric."""
    obs = document.get("observability") or {}
    if obs.get("enabled"):
        if (obs.get("prometheusStack") or {}).get("enabled", True) is False and not obs.get("prometheusUrl"):
            add(["observability", "prometheusStack"],
                "without kube-prometheus-stack, set observability.prometheusUrl (the Prometheus prometheus-adapter "
                "queries)", "e.g. prometheusUrl: http://prometheus-operated.monitoring.svc:9090")
        return
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        replicas = model.get("replicas") or {}
        if replicas.get("max", 1) > replicas.get("min", 1):
            autoscaling = model.get("autoscaling") or {}
            metric = autoscaling.get("metric", "num_requests_running")
            if autoscaling.get("engine") == "keda":
                add(["models", index, "autoscaling", "engine"],
                    f"model '{_s(model['name'])}' scales with KEDA, whose Prometheus trigger needs a Prometheus, but "
                    "observability is off", "set observability.enabled: true (or observability.prometheusUrl with "
                    "prometheusStack.enabled: false), or use engine: hpa")
                continue
            add(["models", index], f"model '{_s(model['name'])}' scales on {metric}, but observability is off: nothing "
                                   "nimgen renders serves that metric to its HPA",
                "set observability.enabled: true (prometheus-adapter with the rule), or serve the metric yourself",
                warning=True)


def _open_webui(document: Any, models: list[Any], add: Any) -> None:
    """The chat front end must have a pinned image, its own namespace and something to list."""
    webui = (document.get("addons") or {}).get("openWebUI") or {}
    if not webui.get("enabled"):
        return
    base = ["addons", "openWebUI"]
    image = webui.get("image", openwebui.DEFAULT_IMAGE)
    try:
        ref = ImageRef.parse(image)
        if ref.tag in openwebui.MOVING_TAGS and not ref.digest:
            raise ValueError(f"tag ':{ref.tag}' follows a branch of Open WebUI, not a release")
    except InvalidReference as exc:
        add([*base, "image"], f"image {shown(image)} is not a valid image reference: {exc}",
            f"{IMAGE_FORM}, e.g. {openwebui.DEFAULT_IMAGE}")
    except ValueError as exc:
        add([*base, "image"], f"image '{image}' is not pinned: {exc}",
            "pin a release tag (e.g. :v0.7.2) or a digest; see github.com/open-webui/open-webui/releases")
    namespace = webui.get("namespace", "open-webui")
    gitops = document.get("gitops") or {}
    if namespace == gitops.get("namespace", "argocd") or namespace in RESERVED_NAMESPACES:
        add([*base, "namespace"] if "namespace" in webui else base,
            f"Open WebUI namespace '{_s(namespace)}' is reserved",
            "run Open WebUI in its own namespace (default open-webui)")
    named = [m for m in models if isinstance(m, dict)]
    if not named:
        add([*base, "enabled"], "Open WebUI is enabled but the environment has no model to chat with",
            "add a model, or disable addons.openWebUI", warning=True)
    for model in named:
        if model.get("name") == "open-webui" and (model.get("namespace") or "nim") == namespace:
            add([*base, "namespace"] if "namespace" in webui else base,
                f"model 'open-webui' and Open WebUI would both own Service {namespace}/open-webui",
                "give Open WebUI another namespace (addons.openWebUI.namespace)")


def _efs_read_time(model: Any, base: list[Any], add: Any) -> None:
    """Warn when a model's weights are large enough that EFS reads dominate start-up."""
    spec = capacity.model_spec(ImageRef.parse(model["image"]).repository)
    parameters = model.get("parameters") or (spec.parameters if spec else None)
    if parameters is None:
        return
    weights = capacity.weights_gib(parameters, model.get("precision", "bf16"))
    if weights > EFS_WARN_WEIGHTS_GIB:
        add(base, f"model '{_s(model['name'])}' reads about {weights:.0f} GiB of weights from the EFS cache at every start",
            ("" if model.get("cacheWarmup") else "add cacheWarmup so a Job downloads it once before the model syncs; ")
            + "give the file system Elastic or provisioned throughput; a per-replica claim "
            "(cache: {type: claimTemplate}) avoids network reads",
            warning=True)
