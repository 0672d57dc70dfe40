"""Helm values of the model-storage chart: the shared EFS model cache."""

from __future__ import annotations

from typing import Any

from nimgen.environment.model import Environment

CHART_NAME = "model-storage"
CHART_PATH = f"charts/{CHART_NAME}"
RELEASE_NAME = "model-storage"


def storage_values(env: Environment) -> dict[str, Any]:
    """Values for charts/model-storage: the StorageClass and one claim per model namespace."""
    cache = env.model_cache
    assert cache is not None, "only called for environments with storage.modelCache"
    namespaces = sorted({m.namespace for m in env.models if m.cache_claim_name == cache.claim_name})
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "storageClass": {"name": cache.storage_class, "fileSystemId": cache.file_system_id},
        "claims": {namespace: {"name": cache.claim_name, "size": cache.size} for namespace in namespaces},
    }


def claim_namespaces(env: Environment) -> tuple[str, ...]:
    """Namespaces that get a shared cache claim."""
    return tuple(storage_values(env)["claims"]) if env.model_cache else ()


def app_namespace(env: Environment) -> str:
    """Destination namespace of the storage Application (the claims carry their own namespaces)."""
    namespaces = claim_namespaces(env)
    return namespaces[0] if namespaces else env.namespaces[0] if env.namespaces else "nim"
