"""The front door: one authenticated, OpenAI-compatible HTTPS endpoint for every model (docs/gateway-design.md).

Envoy Gateway runs the proxy behind an AWS Network Load Balancer; Envoy AI Gateway routes each request by its
`model` field, counts its tokens and limits them. Callers prove who they are with an API key (from Secrets
Manager, through External Secrets) or an OIDC token. This module turns the environment's `gateway:` section and
each model's `gateway:` into the typed model, and checks them across fields.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components.base import Add, AppSpec, Chart, Component, Grants, Kind, setting
from nimgen.components.models import SERVICE_PORT
from nimgen.errors import shorten as _s
from nimgen.model import RESERVED_NAMESPACES, Environment, Gateway, Model, Ref, Route

# Envoy Gateway and Envoy AI Gateway publish their charts to Docker Hub as OCI artifacts. Argo CD reads a Helm
# repoURL without a scheme as an OCI registry (docs/gateway-design.md has the sources of these pins).
OCI_REPO = "registry-1.docker.io/envoyproxy"
# Envoy AI Gateway v1.1 is built and tested on Envoy Gateway v1.8 ("v1.8.1+", Envoy 1.38); v1.8.3 is its last patch.
ENVOY_GATEWAY = Chart("gateway-helm", OCI_REPO, "v1.8.3")
AI_GATEWAY_CRDS = Chart("ai-gateway-crds-helm", OCI_REPO, "v1.1.0")
AI_GATEWAY = Chart("ai-gateway-helm", OCI_REPO, "v1.1.0")
CHART = Chart("nim-gateway")
ENVOY_GATEWAY_RELEASE, AI_GATEWAY_CRDS_RELEASE, AI_GATEWAY_RELEASE = "envoy-gateway", "ai-gateway-crds", "ai-gateway"
RELEASE_NAME = "nim-gateway"
# Envoy Gateway runs its controller, the Envoy proxies and the rate limiter here; Envoy AI Gateway its controller.
ENVOY_GATEWAY_NAMESPACE = "envoy-gateway-system"
AI_GATEWAY_NAMESPACE = "envoy-ai-gateway-system"
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
# The AI Gateway controller's extension server, which Envoy Gateway calls while it translates routes.
EXTENSION_SERVER = {"hostname": f"ai-gateway-controller.{AI_GATEWAY_NAMESPACE}.svc.cluster.local", "port": 1063}
# The header authentication fills with the client's name (ClientTrafficPolicy removes any a caller sends).
CLIENT_HEADER = "x-nimgen-client"
# Controllers and CRDs first, with the other platform charts; the Gateway after the models, whose Services its
# routes point at.
WAVE_CONTROLLERS = -14
WAVE = 5
# What the four charts render with these values (gateway-helm's CRD subchart brings a ValidatingAdmissionPolicy
# that refuses to replace experimental-channel Gateway API CRDs with standard ones).
CONTROLLER_CLUSTER_KINDS: tuple[Kind, ...] = (
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"), ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("gateway.networking.k8s.io", "GatewayClass"),
)
NAMESPACED_KINDS: tuple[Kind, ...] = (
    ("", "ConfigMap"), ("", "Secret"), ("", "Service"), ("", "ServiceAccount"), ("apps", "Deployment"),
    ("batch", "Job"), ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("gateway.networking.k8s.io", "Gateway"), ("gateway.envoyproxy.io", "EnvoyProxy"),
    ("gateway.envoyproxy.io", "ClientTrafficPolicy"), ("gateway.envoyproxy.io", "SecurityPolicy"),
    ("gateway.envoyproxy.io", "BackendTrafficPolicy"), ("gateway.envoyproxy.io", "Backend"),
    ("aigateway.envoyproxy.io", "AIServiceBackend"), ("aigateway.envoyproxy.io", "AIGatewayRoute"),
)
MONITORING_KINDS: tuple[Kind, ...] = (("monitoring.coreos.com", "PodMonitor"),)
# ai-gateway-helm makes its webhook's certificate with genCA when `lookup` finds no Secret, and Argo CD's render
# never finds one: each refresh renders a new certificate. Argo CD keeps the one it created first.
AI_GATEWAY_IGNORE_DIFFERENCES: tuple[dict[str, Any], ...] = (
    {"kind": "Secret", "name": "self-signed-cert-for-mutating-webhook", "namespace": AI_GATEWAY_NAMESPACE,
     "jsonPointers": ["/data"]},
    {"group": "admissionregistration.k8s.io", "kind": "MutatingWebhookConfiguration",
     "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]},
)


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
    names = public_names(model) if gateway is not None else []
    if not names:
        return None
    spec = setting(model.get("gateway"))
    return Route(tuple(dict.fromkeys(names)), public=bool(spec.get("public", False)),
                 tokens_per_minute=spec.get("tokensPerMinute"))


def scale_to_zero(model: dict[str, Any]) -> dict[str, Any]:
    """The Model fields of a (layered) model's `scaleToZero`."""
    spec = model.get("scaleToZero") or {}
    return {"scale_to_zero": bool(spec.get("enabled", False)),
            "scale_to_zero_cooldown_seconds": int(spec.get("cooldownSeconds", 1800))}


def _check_scale_to_zero(document: Any, named: list[tuple[int, dict[str, Any]]], gateway_on: bool,
                         add: Add) -> None:
    """Scale to zero wakes on the gateway's requests through KEDA: it needs both, and production says so."""
    for index, model in named:
        spec = setting(model.get("scaleToZero"))
        if not spec.get("enabled"):
            continue
        where, name = ["models", index, "scaleToZero"], _s(str(model.get("name", "?")))
        own = setting(model.get("gateway"))
        if not gateway_on or own.get("enabled") is False:
            add(where, f"model '{name}' scales to zero, but no gateway serves it: nothing would see the request "
                "that wakes it", "enable gateway (and leave gateway.enabled on the model)")
        if setting(model.get("autoscaling")).get("engine") != "keda":
            add(where, f"model '{name}' scales to zero, which only a KEDA ScaledObject does", "set autoscaling.engine: "
                "keda")
        if document.get("production") and not spec.get("allowInProduction"):
            add(where, f"model '{name}' scales to zero in a production environment: callers get 503 for a cold "
                f"start of up to {model.get('startupTimeoutMinutes', 'startupTimeoutMinutes')} minutes",
                "set scaleToZero.allowInProduction: true if its callers accept that, or turn scaleToZero off")


def public_names(model: dict[str, Any]) -> list[str]:
    """The names a (layered, maybe schema-invalid) model answers to through the gateway."""
    spec = setting(model.get("gateway"))
    if spec.get("enabled") is False:
        return []
    name = spec.get("name") or model.get("servedModelName") or model.get("name")
    aliases = spec.get("aliases")
    names = [name, *(aliases if isinstance(aliases, list) else [])]
    return [n for n in names if isinstance(n, str) and n]


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
    spec = setting(document.get("gateway"))
    # Indexes are those of the file: a model that is no mapping keeps its place (the schema reports it).
    named = [(index, model) for index, model in enumerate(models) if isinstance(model, dict)]
    _check_scale_to_zero(document, named, bool(spec.get("enabled")), add)
    if not spec.get("enabled"):
        for index, model in named:
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
    namespace = spec.get("namespace", "nim-gateway")
    gitops = setting(document.get("gitops"))
    if namespace in RESERVED_NAMESPACES or namespace == gitops.get("namespace", "argocd"):
        add([*base, "namespace"], f"gateway namespace '{_s(str(namespace))}' is reserved",
            "run the gateway in its own namespace (default nim-gateway)")
    authenticated = bool(spec.get("auth"))
    owners: dict[str, str] = {}
    served = 0
    for index, model in named:
        names = public_names(model)
        if not names:
            continue
        served += 1
        own = setting(model.get("gateway"))
        where = ["models", index, "gateway"]
        if not model.get("servedModelName"):
            add(["models", index], f"model '{_s(model.get('name', '?'))}' is served through the gateway but has no "
                "servedModelName: the gateway must send NIM the model name it serves, and NIM's own default is known "
                "only once it runs", "set servedModelName (NIM_SERVED_MODEL_NAME), e.g. meta/llama3-8b-instruct, or "
                "gateway.enabled: false on the model")
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
    limits = setting(spec.get("rateLimits"))
    if limits and not authenticated:
        add(["gateway", "rateLimits"], "token limits per client need clients: without authentication every caller "
            "is one client", "set gateway.auth (apiKeys or oidc)")


def proxy_service(gateway: Gateway) -> str:
    """Name of the Envoy Service (fixed in the EnvoyProxy: Envoy Gateway would generate one)."""
    return f"{RELEASE_NAME}-{gateway.namespace}"[:63].rstrip("-")


def in_cluster_url(gateway: Gateway) -> str:
    """Base URL (ending in /v1) for clients inside the cluster, such as Open WebUI and benchmarks.

    With TLS at the load balancer, the Envoy Service itself on port 443, where the chart's in-cluster listener
    answers for the Service's name in plain HTTP (as every model's own Service does): the traffic stays in the
    cluster. With TLS at Envoy, port 443 speaks TLS with the public name's certificate only, so clients use the
    public endpoint (its name must resolve, and the load balancer admit the cluster, inside the cluster too).
    """
    if gateway.acm_certificate_arn:
        return f"http://{proxy_service(gateway)}.{ENVOY_GATEWAY_NAMESPACE}.svc.cluster.local:443/v1"
    return f"https://{gateway.hostname}/v1"


def redis_host(gateway: Gateway) -> str:
    """The rate limiter's Redis (nim-gateway chart), as Envoy Gateway's rate limit service reaches it."""
    return f"{RELEASE_NAME}-ratelimit-redis.{gateway.namespace}.svc.cluster.local:6379"


def limited(env: Environment) -> bool:
    """Whether some token budget applies (the chart then runs Redis and Envoy Gateway its rate limiter)."""
    gateway = env.gateway
    return gateway is not None and gateway.authenticated and (
        bool(gateway.tokens_per_client) or any(_tokens(gateway, model) for model in env.models if model.route))


def _tokens(gateway: Gateway, model: Model) -> int:
    assert model.route is not None
    return model.route.tokens_per_minute or gateway.tokens_per_model or 0


def envoy_gateway_values(env: Environment) -> dict[str, Any]:
    """gateway-helm: what Envoy AI Gateway needs of Envoy Gateway (its own values files), and the rate limiter."""
    assert env.gateway is not None
    hooks = {"translation": {part: {"includeAll": True} for part in ("listener", "route", "cluster", "secret")},
             "post": ["Translation", "Cluster", "Route"]}
    config: dict[str, Any] = {
        "gateway": {"controllerName": CONTROLLER_NAME},
        "provider": {"type": "Kubernetes"},
        "extensionApis": {"enableBackend": True, "enableEnvoyPatchPolicy": True},
        "extensionManager": {"hooks": {"xdsTranslator": hooks}, "service": {"fqdn": EXTENSION_SERVER}},
    }
    if limited(env):
        config["rateLimit"] = {"backend": {"type": "Redis", "redis": {"url": redis_host(env.gateway)}}}
    # The topology injector's webhook is a Helm hook whose CA certgen patches in later: Argo CD would put it back.
    return {"config": {"envoyGateway": config}, "createNamespace": False, "topologyInjector": {"enabled": False},
            "certgen": {"job": {"resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                              "limits": {"memory": "128Mi"}}}}}


def ai_gateway_values(env: Environment) -> dict[str, Any]:
    """ai-gateway-helm: token usage metrics split by client as well as by model."""
    return {"controller": {"metricsRequestHeaderAttributes": f"{CLIENT_HEADER}:nimgen.client",
                           "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                         "limits": {"memory": "512Mi"}}}}


def values(env: Environment) -> dict[str, Any]:
    """Values for charts/nim-gateway."""
    gateway = env.gateway
    assert gateway is not None
    mode = "loadBalancer" if gateway.acm_certificate_arn else "gateway"
    models = [{"name": model.name, "names": list(model.route.names), "servedName": model.served_model_name
               or model.route.names[0], "host": f"{model.name}.{model.namespace}.svc.cluster.local",
               "port": SERVICE_PORT, "public": model.route.public,
               "requestTimeoutSeconds": model.request_timeout_seconds,
               "tokensPerMinute": _tokens(gateway, model) if gateway.authenticated else 0}
              for model in env.models if model.route is not None]
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "gatewayClassName": f"{RELEASE_NAME}-{gateway.namespace}",
        "hostname": gateway.hostname,
        "tls": {"mode": mode, "certificateArn": gateway.acm_certificate_arn, "issuer": gateway.cert_issuer,
                "issuerKind": gateway.cert_issuer_kind, "secretName": f"{RELEASE_NAME}-tls"},
        "loadBalancer": {"scheme": gateway.scheme, "sourceRanges": list(gateway.source_ranges)},
        "proxy": {"namespace": ENVOY_GATEWAY_NAMESPACE, "serviceName": proxy_service(gateway)},
        "clientHeader": CLIENT_HEADER,
        "inCluster": {"enabled": mode == "loadBalancer"},
        "auth": {"apiKeys": {"enabled": bool(gateway.api_key_clients), "secret": gateway.api_keys_secret},
                 "oidc": {"enabled": bool(gateway.oidc_issuer), "issuer": gateway.oidc_issuer,
                          "jwksUri": gateway.oidc_jwks_uri or f"{gateway.oidc_issuer.rstrip('/')}/.well-known/jwks.json"
                          if gateway.oidc_issuer else "",
                          "audiences": list(gateway.oidc_audiences), "clientClaim": gateway.oidc_client_claim}},
        "models": models,
        "rateLimits": {"tokensPerMinutePerClient": gateway.tokens_per_client or 0 if gateway.authenticated else 0},
        "metrics": {"podMonitor": bool(env.observability and env.observability.prometheus_stack)},
    }


def api_key_secrets(env: Environment) -> list[dict[str, Any]]:
    """The API keys' Secret, for External Secrets (platform-secrets): one key per client, from Secrets Manager."""
    gateway = env.gateway
    if gateway is None or not gateway.api_key_clients:
        return []
    return [{"name": gateway.api_keys_secret, "namespace": gateway.namespace, "remoteKey": gateway.api_keys_remote,
             "keys": list(gateway.api_key_clients)}]


class FrontDoor(Component):
    """gateway: the controllers, the Gateway behind its load balancer, a route per model and their policies."""

    application_names: ClassVar[tuple[str, ...]] = (ENVOY_GATEWAY_RELEASE, AI_GATEWAY_CRDS_RELEASE,
                                                     AI_GATEWAY_RELEASE, RELEASE_NAME)
    readme: ClassVar[dict[str, str]] = {"after-models": "readme/gateway.md.j2"}
    sync_label: ClassVar[str] = "the gateway's controllers"
    # gateway-helm writes config.envoyGateway whole into its EnvoyGateway configuration; its values.yaml lists a few
    # keys of that API only.
    open_values: ClassVar[dict[str, tuple[str, ...]]] = {ENVOY_GATEWAY.name: ("config.envoyGateway",)}

    def enabled(self, env: Environment) -> bool:
        return env.gateway is not None

    def applications(self, env: Environment) -> list[AppSpec]:
        gateway = env.gateway
        assert gateway is not None
        served = ", ".join(name for model in env.models if model.route for name in model.route.names) or "none"
        # The CRD charts exceed client-side apply's annotation limit: server-side apply, as upstream documents.
        server_side = ("ServerSideApply=true",)
        return [
            AppSpec(ENVOY_GATEWAY_RELEASE, ENVOY_GATEWAY, envoy_gateway_values(env), ENVOY_GATEWAY_NAMESPACE,
                    WAVE_CONTROLLERS, (("Purpose", "Envoy Gateway: the Gateway API controller and its proxies"),),
                    sync_options=server_side),
            # Cluster-scoped CRDs only: the namespace is the controller's to create (an empty one otherwise).
            AppSpec(AI_GATEWAY_CRDS_RELEASE, AI_GATEWAY_CRDS, {}, AI_GATEWAY_NAMESPACE, WAVE_CONTROLLERS,
                    (("Purpose", "Envoy AI Gateway's CRDs"),), sync_options=server_side, create_namespace=False),
            AppSpec(AI_GATEWAY_RELEASE, AI_GATEWAY, ai_gateway_values(env), AI_GATEWAY_NAMESPACE, WAVE_CONTROLLERS + 1,
                    (("Purpose", "Envoy AI Gateway: model routing, token counting, usage metrics"),),
                    ignore_differences=AI_GATEWAY_IGNORE_DIFFERENCES),
            AppSpec(RELEASE_NAME, CHART, values(env), gateway.namespace, WAVE,
                    (("Endpoint", f"https://{gateway.hostname}/v1"), ("Models", served))),
        ]

    def grants(self, env: Environment) -> Grants:
        gateway = env.gateway
        assert gateway is not None
        monitoring = MONITORING_KINDS if env.observability and env.observability.prometheus_stack else ()
        return Grants(CONTROLLER_CLUSTER_KINDS, (*NAMESPACED_KINDS, *monitoring))

    def readme_context(self, env: Environment) -> dict[str, Any]:
        assert env.gateway is not None
        return {"proxy_namespace": ENVOY_GATEWAY_NAMESPACE, "proxy_service": proxy_service(env.gateway),
                "in_cluster_url": in_cluster_url(env.gateway)}

    def crds(self, env: Environment) -> dict[str, tuple[str, ...]]:
        return {ENVOY_GATEWAY_RELEASE: ("gateway.networking.k8s.io", "gateway.envoyproxy.io"),
                AI_GATEWAY_CRDS_RELEASE: ("aigateway.envoyproxy.io",)}

    def run_time_objects(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        # gateway-helm's certgen Job (a PreSync hook) creates the certificates Envoy Gateway mounts.
        return {ENVOY_GATEWAY_RELEASE: tuple(Ref("Secret", ENVOY_GATEWAY_NAMESPACE, name)
                                             for name in ("envoy-gateway", "envoy", "envoy-rate-limit"))}

    def generated_secrets(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        # ai-gateway-helm's webhook certificate, made with genCA at render time (see AI_GATEWAY_IGNORE_DIFFERENCES).
        return {AI_GATEWAY_RELEASE: (Ref("Secret", AI_GATEWAY_NAMESPACE, "self-signed-cert-for-mutating-webhook"),)}

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        check(document, models, add)
