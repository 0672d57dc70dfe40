"""Secrets from AWS Secrets Manager through External Secrets Operator: nimgen's platform-secrets chart.

The NGC API key and pull Secrets in every model namespace (ngc.externalSecret), Grafana's admin
(observability.grafanaAdminExternalSecret), the Alertmanager receivers' URLs and keys
(observability.alerting.receivers), Open WebUI's key and first admin (addons.openWebUI.externalSecret), the
gateway's API keys (gateway.auth.apiKeys) and Open WebUI's own one (addons.openWebUI.gatewayClient).
One ClusterSecretStore serves them all, and only their namespaces. The Application syncs right after the
projects, before everything that reads a Secret: kube-prometheus-stack's Grafana at wave -15 would
otherwise wait for a Secret that a later wave creates, and hold back every wave after it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components import alerting, gateway, openwebui
from nimgen.components.base import AppSpec, Chart, Component, Grants, Kind
from nimgen.model import Environment

CHART = Chart("platform-secrets")
RELEASE_NAME = "platform-secrets"
# Before every Application that reads one of these Secrets (the monitoring stack is at -15).
WAVE = -18
DEFAULT_STORE = "aws-secrets-manager"
DEFAULT_REFRESH = "1h"
# What the chart renders, for the platform AppProject.
CLUSTER_KINDS: tuple[Kind, ...] = (("external-secrets.io", "ClusterSecretStore"), ("", "Namespace"))
NAMESPACED_KINDS: tuple[Kind, ...] = (("external-secrets.io", "ExternalSecret"),)
GRAFANA_KEYS = ("admin-user", "admin-password")
OPEN_WEBUI_KEYS = ("WEBUI_SECRET_KEY", "WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD")


def platform_secrets(env: Environment) -> list[dict[str, Any]]:
    """The Secrets besides NGC's: Grafana's admin, the alert receivers' and Open WebUI's, from Secrets Manager."""
    found = []
    obs = env.observability
    if obs is not None and obs.prometheus_stack and obs.grafana_admin_remote:
        found.append({"name": obs.grafana_admin_secret, "namespace": obs.namespace,
                      "remoteKey": obs.grafana_admin_remote, "keys": list(GRAFANA_KEYS)})
    if obs is not None and obs.prometheus_stack:
        found += alerting.receiver_secrets(obs)
    webui = env.open_webui
    if webui is not None and webui.secret_remote:
        found.append({"name": webui.secret, "namespace": webui.namespace, "remoteKey": webui.secret_remote,
                      "keys": list(OPEN_WEBUI_KEYS)})
    return found + gateway.api_key_secrets(env) + openwebui.gateway_key_secrets(env)


def namespaces(env: Environment) -> tuple[str, ...]:
    """Every namespace a Secret of this chart lives in."""
    ngc = env.namespaces if env.ngc.external_secret else ()
    return tuple(sorted({*ngc, *(secret["namespace"] for secret in platform_secrets(env))}))


def values(env: Environment) -> dict[str, Any]:
    """Values for charts/platform-secrets."""
    ref = env.ngc.external_secret
    others = platform_secrets(env)
    # Created here, in the first wave after the projects: every later Application finds its namespace.
    created = list(namespaces(env))
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "store": {"name": ref.store if ref else DEFAULT_STORE, "create": True, "region": ref.region if ref else env.region},
        "refreshInterval": ref.refresh_interval if ref else DEFAULT_REFRESH,
        "createNamespaces": created,
        "ngc": {
            "enabled": ref is not None,
            "remote": {"key": ref.key if ref else "", "property": ref.property if ref else ""},
            "namespaces": list(env.namespaces) if ref else [],
            "apiKeySecret": {"name": env.ngc.api_key_secret, "key": env.ngc.api_key_secret_key},
            "pullSecret": {"name": env.ngc.image_pull_secret, "registry": "nvcr.io"},
        },
        "secrets": others,
    }


class PlatformSecrets(Component):
    """Every Secret nimgen's workloads read that comes from Secrets Manager."""

    application_names: ClassVar[tuple[str, ...]] = (RELEASE_NAME,)
    readme: ClassVar[dict[str, str]] = {"prerequisites": "readme/secrets-prerequisites.md.j2"}

    def enabled(self, env: Environment) -> bool:
        return bool(namespaces(env))

    def applications(self, env: Environment) -> list[AppSpec]:
        ngc = env.ngc.external_secret
        described = [("NGC (Secrets Manager)", ngc.key)] if ngc else []
        described += [(f"{secret['namespace']}/{secret['name']}", secret["remoteKey"]) for secret in platform_secrets(env)]
        return [AppSpec(RELEASE_NAME, CHART, values(env), namespaces(env)[0], WAVE, tuple(described))]

    def grants(self, env: Environment) -> Grants:
        return Grants(CLUSTER_KINDS, NAMESPACED_KINDS, namespaces(env))
