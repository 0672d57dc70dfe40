"""The gateway as the cluster will serve it: links between Gateway API, Envoy Gateway and Envoy AI Gateway objects that
no schema can see.

- Every listener uses TLS: HTTPS or TLS itself, or plain HTTP behind a load balancer listener that ends TLS (the
  AWS Load Balancer Controller's ssl-cert and ssl-ports annotations on the Gateway's EnvoyProxy Service).
- Every route reaches a model: each backend of an AIGatewayRoute is a rendered AIServiceBackend (or InferencePool),
  whose Envoy Gateway Backend points at a rendered Service, on a port that Service serves.
- Every route requires authentication: a SecurityPolicy with API keys, JWT, basic auth or external authorisation
  targets its HTTPRoute or its Gateway, unless the route is marked public (label nimgen.io/access: public, from a
  model's `gateway.public: true`).
- No two routes of one Gateway answer to the same model name (Envoy would send it to one of them, unsaid).
- The Envoy proxies may reach each model: no NetworkPolicy on the pods behind a route's Service shuts them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nimgen.validation.findings import Finding
from nimgen.validation.manifests import Applied

if TYPE_CHECKING:
    from nimgen.validation.crossref import _Index as Index

GATEWAY_API = "gateway.networking.k8s.io"
ENVOY_GATEWAY = "gateway.envoyproxy.io"
AI_GATEWAY = "aigateway.envoyproxy.io"
INFERENCE = "inference.networking.k8s.io"
ROUTE_KINDS = ("AIGatewayRoute", "HTTPRoute")
MODEL_HEADER = "x-ai-eg-model"
ACCESS_LABEL = "nimgen.io/access"
SSL_CERT = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"
SSL_PORTS = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"
AUTHENTICATION = ("apiKeyAuth", "jwt", "basicAuth", "extAuth", "oidc")
SERVICE_DNS = ".svc.cluster.local"
# Envoy Gateway runs the proxies in its own namespace (the gateway-helm Application's destination), labelled so.
PROXY_NAMESPACE = "envoy-gateway-system"
PROXY_LABELS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
                "app.kubernetes.io/managed-by": "envoy-gateway"}


def _spec(applied: Applied) -> dict[str, Any]:
    spec = applied.obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _namespace(applied: Applied) -> str:
    return str(applied.obj["metadata"].get("namespace", ""))


def _of(index: Index, group: str, kind: str) -> Iterator[Applied]:
    return (a for a in index.of_kind(kind) if str(a.obj.get("apiVersion", "")).rpartition("/")[0] == group)


def _load_balancer_annotations(index: Index, gateway: Applied) -> dict[str, Any]:
    """The Service annotations of the EnvoyProxy a Gateway runs with (its own parametersRef, else its class's)."""
    ref = (_spec(gateway).get("infrastructure") or {}).get("parametersRef") or {}
    namespace = _namespace(gateway)
    if not ref:
        gateway_class = index.find(GATEWAY_API, "GatewayClass", "", str(_spec(gateway).get("gatewayClassName", "")))
        ref = _spec(gateway_class).get("parametersRef") or {} if gateway_class else {}
        namespace = str(ref.get("namespace", ""))
    if ref.get("kind") != "EnvoyProxy" or ref.get("group") != ENVOY_GATEWAY:
        return {}
    proxy = index.find(ENVOY_GATEWAY, "EnvoyProxy", namespace, str(ref.get("name", "")))
    service = (((_spec(proxy).get("provider") or {}).get("kubernetes") or {}).get("envoyService") or {}) if proxy else {}
    annotations = service.get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def listeners_use_tls(index: Index) -> Iterator[Finding]:
    """Plain HTTP is acceptable only behind a load balancer listener that ends TLS on that port."""
    for gateway in _of(index, GATEWAY_API, "Gateway"):
        annotations = _load_balancer_annotations(index, gateway)
        # With a certificate and no ssl-ports, the controller puts TLS on every port.
        ports = {p.strip() for p in str(annotations.get(SSL_PORTS, "")).split(",") if p.strip()}
        for number, listener in enumerate(_spec(gateway).get("listeners") or []):
            protocol, port = listener.get("protocol"), listener.get("port")
            if protocol in ("HTTPS", "TLS") or (annotations.get(SSL_CERT) and (not ports or str(port) in ports)):
                continue
            yield index.finding(
                gateway, "gateway-tls", f"listener {listener.get('name')!r} serves {protocol} on port {port} without "
                "TLS: API keys, tokens and prompts would cross the network in clear text",
                f"spec.listeners[{number}]", "use protocol HTTPS with a certificate, or end TLS at the load balancer "
                f"(annotations {SSL_CERT} and {SSL_PORTS} on the Gateway's EnvoyProxy Service): set gateway.tls")


def _service_endpoints(backend: Applied) -> Iterator[tuple[int, dict[str, Any], str, str]]:
    """(index, fqdn, Service name, namespace) of each endpoint of a Backend that names a Service of the cluster;
    one outside the cluster, or not a Service's name, is not the tree's to check."""
    for number, endpoint in enumerate(_spec(backend).get("endpoints") or []):
        fqdn = (endpoint.get("fqdn") if isinstance(endpoint, dict) else None) or {}
        host = str(fqdn.get("hostname", ""))
        if host.endswith(SERVICE_DNS) and host.count(".") == 4:
            name, namespace = host.split(".")[:2]
            yield number, fqdn, name, namespace


def _service_port(index: Index, backend: Applied, number: int, fqdn: dict[str, Any], name: str,
                  namespace: str) -> Finding | None:
    service = index.find("", "Service", namespace, name)
    where = f"spec.endpoints[{number}].fqdn"
    if service is None:
        return index.finding(backend, "gateway-backend", f"points at Service {namespace}/{name}, which nothing renders",
                             f"{where}.hostname", "point it at the model's Service (<model>.<namespace>"
                             f"{SERVICE_DNS}), or render the model")
    served = [p.get("port") for p in _spec(service).get("ports") or [] if isinstance(p, dict)]
    if fqdn.get("port") not in served:
        return index.finding(backend, "gateway-backend", f"port {fqdn.get('port')} is not a port of Service "
                             f"{namespace}/{name} (it serves {', '.join(map(str, served)) or 'none'})", f"{where}.port",
                             "use the Service's port")
    return None


def routes_reach_models(index: Index) -> Iterator[Finding]:
    """AIGatewayRoute -> AIServiceBackend -> Backend -> Service and port, each rendered."""
    for route in _of(index, AI_GATEWAY, "AIGatewayRoute"):
        for r, rule in enumerate(_spec(route).get("rules") or []):
            for b, ref in enumerate(rule.get("backendRefs") or []):
                namespace, name = str(ref.get("namespace") or _namespace(route)), str(ref.get("name", ""))
                where = f"spec.rules[{r}].backendRefs[{b}]"
                if ref.get("kind") == "InferencePool":
                    if index.find(INFERENCE, "InferencePool", namespace, name) is None:
                        yield index.finding(route, "gateway-backend", f"routes to InferencePool {namespace}/{name}, "
                                            "which nothing renders", where)
                    continue
                backend = index.find(AI_GATEWAY, "AIServiceBackend", namespace, name)
                if backend is None:
                    yield index.finding(route, "gateway-backend", f"routes to AIServiceBackend {namespace}/{name}, "
                                        "which nothing renders", where, "render the backend with the route (nimgen's "
                                        "nim-gateway chart renders one per model)")
                    continue
                target = _spec(backend).get("backendRef") or {}
                eg_namespace = str(target.get("namespace") or namespace)
                eg_backend = index.find(ENVOY_GATEWAY, "Backend", eg_namespace, str(target.get("name", "")))
                if eg_backend is None:
                    yield index.finding(backend, "gateway-backend", f"sends to Backend {eg_namespace}/"
                                        f"{target.get('name', '')}, which nothing renders", "spec.backendRef")
    for backend in _of(index, ENVOY_GATEWAY, "Backend"):
        for number, fqdn, name, namespace in _service_endpoints(backend):
            problem = _service_port(index, backend, number, fqdn, name, namespace)
            if problem is not None:
                yield problem


def _authenticated(index: Index) -> set[tuple[str, str, str]]:
    """(namespace, kind, name) of every route and Gateway a SecurityPolicy with an authentication method targets."""
    covered = set()
    for policy in _of(index, ENVOY_GATEWAY, "SecurityPolicy"):
        spec = _spec(policy)
        if not any(spec.get(method) for method in AUTHENTICATION):
            continue
        refs = list(spec.get("targetRefs") or []) + ([spec["targetRef"]] if spec.get("targetRef") else [])
        covered |= {(_namespace(policy), str(ref.get("kind")), str(ref.get("name"))) for ref in refs}
    return covered


def routes_require_authentication(index: Index) -> Iterator[Finding]:
    """An unauthenticated route to a model is an error unless it says it is public."""
    covered = _authenticated(index)
    for kind in ROUTE_KINDS:
        group = AI_GATEWAY if kind == "AIGatewayRoute" else GATEWAY_API
        for route in _of(index, group, kind):
            namespace, name = _namespace(route), str(route.obj["metadata"].get("name"))
            if (route.obj["metadata"].get("labels") or {}).get(ACCESS_LABEL) == "public":
                continue
            # Envoy AI Gateway serves an AIGatewayRoute as the HTTPRoute of the same name.
            parents = {str(p.get("name")) for p in _spec(route).get("parentRefs") or [] if isinstance(p, dict)}
            if (namespace, "HTTPRoute", name) in covered or any((namespace, "Gateway", p) in covered for p in parents):
                continue
            yield index.finding(route, "gateway-auth", "serves models to anyone who reaches the Gateway: no "
                                "SecurityPolicy with API keys, JWT, basic auth or external authorisation targets its "
                                "HTTPRoute or Gateway", "metadata",
                                "set gateway.auth (apiKeys or oidc) in the environment file, or mark the model "
                                f"gateway.public: true (label {ACCESS_LABEL}: public) to serve it openly on purpose")


def model_names_are_unique(index: Index) -> Iterator[Finding]:
    """One model name, one route, per Gateway."""
    owners: dict[tuple[str, str, str], str] = {}
    for route in _of(index, AI_GATEWAY, "AIGatewayRoute"):
        namespace, name = _namespace(route), str(route.obj["metadata"].get("name"))
        # A route attached to two listeners of one Gateway (sectionName) still takes each name once there.
        parents = dict.fromkeys(str(p.get("name")) for p in _spec(route).get("parentRefs") or [] if isinstance(p, dict))
        for r, rule in enumerate(_spec(route).get("rules") or []):
            for match in rule.get("matches") or []:
                for header in match.get("headers") or []:
                    if str(header.get("name", "")).lower() != MODEL_HEADER or header.get("type", "Exact") != "Exact":
                        continue
                    for parent in parents:
                        key = (str(_namespace(route)), parent, str(header.get("value")))
                        other = owners.setdefault(key, name)
                        if other != name:
                            yield index.finding(route, "gateway-names", f"answers to model {header.get('value')!r} on "
                                                f"Gateway {namespace}/{parent}, as AIGatewayRoute {namespace}/{other} "
                                                "does: Envoy sends the name to one of them", f"spec.rules[{r}].matches",
                                                "give each model its own public name (gateway.name, aliases)")


def _proxy_namespace(index: Index) -> str:
    for app in index.apps.values():
        source = (app.obj.get("spec") or {}).get("source") or {}
        if source.get("chart") == "gateway-helm":
            return str(((app.obj.get("spec") or {}).get("destination") or {}).get("namespace") or PROXY_NAMESPACE)
    return PROXY_NAMESPACE


def _admits(rule: dict[str, Any], namespace: str, ports: set[Any]) -> bool:
    """Whether one ingress rule lets the proxies of `namespace` in on one of `ports`."""
    from nimgen.validation.crossref import selects  # here: crossref runs these rules, so imports this module

    peers = rule.get("from")
    allowed = not peers or any(
        "namespaceSelector" in peer and selects(peer["namespaceSelector"] or {},
                                                {"kubernetes.io/metadata.name": namespace})
        and selects(peer.get("podSelector") or {}, PROXY_LABELS) for peer in peers if isinstance(peer, dict))
    rule_ports = {p.get("port") for p in rule.get("ports") or [] if isinstance(p, dict)}
    return allowed and (not rule_ports or bool(rule_ports & ports))


def proxies_reach_models(index: Index) -> Iterator[Finding]:
    """A NetworkPolicy on a model's pods that admits no proxy turns every request to it into a timeout."""
    namespace = _proxy_namespace(index)
    for backend in _of(index, ENVOY_GATEWAY, "Backend"):
        for number, fqdn, name, service_namespace in _service_endpoints(backend):
            service = index.find("", "Service", service_namespace, name)
            if service is None:
                continue  # routes_reach_models says so
            selector = _spec(service).get("selector")
            if not selector:
                continue
            targets = [p.get("targetPort", p.get("port")) for p in _spec(service).get("ports") or []
                       if isinstance(p, dict) and p.get("port") == fqdn.get("port")]
            if not targets:
                continue  # not a port of the Service: routes_reach_models says so
            pods = [pod for pod in index.pods_with(selector) if pod.namespace == service_namespace
                    and selector.items() <= pod.labels.items()]
            # A NetworkPolicy names the container's port, by number or by name: both forms of the target port.
            ports = set(targets) | {form for pod in pods for container in pod.spec.get("containers") or []
                                    for port in container.get("ports") or [] if isinstance(port, dict)
                                    and {port.get("name"), port.get("containerPort")} & set(targets)
                                    for form in (port.get("name"), port.get("containerPort")) if form is not None}
            # NetworkPolicies add up: the pods are shut to the proxies only when some policy selects them and no
            # policy selecting them lets the proxies in.
            selecting = [policy for policy in index.of_kind("NetworkPolicy") if _namespace(policy) == service_namespace
                         and "Ingress" in (_spec(policy).get("policyTypes") or ["Ingress"])
                         and any(_selects_pod(_spec(policy), pod.labels) for pod in pods)]
            if not selecting or any(_admits(rule, namespace, ports) for policy in selecting
                                    for rule in _spec(policy).get("ingress") or [] if isinstance(rule, dict)):
                continue
            names = ", ".join(sorted(str(policy.obj["metadata"].get("name")) for policy in selecting))
            yield index.finding(backend, "gateway-reach", f"the Envoy proxies (namespace {namespace}) cannot reach "
                                f"the pods of Service {service_namespace}/{name}: NetworkPolicy {names} admits none of "
                                "them", f"spec.endpoints[{number}]", "admit the proxies' namespace in the model's "
                                "NetworkPolicy (nim-llm networkPolicy.clients)")


def _selects_pod(spec: dict[str, Any], labels: dict[str, str]) -> bool:
    from nimgen.validation.crossref import selects  # here: crossref runs these rules, so imports this module

    return selects(spec.get("podSelector") or {}, labels)


RULES = (listeners_use_tls, routes_reach_models, routes_require_authentication, model_names_are_unique,
         proxies_reach_models)
