"""NGC credentials from AWS Secrets Manager via External Secrets Operator: nimgen's ngc-secrets chart."""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components import storage
from nimgen.components.base import AppSpec, Chart, Component, Grants, Kind
from nimgen.model import Environment

CHART = Chart("ngc-secrets")
RELEASE_NAME = "ngc-secrets"
# The Secrets must exist before a model pod starts (its image pull needs one of them).
WAVE = -10
# What the chart renders, for the platform AppProject.
CLUSTER_KINDS: tuple[Kind, ...] = (("external-secrets.io", "ClusterSecretStore"), ("", "Namespace"))
NAMESPACED_KINDS: tuple[Kind, ...] = (("external-secrets.io", "ExternalSecret"),)


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


class NgcSecrets(Component):
    """ngc.externalSecret: the NGC API key and pull Secret in every model namespace."""

    application_names: ClassVar[tuple[str, ...]] = (RELEASE_NAME,)
    readme: ClassVar[dict[str, str]] = {"prerequisites": "readme/ngcsecrets-prerequisites.md.j2"}

    def enabled(self, env: Environment) -> bool:
        return env.ngc.external_secret is not None

    def applications(self, env: Environment) -> list[AppSpec]:
        assert env.ngc.external_secret is not None
        return [AppSpec(RELEASE_NAME, CHART, secrets_values(env), env.namespaces[0], WAVE,
                        (("Secrets Manager", env.ngc.external_secret.key),))]

    def grants(self, env: Environment) -> Grants:
        return Grants(CLUSTER_KINDS, NAMESPACED_KINDS, env.namespaces)
