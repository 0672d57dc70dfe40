"""Typed, validated view of an environment: what render() consumes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from nimgen.errors import Problem
from nimgen.imageref import (
    ImageRef as ImageRef,  # re-exported: the model's image type lives with its grammar
)

_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?")
_FACTORS: dict[str | None, Decimal | int] = {
    None: 1, "m": Decimal("0.001"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(text: str) -> Decimal:
    """Value of a Kubernetes quantity string ("24Gi", "500m", "8") in base units."""
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    try:
        return Decimal(match.group(1)) * Decimal(_FACTORS[match.group(2)])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from exc


# Namespaces nimgen never deploys into (besides Argo CD's own).
RESERVED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})


@dataclass(frozen=True, order=True)
class Ref:
    """An object by kind, namespace ("" when cluster-scoped) and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Prerequisite:
    """An object someone must provide before the first sync, and what needs it (for the bootstrap checklist)."""

    ref: Ref
    why: str


@dataclass(frozen=True)
class Waiver:
    """A serving-safety rule a container of an upstream chart cannot meet, and why: validate reports it as a notice."""

    rule: str  # a policy rule: "probes", "non-root", "resources", "pinned-image"
    workload: Ref  # the pod's owner (DaemonSet nvidia-device-plugin/nvidia-device-plugin)
    container: str
    reason: str


@dataclass(frozen=True)
class SecretEnvVar:
    """An environment variable read from an existing Secret."""

    name: str
    secret: str
    key: str


@dataclass(frozen=True)
class Route:
    """How the gateway serves one model: the names callers send as `model`, and who may call it."""

    names: tuple[str, ...]  # the public name first, then its aliases
    public: bool = False  # served without authentication
    tokens_per_minute: int | None = None  # per client on this model (None: the gateway's per-model budget)


@dataclass(frozen=True)
class Model:
    """One NIM LLM, with every default applied."""

    name: str
    image: ImageRef
    served_model_name: str
    gpus: int
    node_pool: str
    min_replicas: int
    max_replicas: int
    namespace: str
    env: tuple[tuple[str, str], ...]
    secret_env: tuple[SecretEnvVar, ...]
    autoscaling_metric: str
    autoscaling_target: float
    scale_down_stabilization_seconds: int
    workload: str
    cpu: str
    memory: str
    shared_memory: str
    cache_type: str
    cache_size: str
    cache_storage_class: str
    cache_claim_name: str
    startup_timeout_minutes: int
    do_not_disrupt: bool = False
    precision: str = "bf16"
    parameters: float | None = None  # declared for models outside nimgen's catalog
    cache_sub_path: str = ""
    warmup_profiles: tuple[str, ...] = ()  # download-to-cache profiles; empty: no warm-up Job
    warmup_timeout_minutes: int = 60
    autoscaling_engine: str = "hpa"  # hpa (prometheus-adapter) or keda (ScaledObject)
    surge: int = 0  # spare replicas a rollout starts before old ones stop (Deployments only)
    request_timeout_seconds: int = 300  # longest request: how long a stopping replica drains
    profile: str = ""  # NIM_MODEL_PROFILE ("" : NIM picks by its GPUs, unless the warm-up names one profile)
    on_demand_replicas: int = 0  # Spot with a floor: replicas kept On-Demand (0: no floor)
    route: Route | None = None  # how the environment's gateway serves it (None: not through the gateway)
    scale_to_zero: bool = False  # KEDA stops the last replica when the gateway sees no request for it
    scale_to_zero_cooldown_seconds: int = 1800

    @property
    def peak_replicas(self) -> int:
        """Replicas at full scale while a rollout runs: max replicas plus the surge."""
        return self.max_replicas + self.surge

    @property
    def autoscaled(self) -> bool:
        """An autoscaler owns the replica count only when there is a range to scale in (down to 0 included)."""
        return self.max_replicas > self.min_replicas or self.scale_to_zero

    @property
    def keda_scaled(self) -> bool:
        """A KEDA ScaledObject (not nimgen's own HPA) owns the replica count."""
        return self.autoscaled and self.autoscaling_engine == "keda"


@dataclass(frozen=True)
class GitOps:
    """How Argo CD reaches this repository and the cluster."""

    repo_url: str
    target_revision: str
    namespace: str
    destination_server: str


@dataclass(frozen=True)
class ExternalSecretRef:
    """Where External Secrets Operator reads the NGC API key (AWS Secrets Manager)."""

    store: str
    key: str
    property: str
    region: str
    refresh_interval: str


@dataclass(frozen=True)
class Ngc:
    """References to the NGC Secrets in every model namespace (existing, or made by External Secrets)."""

    api_key_secret: str
    api_key_secret_key: str
    image_pull_secret: str
    external_secret: ExternalSecretRef | None = None


@dataclass(frozen=True)
class Karpenter:
    """Cluster facts every EC2NodeClass needs."""

    node_role: str
    discovery_tag: str


@dataclass(frozen=True)
class CapacityReservation:
    """An On-Demand Capacity Reservation or Capacity Block the pool's EC2NodeClass selects, and what it holds."""

    instance_type: str
    instances: int
    id: str = ""  # either id, or tags (with an optional owner)
    tags: tuple[tuple[str, str], ...] = ()
    owner_id: str = ""

    def selector_term(self) -> dict[str, Any]:
        """Its EC2NodeClass capacityReservationSelectorTerms entry."""
        if self.id:
            return {"id": self.id}
        term: dict[str, Any] = {"tags": dict(self.tags)}
        if self.owner_id:
            term["ownerID"] = self.owner_id
        return term


@dataclass(frozen=True)
class NodePool:
    """A Karpenter GPU node pool (NodePool plus EC2NodeClass of the same name)."""

    name: str
    instance_families: tuple[str, ...]
    instance_types: tuple[str, ...]
    capacity_types: tuple[str, ...]
    architecture: str
    gpu_limit: int
    ami_family: str
    ami_version: str
    disk_size: str
    consolidate_after: str
    expire_after: str
    termination_grace_period: str
    disruption_budget: str
    min_gpu_memory_mib: int | None = None  # instance-gpu-memory floor, per GPU
    reservations: tuple[CapacityReservation, ...] = ()
    reserved_hourly_usd: float = 0.0  # plan's price of a reserved instance-hour (0: already paid)
    spot_per_on_demand: int = 0  # Spot with a floor: Spot nodes per On-Demand node (0: one NodePool)

    @property
    def ami_alias(self) -> str:
        """`amiSelectorTerms` alias, e.g. al2023@v20251112."""
        return f"{self.ami_family}@{self.ami_version}"


@dataclass(frozen=True)
class ModelCache:
    """The shared EFS model cache."""

    file_system_id: str
    size: str
    storage_class: str
    claim_name: str


@dataclass(frozen=True)
class BlockStorage:
    """nimgen's encrypted gp3 EBS StorageClass, for the block claims that name no class of their own."""

    storage_class: str = "nimgen-gp3"
    kms_key_id: str = ""
    reclaim_policy: str = "Delete"


@dataclass(frozen=True)
class Alerts:
    """Alert thresholds of an environment."""

    ttft_p95_seconds: float
    kv_cache_usage: float
    queue_waiting: float
    failure_ratio: float
    pending_minutes: int


@dataclass(frozen=True)
class Receiver:
    """An Alertmanager receiver: a URL or key External Secrets copies from AWS Secrets Manager, or an SNS topic."""

    name: str
    type: str  # slack | pagerduty | webhook | sns
    remote_key: str  # Secrets Manager secret: a JSON object holding `url` or `routing-key` ("" for sns)
    severities: tuple[str, ...]  # alert severities routed to it
    channel: str = ""  # Slack channel override ("" = the webhook's own channel)
    send_resolved: bool = True
    topic_arn: str = ""  # sns: the topic, published to with Alertmanager's own AWS identity (EKS Pod Identity)


@dataclass(frozen=True)
class MonitoringStorage:
    """Persistent volumes of Prometheus and Alertmanager, and how much Prometheus keeps."""

    storage_class: str
    size: str = "50Gi"
    retention: str = "15d"
    retention_size: str = "40GiB"  # below `size`: the WAL and compactions need room
    alertmanager_size: str = "1Gi"


@dataclass(frozen=True)
class Observability:
    """The monitoring stack and per-model scraping."""

    namespace: str
    metrics_path: str
    scrape_interval: str
    prometheus_stack: bool
    prometheus_stack_version: str
    adapter_version: str
    dcgm_exporter: bool
    dcgm_exporter_version: str
    keda_version: str
    prometheus_url: str
    grafana_admin_secret: str
    alerts: Alerts
    # Secrets Manager secret External Secrets makes grafana_admin_secret from ("" = the Secret must exist).
    grafana_admin_remote: str = ""
    storage: MonitoringStorage | None = None  # None: no kube-prometheus-stack
    receivers: tuple[Receiver, ...] = ()  # none: Alertmanager keeps the chart's config (sends nowhere)
    repeat_interval: str = "4h"  # how often a firing alert is sent again


@dataclass(frozen=True)
class OpenWebUI:
    """The Open WebUI add-on: a chat front end for every model of the environment."""

    namespace: str
    image: ImageRef
    secret: str  # existing Secret: WEBUI_SECRET_KEY, and the first admin's WEBUI_ADMIN_EMAIL/PASSWORD
    allow_signup: bool
    storage_size: str
    storage_class: str
    cpu: str
    memory: str
    # Secrets Manager secret External Secrets makes `secret` from ("" = the Secret must exist).
    secret_remote: str = ""
    # Chat through the gateway as this API-key client ("" = call each model's Service directly).
    gateway_client: str = ""


@dataclass(frozen=True)
class Gateway:
    """The environment's front door: one HTTPS, OpenAI-compatible endpoint (Envoy Gateway + Envoy AI Gateway)."""

    namespace: str
    hostname: str
    scheme: str  # internal | internet-facing
    source_ranges: tuple[str, ...] = ()
    acm_certificate_arn: str = ""  # TLS ends at the load balancer
    cert_issuer: str = ""  # or at Envoy, with a certificate this cert-manager issuer signs
    cert_issuer_kind: str = "ClusterIssuer"
    api_keys_remote: str = ""  # Secrets Manager secret: client -> API key
    api_key_clients: tuple[str, ...] = ()
    api_keys_secret: str = "gateway-api-keys"
    oidc_issuer: str = ""
    oidc_jwks_uri: str = ""
    oidc_audiences: tuple[str, ...] = ()
    oidc_client_claim: str = "sub"
    tokens_per_client: int | None = None  # per minute, across models
    tokens_per_model: int | None = None  # per minute, per client and model

    @property
    def authenticated(self) -> bool:
        """Whether callers must prove who they are (API keys or OIDC)."""
        return bool(self.api_key_clients or self.oidc_issuer)


@dataclass(frozen=True)
class Environment:
    """A validated environment file, layered over its defaults."""

    name: str
    source: str  # path of the environment file, relative to the output root, for headers
    defaults_source: str  # same for _defaults.yaml, or "" when there is none
    description: str
    production: bool
    cluster_name: str
    region: str
    kubernetes_version: str
    gitops: GitOps
    ngc: Ngc
    models: tuple[Model, ...]
    karpenter: Karpenter | None = None
    node_pools: tuple[NodePool, ...] = ()
    model_cache: ModelCache | None = None
    block_storage: BlockStorage = BlockStorage()
    device_plugin: str = "auto"
    observability: Observability | None = None  # None: monitoring is not nimgen's
    open_webui: OpenWebUI | None = None  # None: no chat front end
    gateway: Gateway | None = None  # None: models are reached inside the cluster only
    # Objects someone provides before the first sync, beyond those the settings imply (environment `prerequisites`).
    prerequisites: tuple[Prerequisite, ...] = ()
    # Findings that do not stop a render (e.g. a pool no model uses).
    warnings: tuple[Problem, ...] = ()

    @property
    def uses_adapter(self) -> bool:
        """Whether some model's HPA reads a Pods metric that prometheus-adapter must serve."""
        return any(model.autoscaled and not model.keda_scaled for model in self.models)

    @property
    def uses_keda(self) -> bool:
        """Whether some model scales through KEDA (which then must be installed)."""
        return any(model.keda_scaled for model in self.models)

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Distinct model namespaces, sorted."""
        return tuple(sorted({model.namespace for model in self.models}))
