"""Helm values of the ngc-secrets chart: NGC credentials from AWS Secrets Manager via External Secrets Operator."""

from __future__ import annotations

from typing import Any

from nimgen.components import storage
from nimgen.environment.model import Environment

CHART_NAME = "ngc-secrets"
CHART_PATH = f"charts/{CHART_NAME}"
RELEASE_NAME = "ngc-secrets"
# What the chart renders, for the platform AppProject.
CLUSTER_KINDS: tuple[tuple[str, str], ...] = (("external-secrets.io", "ClusterSecretStore"), ("", "Namespace"))
NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (("external-secrets.io", "ExternalSecret"),)


def secrets_values(env: Environment) -> dict[str, Any]:
    """Values for charts/ngc-secrets: the store, the remote key, both Secrets in every model namespace."""
    ref = env.ngc.external_secret
    assert ref is not None, "only called for environments with ngc.externalSecret"
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "store": {"name": ref.store, "create": True, "region": ref.region},
        "refreshInterval": ref.refresh_interval,
        "remote": {"key": ref.key, "property": ref.property},
        "namespaces": list(env.namespaces),
        # model-storage already creates the namespaces that hold a cache claim.
        "createNamespaces": [ns for ns in env.namespaces if ns not in storage.claim_namespaces(env)],
        "apiKeySecret": {"name": env.ngc.api_key_secret, "key": env.ngc.api_key_secret_key},
        "pullSecret": {"name": env.ngc.image_pull_secret, "registry": "nvcr.io"},
    }
