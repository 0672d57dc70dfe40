"""Load an environment file: parse, layer over `_defaults.yaml`, validate, build the typed model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nimgen import capacity
from nimgen.components import gateway, profiles
from nimgen.components.monitoring import PROMETHEUS_STACK_RELEASE
from nimgen.environment import checks
from nimgen.environment.layering import merge
from nimgen.environment.schema import environment_schema, schema_problems
from nimgen.errors import ConfigError, Location, Problem
from nimgen.model import (
    Alerts,
    BlockStorage,
    CapacityReservation,
    Environment,
    ExternalSecretRef,
    GitOps,
    ImageRef,
    Karpenter,
    Model,
    ModelCache,
    MonitoringStorage,
    Ngc,
    NodePool,
    Observability,
    OpenWebUI,
    Prerequisite,
    Receiver,
    Ref,
    SecretEnvVar,
    parse_quantity,
)
from nimgen.repository import default_root, display_path
from nimgen.yamlio import LMap, load_located

DEFAULTS_FILE = "_defaults.yaml"


def _read(path: Path, shown: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(Location(shown, 1, 1), "$", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(Location(shown, 1, 1), "$", f"cannot read file: {exc}")]) from None
    return load_located(text, shown)


def load_environment(path: Path, root: Path) -> Environment:
    """Read, layer and validate one environment file; raise ConfigError listing every problem."""
    shown = display_path(path, root)
    defaults_path = path.parent / DEFAULTS_FILE
    defaults_shown = ""
    problems: list[Problem] = []
    layers: list[Any] = []
    if defaults_path.is_file() and defaults_path.resolve() != path.resolve():
        defaults_shown = display_path(defaults_path, root)
        try:
            layers.append(_read(defaults_path, defaults_shown))
        except ConfigError as exc:
            problems.extend(exc.problems)
    try:
        layers.append(_read(path, shown))
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)

    fallback = Location(shown, 1, 1)
    files = ([defaults_shown] if defaults_shown else []) + [shown]
    problems = [
        Problem(getattr(layer, "loc", None) or Location(file, 1, 1), "$", "must be a mapping")
        for layer, file in zip(layers, files)
        if layer is not None and not isinstance(layer, dict)
    ]
    if problems:
        raise ConfigError(problems)
    document: Any = LMap(loc=fallback)
    for layer in layers:
        document = merge(document, layer if layer is not None else LMap(loc=fallback))

    # Schema and cross-field checks both run, so one pass reports every problem.
    problems = schema_problems(document, fallback)
    models = _apply_model_defaults(document)
    schema_valid = not any(p.severity == "error" for p in problems)
    problems += [p for p in checks.environment_problems(document, models, fallback, schema_valid=schema_valid)
                 if p not in problems]
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ConfigError(errors)
    env = _build(document, models, shown, defaults_shown)
    return replace(env, warnings=tuple(sorted((p for p in problems if p.severity == "warning"), key=Problem.sort_key)))


def load_environments(env_files: list[Path]) -> list[tuple[Environment, Path]]:
    """Each file's environment with its repository root; ConfigError listing every problem of every file."""
    loaded: list[tuple[Environment, Path]] = []
    problems: list[Problem] = []
    for env_file in env_files:
        root = default_root(env_file)
        try:
            loaded.append((load_environment(env_file, root), root))
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    return loaded


def _apply_model_defaults(document: Any) -> list[Any]:
    """Each model layered over modelDefaults (shapes checked, since schema errors may remain)."""
    models = document.get("models")
    if not isinstance(models, list):
        return []
    defaults = document.get("modelDefaults")
    defaults = defaults if isinstance(defaults, dict) else LMap()
    return [merge(defaults, model) if isinstance(model, dict) else model for model in models]


# Settings every model gets unless it or modelDefaults says otherwise.
MODEL_DEFAULTS: dict[str, Any] = {
    "gpus": 1,
    "replicas": {"min": 1, "max": 1},
    "namespace": "nim",
    "workload": "StatefulSet",
    "startupTimeoutMinutes": 30,
    "requestTimeoutSeconds": 300,
    "rollout": {"surge": 0},
    "servedModelName": "",
}


DEFAULT_CACHE_SIZE = "100Gi"


def default_resources(gpus: int) -> dict[str, str]:
    """CPU, memory and /dev/shm per replica; fits every g5/g6 size from 2xlarge up (8+ vCPU, 32+ GiB per GPU)."""
    return {
        "cpu": str(4 * gpus),
        "memory": f"{24 * gpus}Gi",
        # NCCL needs a large /dev/shm only when GPUs talk to each other.
        "sharedMemory": "2Gi" if gpus == 1 else "16Gi",
    }


def model_value(model: Any, key: str) -> Any:
    """A model setting with nimgen's built-in default."""
    value = model.get(key)
    return MODEL_DEFAULTS.get(key) if value is None else value


def _build(document: Any, models: list[Any], shown: str, defaults_shown: str) -> Environment:
    top = environment_schema()["properties"]
    gitops = _with_schema_defaults(document["gitops"], top["gitops"]["properties"])
    ngc = _with_schema_defaults(document.get("ngc") or {}, top["ngc"]["properties"])
    cluster = document["cluster"]
    storage = document.get("storage") or {}
    block_spec = _with_schema_defaults(storage.get("blockStorage") or {},
                                       top["storage"]["properties"]["blockStorage"]["properties"])
    block = BlockStorage(block_spec["storageClassName"], block_spec.get("kmsKeyId", ""), block_spec["reclaimPolicy"])
    cache_spec = storage.get("modelCache")
    shared_cache = None
    if cache_spec:
        cache_spec = _with_schema_defaults(cache_spec, top["storage"]["properties"]["modelCache"]["properties"])
        shared_cache = ModelCache(cache_spec["efs"]["fileSystemId"], cache_spec["size"], cache_spec["storageClassName"],
                                  cache_spec["claimName"])
    pools = {pool["name"]: pool for pool in document.get("nodePools") or []}
    front_door = gateway.build(_with_schema_defaults(document.get("gateway") or {}, top["gateway"]["properties"]))
    return Environment(
        name=document["name"],
        source=shown,
        defaults_source=defaults_shown,
        description=document.get("description", ""),
        production=bool(document.get("production", False)),
        cluster_name=cluster["name"],
        region=cluster["region"],
        kubernetes_version=cluster["kubernetesVersion"],
        gitops=GitOps(
            repo_url=gitops["repoURL"],
            target_revision=gitops["targetRevision"],
            namespace=gitops["namespace"],
            destination_server=gitops["destinationServer"],
        ),
        ngc=Ngc(
            api_key_secret=ngc["apiKeySecret"],
            api_key_secret_key=ngc["apiKeySecretKey"],
            image_pull_secret=ngc["imagePullSecret"],
            external_secret=_build_external_secret(ngc.get("externalSecret"), cluster["region"],
                                                   top["ngc"]["properties"]["externalSecret"]["properties"]),
        ),
        models=tuple(replace(_build_model(model, block.storage_class, shared_cache, pools.get(model["nodePool"])),
                             route=gateway.route(model, front_door), **gateway.scale_to_zero(model))
                     for model in models),
        gateway=front_door,
        model_cache=shared_cache,
        block_storage=block,
        device_plugin=cluster.get("devicePlugin", "auto"),
        karpenter=Karpenter(cluster["karpenter"]["nodeRole"], cluster["karpenter"]["discoveryTag"])
        if "karpenter" in cluster else None,
        node_pools=tuple(_build_pool(pool, top["nodePools"]["items"]["properties"]) for pool in document.get("nodePools") or []),
        observability=_build_observability(document.get("observability") or {}, top["observability"]["properties"],
                                         block.storage_class),
        prerequisites=tuple(Prerequisite(Ref(item["kind"], item.get("namespace", ""), item["name"]), item["description"])
                            for item in document.get("prerequisites") or []),
        open_webui=_build_open_webui((document.get("addons") or {}).get("openWebUI") or {},
                                     top["addons"]["properties"]["openWebUI"]["properties"], block.storage_class),
    )


def _build_open_webui(spec: dict[str, Any], properties: dict[str, Any], block_class: str) -> OpenWebUI | None:
    spec = _with_schema_defaults(spec, properties)
    if not spec["enabled"]:
        return None
    persistence = _with_schema_defaults(spec.get("persistence") or {}, properties["persistence"]["properties"])
    resources = _with_schema_defaults(spec.get("resources") or {}, properties["resources"]["properties"])
    return OpenWebUI(namespace=spec["namespace"], image=ImageRef.parse(spec["image"]), secret=spec["secret"],
                     allow_signup=bool(spec["allowSignup"]), storage_size=persistence["size"],
                     storage_class=persistence.get("storageClassName", block_class), cpu=resources["cpu"],
                     memory=resources["memory"], secret_remote=spec.get("externalSecret", ""),
                     gateway_client=spec.get("gatewayClient", ""))


def _build_external_secret(spec: dict[str, Any] | None, region: str,
                           properties: dict[str, Any]) -> ExternalSecretRef | None:
    if not spec:
        return None
    spec = _with_schema_defaults(spec, properties)
    return ExternalSecretRef(spec["store"], spec["key"], spec.get("property", ""), spec.get("region", region),
                             spec["refreshInterval"])


def _build_observability(spec: dict[str, Any], properties: dict[str, Any], block_class: str) -> Observability | None:
    spec = _with_schema_defaults(spec, properties)
    if not spec["enabled"]:
        return None
    stack = _with_schema_defaults(spec.get("prometheusStack") or {}, properties["prometheusStack"]["properties"])
    adapter = _with_schema_defaults(spec.get("prometheusAdapter") or {}, properties["prometheusAdapter"]["properties"])
    dcgm = _with_schema_defaults(spec.get("dcgmExporter") or {}, properties["dcgmExporter"]["properties"])
    keda = _with_schema_defaults(spec.get("keda") or {}, properties["keda"]["properties"])
    alerts = _with_schema_defaults(spec.get("alerts") or {}, properties["alerts"]["properties"])
    alerting = _with_schema_defaults(spec.get("alerting") or {}, properties["alerting"]["properties"])
    default_url = f"http://{PROMETHEUS_STACK_RELEASE}-prometheus.{spec['namespace']}.svc:9090"
    return Observability(
        namespace=spec["namespace"],
        metrics_path=spec["metricsPath"],
        scrape_interval=spec["scrapeInterval"],
        prometheus_stack=stack["enabled"],
        prometheus_stack_version=stack["chartVersion"],
        adapter_version=adapter["chartVersion"],
        dcgm_exporter=dcgm["enabled"],
        dcgm_exporter_version=dcgm["chartVersion"],
        keda_version=keda["chartVersion"],
        prometheus_url=spec.get("prometheusUrl", default_url),
        grafana_admin_secret=spec["grafanaAdminSecret"],
        grafana_admin_remote=spec.get("grafanaAdminExternalSecret", ""),
        alerts=Alerts(float(alerts["ttftP95Seconds"]), float(alerts["kvCacheUsage"]), float(alerts["queueWaiting"]),
                      float(alerts["failureRatio"]), int(alerts["pendingMinutes"])),
        storage=_build_monitoring_storage(stack.get("storage") or {}, properties["prometheusStack"]["properties"]
                                          ["storage"]["properties"], block_class) if stack["enabled"] else None,
        receivers=tuple(_build_receiver(item, properties["alerting"]["properties"]["receivers"]["items"]["properties"])
                        for item in alerting.get("receivers") or []),
        repeat_interval=alerting["repeatInterval"],
    )


# Paging on warnings wears on-call down: PagerDuty gets outages only unless the receiver says otherwise.
DEFAULT_SEVERITIES: dict[str, tuple[str, ...]] = {"pagerduty": ("critical",)}


def _build_receiver(spec: dict[str, Any], properties: dict[str, Any]) -> Receiver:
    spec = _with_schema_defaults(spec, properties)
    severities = spec.get("severities") or DEFAULT_SEVERITIES.get(spec["type"], ("critical", "warning"))
    return Receiver(spec["name"], spec["type"], spec.get("externalSecret", ""), tuple(severities),
                    spec.get("channel", ""), bool(spec["sendResolved"]), spec.get("topicArn", ""))


def _build_monitoring_storage(spec: dict[str, Any], properties: dict[str, Any], block_class: str) -> MonitoringStorage:
    spec = _with_schema_defaults(spec, properties)
    retention_size = spec.get("retentionSize") or _default_retention_size(spec["size"])
    return MonitoringStorage(spec.get("storageClassName", block_class), spec["size"], spec["retention"],
                             retention_size, spec["alertmanagerSize"])


def _default_retention_size(size: str) -> str:
    """80% of the volume (Prometheus' WAL and compactions need the rest), in whole GiB (MiB when under 4 GiB)."""
    kept = int(parse_quantity(size) * 8 // 10)
    return f"{kept // 2**30}GiB" if kept >= 4 * 2**30 else f"{max(kept // 2**20, 1)}MiB"


def _build_pool(pool: dict[str, Any], properties: dict[str, Any]) -> NodePool:
    pool = _with_schema_defaults(pool, properties)
    return NodePool(
        name=pool["name"],
        instance_families=tuple(pool.get("instanceFamilies") or ()),
        instance_types=tuple(pool.get("instanceTypes") or ()),
        capacity_types=tuple(pool["capacityTypes"]),
        architecture=pool["architecture"],
        gpu_limit=pool["gpuLimit"],
        ami_family=pool["amiFamily"],
        ami_version=pool["amiVersion"],
        disk_size=pool["diskSize"],
        consolidate_after=pool["consolidateAfter"],
        expire_after=pool["expireAfter"],
        termination_grace_period=pool["terminationGracePeriod"],
        disruption_budget=pool["disruptionBudget"],
        min_gpu_memory_mib=capacity.gpu_memory_floor_mib(pool),
        reservations=tuple(CapacityReservation(item["instanceType"], item["instances"], item.get("id", ""),
                                               tuple(sorted((item.get("tags") or {}).items())), item.get("ownerID", ""))
                           for item in pool.get("capacityReservations") or ()),
        reserved_hourly_usd=float(pool["reservedHourlyUsd"]),
        spot_per_on_demand=pool.get("spotPerOnDemand", 0),
    )


def _with_schema_defaults(data: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """`data` with the schema's `default` filled in for absent keys."""
    out = {key: spec["default"] for key, spec in properties.items() if "default" in spec}
    out.update(data)
    return out


def _build_model(model: Any, block_class: str, shared_cache: ModelCache | None = None,
                 pool: dict[str, Any] | None = None) -> Model:
    gpus = int(model_value(model, "gpus"))
    sized = default_resources(gpus)
    resources_ = model.get("resources") or {}
    replicas = model_value(model, "replicas")
    autoscaling = _with_schema_defaults(
        model.get("autoscaling") or {}, environment_schema()["$defs"]["autoscaling"]["properties"]
    )
    workload = model_value(model, "workload")
    profile = profiles.profile_id(model, pool)  # a selection resolves to an id (the checks made sure it does)
    warmup = _with_schema_defaults(
        model.get("cacheWarmup") or {},
        environment_schema()["properties"]["models"]["items"]["properties"]["cacheWarmup"]["properties"])
    # Per-replica claims survive restarts but exist only for StatefulSets.
    if model.get("cache"):
        cache = model["cache"]
    elif shared_cache:
        # One directory per model on the namespace's shared claim: replicas share one download.
        cache = {"type": "existingClaim", "claimName": shared_cache.claim_name, "subPath": model["name"]}
    else:
        cache = {"type": "claimTemplate" if workload == "StatefulSet" else "emptyDir"}
    return Model(
        name=model["name"],
        image=ImageRef.parse(model["image"]),
        served_model_name=model_value(model, "servedModelName"),
        gpus=gpus,
        node_pool=model["nodePool"],
        min_replicas=replicas["min"],
        max_replicas=replicas["max"],
        namespace=model_value(model, "namespace"),
        env=tuple(sorted((name, str(value)) for name, value in (model.get("env") or {}).items())),
        secret_env=tuple(
            SecretEnvVar(name=name, secret=ref["secret"], key=ref["key"])
            for name, ref in sorted((model.get("secretEnv") or {}).items())
        ),
        autoscaling_engine=autoscaling["engine"],
        autoscaling_metric=autoscaling["metric"],
        autoscaling_target=autoscaling["target"],
        scale_down_stabilization_seconds=autoscaling["scaleDownStabilizationSeconds"],
        workload=workload,
        cpu=resources_.get("cpu", sized["cpu"]),
        memory=resources_.get("memory", sized["memory"]),
        shared_memory=model.get("sharedMemory") or sized["sharedMemory"],
        cache_type=cache["type"],
        cache_size=cache.get("size", DEFAULT_CACHE_SIZE),
        # Block claims never rely on a default StorageClass (EKS 1.30+ clusters have none).
        cache_storage_class=cache.get("storageClassName", block_class if cache["type"] == "claimTemplate" else ""),
        cache_claim_name=cache.get("claimName", ""),
        cache_sub_path=cache.get("subPath", ""),
        startup_timeout_minutes=model_value(model, "startupTimeoutMinutes"),
        do_not_disrupt=bool(model.get("doNotDisrupt", False)),
        precision=model.get("precision", "bf16"),
        parameters=model.get("parameters"),
        # A warm-up that lists no profiles downloads the one the model runs.
        warmup_profiles=tuple(warmup.get("profiles") or ((profile,) if "cacheWarmup" in model and profile else ())),
        warmup_timeout_minutes=warmup["timeoutMinutes"],
        surge=model_value(model, "rollout")["surge"],
        request_timeout_seconds=model_value(model, "requestTimeoutSeconds"),
        profile=profile,
        on_demand_replicas=model.get("onDemandReplicas", 0),
    )
