"""The model workload: one Application of nimgen's nim-llm chart per model, in the environment's own project."""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components import availability, profiles
from nimgen.components.base import Add, AppSpec, Chart, Component, Grants, Kind, Project
from nimgen.components.model_values import chart_values, model_labels
from nimgen.model import Environment, Model, Prerequisite, Ref

CHART = Chart("nim-llm")
# After the platform (negative waves) and before the add-ons.
WAVE = 0
# The chart's Service: named after the model (fullnameOverride), port http-openai.
SERVICE_PORT = 8000

# Kinds the nim-llm chart renders; the AppProject admits exactly these in model namespaces.
NAMESPACED_KINDS: tuple[Kind, ...] = (
    ("", "Service"),
    ("", "ServiceAccount"),
    ("", "PersistentVolumeClaim"),
    ("apps", "StatefulSet"),
    ("apps", "Deployment"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "NetworkPolicy"),
)
# Admitted only when a model fills its cache with a warm-up Job.
WARMUP_KINDS: tuple[Kind, ...] = (("batch", "Job"),)
# What the chart adds when monitoring is on, and when a model scales through KEDA.
MONITORING_KINDS: tuple[Kind, ...] = (
    ("monitoring.coreos.com", "ServiceMonitor"), ("monitoring.coreos.com", "PrometheusRule"))
KEDA_KINDS: tuple[Kind, ...] = (("keda.sh", "ScaledObject"),)


def model_url(model: Model) -> str:
    """A model's OpenAI base URL inside the cluster (the Service the nim-llm chart renders for it)."""
    return f"http://{model.name}.{model.namespace}.svc.cluster.local:{SERVICE_PORT}/v1"


def application(env: Environment, model: Model) -> AppSpec:
    """The child Application rendering the nim-llm chart with the model's values."""
    ignore: tuple[dict[str, object], ...] = ()
    if model.autoscaled:
        # The HPA owns spec.replicas (the chart omits it): without this, self-heal and
        # the HPA would undo each other forever.
        ignore = ({"group": "apps", "kind": model.workload, "name": model.name, "namespace": model.namespace,
                   "jsonPointers": ["/spec/replicas"]},)
    return AppSpec(
        name=model.name, chart=CHART, values=chart_values(env, model), namespace=model.namespace, wave=WAVE,
        labels=model_labels(env, model),
        info=(("Image", str(model.image)), ("GPUs per replica", str(model.gpus)),
              ("Replicas", f"{model.min_replicas}-{model.max_replicas}" + (f" (+{model.surge} surge)" if model.surge else "")),
              ("Node pool", model.node_pool)),
        ignore_differences=ignore,
    )


class Models(Component):
    """Every model of the environment."""

    project: ClassVar[Project] = "models"
    readme: ClassVar[dict[str, str]] = {"prerequisites": "readme/models-prerequisites.md.j2"}

    def enabled(self, env: Environment) -> bool:
        return True  # the chart is written even before the first model, so adding one changes one file

    def applications(self, env: Environment) -> list[AppSpec]:
        return [application(env, model) for model in env.models]

    def charts(self, env: Environment) -> tuple[str, ...]:
        return (CHART.name,)

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        availability.check(document, models, add)
        profiles.check(document, models, add)

    def grants(self, env: Environment) -> Grants:
        kinds = NAMESPACED_KINDS
        if any(model.warmup_profiles for model in env.models):
            kinds += WARMUP_KINDS
        if env.observability:
            kinds += MONITORING_KINDS
        if env.uses_keda:
            kinds += KEDA_KINDS
        return Grants(namespaced_kinds=kinds, namespaces=env.namespaces)

    def prerequisites(self, env: Environment) -> tuple[Prerequisite, ...]:
        found: list[Prerequisite] = []
        if env.ngc.external_secret is None:
            for namespace in env.namespaces:
                found += [Prerequisite(Ref("Secret", namespace, env.ngc.api_key_secret),
                                       "the NGC API key of the NIM pods (ngc.apiKeySecret); or set ngc.externalSecret"),
                          Prerequisite(Ref("Secret", namespace, env.ngc.image_pull_secret),
                                       "the nvcr.io pull Secret of the NIM pods (ngc.imagePullSecret); or set "
                                       "ngc.externalSecret")]
        shared_claim = env.model_cache.claim_name if env.model_cache else None
        own_classes = {env.block_storage.storage_class, env.model_cache.storage_class if env.model_cache else ""}
        for model in env.models:
            found += [Prerequisite(Ref("Secret", model.namespace, var.secret),
                                   f"model {model.name} reads {var.name} from key {var.key} (secretEnv)")
                      for var in model.secret_env]
            if model.cache_type == "existingClaim" and model.cache_claim_name != shared_claim:
                found.append(Prerequisite(Ref("PersistentVolumeClaim", model.namespace, model.cache_claim_name),
                                          f"the model cache of {model.name} (cache.claimName)"))
            if model.cache_type == "claimTemplate" and model.cache_storage_class not in own_classes:
                found.append(Prerequisite(Ref("StorageClass", "", model.cache_storage_class),
                                          f"the cache claims of {model.name} (cache.storageClassName)"))
        return tuple(dict.fromkeys(found))
