"""The shared EFS model cache: nimgen's model-storage chart (StorageClass and a claim per model namespace)."""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components import platformsecrets
from nimgen.components.base import AppSpec, Chart, Component, Grants, Kind
from nimgen.model import Environment

CHART = Chart("model-storage")
CHART_PATH = CHART.path
RELEASE_NAME = "model-storage"
# Before the models that mount the claims.
WAVE = -10
CLUSTER_KINDS: tuple[Kind, ...] = (("storage.k8s.io", "StorageClass"),)
NAMESPACED_KINDS: tuple[Kind, ...] = (("", "PersistentVolumeClaim"),)


def storage_values(env: Environment) -> dict[str, Any]:
    """Values for charts/model-storage: the StorageClass and one claim per model namespace."""
    cache = env.model_cache
    assert cache is not None, "only called for environments with storage.modelCache"
    namespaces = sorted({m.namespace for m in env.models if m.cache_claim_name == cache.claim_name})
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "storageClass": {"name": cache.storage_class, "fileSystemId": cache.file_system_id},
        # platform-secrets (an earlier wave) creates the namespaces of its Secrets: one owner per object.
        "createNamespaces": [ns for ns in namespaces if ns not in platformsecrets.namespaces(env)],
        "claims": {namespace: {"name": cache.claim_name, "size": cache.size} for namespace in namespaces},
    }


def claim_namespaces(env: Environment) -> tuple[str, ...]:
    """Namespaces that get a shared cache claim."""
    return tuple(storage_values(env)["claims"]) if env.model_cache else ()


def app_namespace(env: Environment) -> str:
    """Destination namespace of the storage Application (the claims carry their own namespaces)."""
    namespaces = claim_namespaces(env)
    return namespaces[0] if namespaces else env.namespaces[0] if env.namespaces else "nim"


class ModelStorage(Component):
    """storage.modelCache: one EFS-backed claim per namespace, shared by its models."""

    application_names: ClassVar[tuple[str, ...]] = (RELEASE_NAME,)

    def enabled(self, env: Environment) -> bool:
        return env.model_cache is not None

    def applications(self, env: Environment) -> list[AppSpec]:
        assert env.model_cache is not None
        return [AppSpec(RELEASE_NAME, CHART, storage_values(env), app_namespace(env), WAVE,
                        (("EFS file system", env.model_cache.file_system_id),))]

    def grants(self, env: Environment) -> Grants:
        return Grants(CLUSTER_KINDS, NAMESPACED_KINDS, claim_namespaces(env))
