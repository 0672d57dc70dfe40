"""The front door: one authenticated, OpenAI-compatible HTTPS endpoint for every model (docs/gateway-design.md).

Envoy Gateway runs the proxy behind an AWS Network Load Balancer; Envoy AI Gateway routes each request by its
`model` field, counts its tokens and limits them. Callers prove who they are with an API key (from Secrets
Manager, through External Secrets) or an OIDC token. This module turns the environment's `gateway:` section and
each model's `gateway:` into the typed model, and checks them across fields.
"""

from __future__ import annotations

from typing import Any

from nimgen.components.base import Add, Component
from nimgen.errors import shorten as _s
from nimgen.model import Environment, Gateway, Route


def build(spec: dict[str, Any]) -> Gateway | None:
    """The environment's gateway (schema defaults applied by the caller), or None when it is off."""
    if not spec.get("enabled"):
        return None
    tls = spec.get("tls") or {}
    auth = spec.get("auth") or {}
    keys, oidc = auth.get("apiKeys") or {}, auth.get("oidc") or {}
    limits = spec.get("rateLimits") or {}
    issuer = tls.get("certManager") or {}
    return Gateway(
        namespace=spec["namespace"], hostname=spec.get("hostname", ""), scheme=spec["scheme"],
        source_ranges=tuple(spec.get("sourceRanges") or ()),
        acm_certificate_arn=tls.get("acmCertificateArn", ""),
        cert_issuer=issuer.get("issuer", ""), cert_issuer_kind=issuer.get("kind", "ClusterIssuer"),
        api_keys_remote=keys.get("externalSecret", ""), api_key_clients=tuple(keys.get("clients") or ()),
        api_keys_secret=keys.get("secret", "gateway-api-keys"),
        oidc_issuer=oidc.get("issuer", ""), oidc_jwks_uri=oidc.get("jwksUri", ""),
        oidc_audiences=tuple(oidc.get("audiences") or ()), oidc_client_claim=oidc.get("clientClaim", "sub"),
        tokens_per_client=limits.get("tokensPerMinutePerClient"), tokens_per_model=limits.get("tokensPerMinutePerModel"),
    )


def route(model: dict[str, Any], gateway: Gateway | None) -> Route | None:
    """How the gateway serves one (layered) model; None without a gateway or when the model opts out."""
    spec = model.get("gateway") or {}
    if gateway is None or not spec.get("enabled", True):
        return None
    name = spec.get("name") or model.get("servedModelName") or model["name"]
    return Route((name, *(alias for alias in spec.get("aliases") or () if alias != name)),
                 public=bool(spec.get("public", False)), tokens_per_minute=spec.get("tokensPerMinute"))


def public_names(model: dict[str, Any]) -> list[str]:
    """The names a (layered, maybe schema-invalid) model answers to through the gateway."""
    spec = model.get("gateway") if isinstance(model.get("gateway"), dict) else {}
    if spec.get("enabled") is False:
        return []
    name = spec.get("name") or model.get("servedModelName") or model.get("name")
    aliases = spec.get("aliases") if isinstance(spec.get("aliases"), list) else []
    return [str(n) for n in (name, *aliases) if isinstance(n, str) and n]


def _name_path(index: int, model: dict[str, Any], own: dict[str, Any], position: int) -> list[Any]:
    """Where a model's public name number `position` (public_names order) is written."""
    if position > 0:
        return ["models", index, "gateway", "aliases"]
    if own.get("name"):
        return ["models", index, "gateway", "name"]
    return ["models", index, "servedModelName" if model.get("servedModelName") else "name"]


def check(document: Any, models: list[Any], add: Add) -> None:
    """A gateway needs a hostname and TLS; every model it serves needs a caller check or `public: true`; no two
    models may answer to the same name."""
    spec = document.get("gateway") if isinstance(document.get("gateway"), dict) else {}
    named = [m for m in models if isinstance(m, dict)]
    if not spec.get("enabled"):
        for index, model in enumerate(named):
            if isinstance(model.get("gateway"), dict) and model["gateway"].get("public"):
                add(["models", index, "gateway", "public"], f"model '{_s(model.get('name', '?'))}' is marked public "
                    "but the environment has no gateway", "enable gateway, or remove models[].gateway", warning=True)
        return
    base = ["gateway"]
    if not spec.get("hostname"):
        add(base, "the gateway has no hostname: callers and its certificate need one",
            "set gateway.hostname, e.g. llm.example.com")
    if not spec.get("tls"):
        add(base, "the gateway has no TLS: every listener must use it (API keys and prompts would cross the network "
            "in clear text)", "set gateway.tls.acmCertificateArn (TLS at the load balancer) or "
            "gateway.tls.certManager.issuer (TLS at Envoy)")
    authenticated = bool(spec.get("auth"))
    owners: dict[str, str] = {}
    served = 0
    for index, model in enumerate(named):
        names = public_names(model)
        if not names:
            continue
        served += 1
        own = model.get("gateway") if isinstance(model.get("gateway"), dict) else {}
        where = ["models", index, "gateway"]
        if not authenticated and not own.get("public"):
            add(where if own else ["models", index], f"model '{_s(model.get('name', '?'))}' would be served by the "
                "gateway without authentication", "set gateway.auth (apiKeys or oidc), mark the model "
                "gateway.public: true to serve it to anyone who reaches the endpoint, or set gateway.enabled: false "
                "on the model")
        for position, name in enumerate(names):
            other = owners.setdefault(name, str(model.get("name", "?")))
            if other != model.get("name"):
                add(_name_path(index, model, own, position),
                    f"models '{_s(other)}' and '{_s(model.get('name', '?'))}' both answer to '{_s(name)}' through the "
                    "gateway", "give one of them another gateway.name, or drop the alias")
    if served == 0:
        add(["gateway", "enabled"], "the gateway is enabled but serves no model", "serve a model through it, or "
            "disable gateway", warning=True)
    limits = spec.get("rateLimits") if isinstance(spec.get("rateLimits"), dict) else {}
    if limits and not authenticated:
        add(["gateway", "rateLimits"], "token limits per client need clients: without authentication every caller "
            "is one client", "set gateway.auth (apiKeys or oidc)")


class FrontDoor(Component):
    """gateway: the controllers, the Gateway behind its load balancer, a route per model and their policies."""

    def enabled(self, env: Environment) -> bool:
        return env.gateway is not None

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        check(document, models, add)
