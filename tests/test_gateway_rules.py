"""validate's gateway rules on prod's rendered gateway: each rule holds on what nimgen renders, and each has a fixture
that breaks it (TLS, a route's backend and port, authentication, two routes answering to one model name)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment, shared
from kube import application_objects
from nimgen import helm
from nimgen.gitops import applications
from nimgen.validation.findings import Finding
from nimgen.validation.gatewayrules import SSL_CERT, SSL_PORTS
from test_crossref_rules import run

RULES = ("gateway-tls", "gateway-backend", "gateway-auth", "gateway-names", "gateway-reach")


@pytest.fixture(scope=shared("module"))
def rendered(rendered_repo: Path, helm_engine: helm.Engine) -> dict[str, list[dict[str, Any]]]:
    """Objects of prod's gateway Application and of its models' Applications."""
    prod = example_environment("prod")
    apps = applications.by_name(prod)
    names = ["nim-gateway", *(model.name for model in prod.models)]
    return {name: application_objects(helm_engine, rendered_repo, apps[name]) for name in names}


def _findings(by_app: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The gateway rules' findings; a rule tripping over a manifest (reported under its function's name) fails."""
    found = run(apps=by_app)
    assert [f for f in found if f.message.startswith("check could not finish")] == []
    return sorted(f"[{f.check}] {f.obj} {f.path}: {f.message}" for f in found if f.check in RULES)


def _edit(rendered: dict[str, list[dict[str, Any]]], kind: str, name: str = "") -> tuple[dict[str, Any], dict]:
    """A deep copy of the objects, and the (first) gateway object of `kind` (and `name`) in it."""
    copied = copy.deepcopy(rendered)
    target = next(o for o in copied["nim-gateway"] if o["kind"] == kind and (not name or o["metadata"]["name"] == name))
    return copied, target


def test_what_nimgen_renders_passes_every_rule(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert _findings(rendered) == []


def test_a_plain_listener_without_tls_at_the_load_balancer(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, proxy = _edit(rendered, "EnvoyProxy")
    annotations = proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"]
    del annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"]
    # Both listeners of port 443, the public one and the in-cluster one, are then plain to the outside.
    https, in_cluster = _findings(copied)
    assert https.startswith("[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[0]: listener 'https' "
                            "serves HTTP on port 443 without TLS")
    assert in_cluster.startswith("[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[1]: listener "
                                 "'in-cluster' serves HTTP on port 443 without TLS")
    # TLS on another port of the load balancer leaves 443 plain all the same.
    copied, proxy = _edit(rendered, "EnvoyProxy")
    proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"][
        "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] = "8443"
    assert [f.split(":")[0] for f in _findings(copied)] == [
        "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[0]",
        "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[1]"]


def test_an_https_listener_needs_nothing_at_the_load_balancer(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, gateway = _edit(rendered, "Gateway")
    gateway["spec"]["listeners"][0].update(protocol="HTTPS", tls={"certificateRefs": [{"name": "tls"}]})
    del gateway["spec"]["listeners"][1]  # as the chart renders it with TLS at Envoy: no in-cluster listener
    proxy = next(o for o in copied["nim-gateway"] if o["kind"] == "EnvoyProxy")
    proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"] = {}
    assert _findings(copied) == []


@pytest.mark.parametrize(("kind", "field", "value", "expected"), [
    ("AIGatewayRoute", "backend", "llama3-8b-instruct-typo",
     ("[gateway-backend] AIGatewayRoute nim-gateway/llama3-8b-instruct spec.rules[0].backendRefs[0]: routes to "
     "AIServiceBackend nim-gateway/llama3-8b-instruct-typo, which nothing renders")),
    ("AIServiceBackend", "backend", "gone",
     ("[gateway-backend] AIServiceBackend nim-gateway/llama3-8b-instruct spec.backendRef: sends to Backend "
     "nim-gateway/gone, which nothing renders")),
    ("Backend", "host", "llama3-8b.nim.svc.cluster.local",
     ("[gateway-backend] Backend nim-gateway/llama3-8b-instruct spec.endpoints[0].fqdn.hostname: points at Service "
     "nim/llama3-8b, which nothing renders")),
    ("Backend", "port", 8080,
     ("[gateway-backend] Backend nim-gateway/llama3-8b-instruct spec.endpoints[0].fqdn.port: port 8080 is not a port "
     "of Service nim/llama3-8b-instruct (it serves 8000)")),
])
def test_a_route_that_reaches_no_model(rendered: dict[str, list[dict[str, Any]]], kind: str, field: str, value: Any,
                                       expected: str) -> None:
    copied, obj = _edit(rendered, kind, "llama3-8b-instruct")
    if kind == "AIGatewayRoute":
        obj["spec"]["rules"][0]["backendRefs"][0]["name"] = value
    elif kind == "AIServiceBackend":
        obj["spec"]["backendRef"]["name"] = value
    else:
        obj["spec"]["endpoints"][0]["fqdn"]["hostname" if field == "host" else "port"] = value
    assert _findings(copied) == [expected]


def test_a_backend_outside_the_cluster_is_not_the_trees_to_check(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, backend = _edit(rendered, "Backend", "llama3-8b-instruct")
    backend["spec"]["endpoints"][0]["fqdn"] = {"hostname": "api.example.com", "port": 443}
    assert _findings(copied) == []


def test_a_route_without_authentication(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, policy = _edit(rendered, "SecurityPolicy")
    policy["spec"]["targetRefs"] = [ref for ref in policy["spec"]["targetRefs"] if ref["name"] != "llama3-8b-instruct"]
    assert _findings(copied) == [
        ("[gateway-auth] AIGatewayRoute nim-gateway/llama3-8b-instruct metadata: serves models to anyone who reaches "
        "the Gateway: no SecurityPolicy with API keys, JWT, basic auth or external authorisation targets its "
        "HTTPRoute or Gateway")]
    # A policy that names the route but authenticates nobody protects nothing.
    copied, policy = _edit(rendered, "SecurityPolicy")
    del policy["spec"]["apiKeyAuth"]
    assert len(_findings(copied)) == 2
    # A policy on the Gateway covers every route of it; a route marked public needs none.
    copied, policy = _edit(rendered, "SecurityPolicy")
    policy["spec"]["targetRefs"] = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "nim-gateway"}]
    assert _findings(copied) == []
    copied, route = _edit(rendered, "AIGatewayRoute", "llama3-8b-instruct")
    route["metadata"]["labels"]["nimgen.io/access"] = "public"
    policy = next(o for o in copied["nim-gateway"] if o["kind"] == "SecurityPolicy")
    policy["spec"]["targetRefs"] = policy["spec"]["targetRefs"][1:]
    assert _findings(copied) == []


def test_two_routes_answering_to_one_name(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, route = _edit(rendered, "AIGatewayRoute", "llama-3-1-70b-instruct")
    route["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] = "meta/llama3-8b-instruct"
    assert _findings(copied) == [
        ("[gateway-names] AIGatewayRoute nim-gateway/llama-3-1-70b-instruct spec.rules[0].matches: answers to model "
        "'meta/llama3-8b-instruct' on Gateway nim-gateway/nim-gateway, as AIGatewayRoute "
        "nim-gateway/llama3-8b-instruct does: Envoy sends the name to one of them")]


def _model_policy(copied: dict[str, list[dict[str, Any]]], model: str = "llama3-8b-instruct") -> dict[str, Any]:
    return next(o for o in copied[model] if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == model)


@pytest.mark.parametrize(("peer", "ports", "reaches"), [
    ({"namespaceSelector": {}}, None, True),  # what nimgen renders: every namespace of the cluster
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "open-webui"}}}, None, False),
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}, None, True),
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
      "podSelector": {"matchLabels": {"app": "something-else"}}}, None, False),
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
      "podSelector": {"matchLabels": {"app.kubernetes.io/name": "envoy"}}}, None, True),
    ({"namespaceSelector": {}}, [{"port": 9999, "protocol": "TCP"}], False),
    ({"namespaceSelector": {}}, [{"port": 8000, "protocol": "TCP"}], True),
    ({"podSelector": {}}, None, False),  # the model's own namespace only
])
def test_the_proxies_reach_the_models_pods(rendered: dict[str, list[dict[str, Any]]], peer: dict[str, Any],
                                           ports: list[dict[str, Any]] | None, reaches: bool) -> None:
    copied = copy.deepcopy(rendered)
    policy = _model_policy(copied)
    clients = policy["spec"]["ingress"][0]
    clients["from"] = [peer]
    if ports is not None:
        clients["ports"] = ports
    found = [f for f in _findings(copied) if f.startswith("[gateway-reach]")]
    assert found == ([] if reaches else [
        ("[gateway-reach] Backend nim-gateway/llama3-8b-instruct spec.endpoints[0]: the Envoy proxies (namespace "
        "envoy-gateway-system) cannot reach the pods of Service nim/llama3-8b-instruct: NetworkPolicy "
        "llama3-8b-instruct admits none of them")])


def test_network_policies_add_up(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied = copy.deepcopy(rendered)
    _model_policy(copied)["spec"]["ingress"] = []  # shut to everyone...
    assert [f for f in _findings(copied) if f.startswith("[gateway-reach]")]
    opener = copy.deepcopy(_model_policy(rendered))  # ...unless another policy on the same pods opens it
    opener["metadata"]["name"] = "admit-the-gateway"
    opener["spec"]["ingress"] = [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "envoy-gateway-system"}}}], "ports": [{"port": 8000}]}]
    copied["llama3-8b-instruct"].append(opener)
    assert [f for f in _findings(copied) if f.startswith("[gateway-reach]")] == []



def test_tls_at_the_load_balancer_of_the_gateway_class(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """A Gateway without a parametersRef of its own runs with its GatewayClass's EnvoyProxy."""
    copied, gateway = _edit(rendered, "Gateway")
    ref = gateway["spec"].pop("infrastructure")["parametersRef"]
    gateway_class = next(o for o in copied["nim-gateway"] if o["kind"] == "GatewayClass")
    gateway_class["spec"]["parametersRef"] = {**ref, "namespace": "nim-gateway"}
    assert _findings(copied) == []
    plain = ["[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[0]",
             "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[1]"]
    # The class's reference names its namespace (a cluster-scoped class has none of its own to lend), and an
    # EnvoyProxy: anything else says nothing of the load balancer, whose TLS is then unknown.
    for broken in ({**ref}, {**ref, "namespace": "elsewhere"}, {**ref, "namespace": "nim-gateway", "name": "other"},
                   {**ref, "namespace": "nim-gateway", "kind": "ConfigMap"},
                   {**ref, "namespace": "nim-gateway", "group": "example.com"}):
        gateway_class["spec"]["parametersRef"] = broken
        assert [f.split(":")[0] for f in _findings(copied)] == plain, broken
    # A Gateway of another class does not take this class's settings.
    gateway_class["spec"]["parametersRef"] = {**ref, "namespace": "nim-gateway"}
    gateway["spec"]["gatewayClassName"] = "another-class"
    assert [f.split(":")[0] for f in _findings(copied)] == plain


@pytest.mark.parametrize("ref", [{"kind": "ConfigMap"}, {"group": "example.com"}, {"name": "other"}])
def test_a_parameters_ref_to_no_envoy_proxy_leaves_tls_unknown(rendered: dict[str, list[dict[str, Any]]],
                                                               ref: dict[str, str]) -> None:
    copied, gateway = _edit(rendered, "Gateway")
    gateway["spec"]["infrastructure"]["parametersRef"].update(ref)
    assert [f.split(":")[0] for f in _findings(copied)] == [
        "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[0]",
        "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[1]"]


def test_the_rules_read_manifests_of_unexpected_shape(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Schema-invalid shapes are the schema's findings: the rules neither crash nor add their own."""
    copied, backend = _edit(rendered, "Backend")
    backend["spec"]["endpoints"].append("not-a-mapping")
    assert _findings(copied) == []
    copied, proxy = _edit(rendered, "EnvoyProxy")
    proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"] = ["not", "a", "mapping"]
    assert [f.split(":")[0] for f in _findings(copied)] == [  # no annotations: no TLS at the load balancer
        "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[0]",
        "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[1]"]
    copied, proxy = _edit(rendered, "EnvoyProxy")
    proxy["spec"] = ["not", "a", "mapping"]
    assert len(_findings(copied)) == 2  # the two plain listeners, and no rule tripped (_findings fails then)


def _found(by_app: dict[str, list[dict[str, Any]]]) -> list[Finding]:
    _findings(by_app)  # no rule tripped
    return sorted((f for f in run(apps=by_app) if f.check in RULES), key=lambda f: (f.obj, f.path))


def test_each_finding_says_how_to_fix_it(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, backend = _edit(rendered, "Backend", "llama3-8b-instruct")
    backend["spec"]["endpoints"][0]["fqdn"]["hostname"] = "llama3-8b.nim.svc.cluster.local"
    [gone] = _found(copied)
    assert gone.hint == "point it at the model's Service (<model>.<namespace>.svc.cluster.local), or render the model"
    copied, backend = _edit(rendered, "Backend", "llama3-8b-instruct")
    backend["spec"]["endpoints"][0]["fqdn"]["port"] = 8080
    [port] = _found(copied)
    assert port.hint == "use the Service's port"
    copied, proxy = _edit(rendered, "EnvoyProxy")
    del proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"][SSL_CERT]
    plain = _found(copied)[0]
    assert plain.message == ("listener 'https' serves HTTP on port 443 without TLS: API keys, tokens and prompts "
                             "would cross the network in clear text")
    assert plain.hint == ("use protocol HTTPS with a certificate, or end TLS at the load balancer (annotations "
                          f"{SSL_CERT} and {SSL_PORTS} on the Gateway's EnvoyProxy Service): set gateway.tls")
    copied, route = _edit(rendered, "AIGatewayRoute", "llama3-8b-instruct")
    route["spec"]["rules"][0]["backendRefs"][0]["name"] = "typo"
    [unrouted] = _found(copied)
    assert unrouted.hint == ("render the backend with the route (nimgen's nim-gateway chart renders one per model)")


@pytest.mark.parametrize(("ports", "served"), [([8000, 9000], "8000, 9000"), ([], "none")])
def test_a_wrong_port_names_the_ports_the_service_serves(rendered: dict[str, list[dict[str, Any]]], ports: list[int],
                                                        served: str) -> None:
    copied, backend = _edit(rendered, "Backend", "llama3-8b-instruct")
    backend["spec"]["endpoints"][0]["fqdn"]["port"] = 8080
    [service] = [o for o in copied["llama3-8b-instruct"] if o["kind"] == "Service"
                 and o["metadata"]["name"] == "llama3-8b-instruct"]
    service["spec"]["ports"] = [{"name": f"p{port}", "port": port} for port in ports]
    [finding] = _found(copied)
    assert finding.message == f"port 8080 is not a port of Service nim/llama3-8b-instruct (it serves {served})"


def test_tls_ports_of_the_load_balancer(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # A list of ports, as the AWS Load Balancer Controller reads it ("443,8443": TLS on both).
    copied, proxy = _edit(rendered, "EnvoyProxy")
    proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"][SSL_PORTS] = "443,8443"
    assert _findings(copied) == []
    # A certificate without ssl-ports: the controller puts TLS on every port.
    copied, proxy = _edit(rendered, "EnvoyProxy")
    del proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"][SSL_PORTS]
    assert _findings(copied) == []


def test_every_listener_is_checked(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """A listener with TLS of its own (HTTPS, or TLS passthrough) does not stand for the next one."""
    for protocol in ("HTTPS", "TLS"):
        copied, gateway = _edit(rendered, "Gateway")
        gateway["spec"]["listeners"][0].update(protocol=protocol, tls={"certificateRefs": [{"name": "tls"}]})
        proxy = next(o for o in copied["nim-gateway"] if o["kind"] == "EnvoyProxy")
        proxy["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"] = {}
        assert [f.split(":")[0] for f in _findings(copied)] == [
            "[gateway-tls] Gateway nim-gateway/nim-gateway spec.listeners[1]"], protocol


def test_a_backend_reference_in_another_namespace(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, route = _edit(rendered, "AIGatewayRoute", "llama3-8b-instruct")
    route["spec"]["rules"][0]["backendRefs"][0]["namespace"] = "elsewhere"
    assert _findings(copied) == [
        ("[gateway-backend] AIGatewayRoute nim-gateway/llama3-8b-instruct spec.rules[0].backendRefs[0]: routes to "
         "AIServiceBackend elsewhere/llama3-8b-instruct, which nothing renders")]
    del route["spec"]["rules"][0]["backendRefs"][0]["namespace"], route["spec"]["rules"][0]["backendRefs"][0]["name"]
    assert _findings(copied) == [
        ("[gateway-backend] AIGatewayRoute nim-gateway/llama3-8b-instruct spec.rules[0].backendRefs[0]: routes to "
         "AIServiceBackend nim-gateway/, which nothing renders")]


def test_a_route_to_an_inference_pool(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, route = _edit(rendered, "AIGatewayRoute", "llama3-8b-instruct")
    route["spec"]["rules"][0]["backendRefs"][0] = {"group": "inference.networking.k8s.io", "kind": "InferencePool",
                                                   "name": "llama3-8b-instruct"}
    assert _findings(copied) == [
        ("[gateway-backend] AIGatewayRoute nim-gateway/llama3-8b-instruct spec.rules[0].backendRefs[0]: routes to "
         "InferencePool nim-gateway/llama3-8b-instruct, which nothing renders")]
    copied["nim-gateway"].append({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                                  "metadata": {"name": "llama3-8b-instruct", "namespace": "nim-gateway"},
                                  "spec": {"selector": {"matchLabels": {"app": "x"}}, "targetPorts": [{"number": 8000}],
                                           "endpointPickerRef": {"name": "epp", "port": {"number": 9002}}}})
    assert _findings(copied) == []


def test_every_backend_reference_is_followed(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """A rule with several backendRefs: each missing one is a finding, whatever came before it."""
    copied, route = _edit(rendered, "AIGatewayRoute", "llama3-8b-instruct")
    route["spec"]["rules"][0]["backendRefs"] = [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"},
        {"name": "first-typo"}, {"name": "second-typo"}]
    assert [f.split(": ", 1)[1] for f in _findings(copied)] == [
        "routes to InferencePool nim-gateway/pool, which nothing renders",
        "routes to AIServiceBackend nim-gateway/first-typo, which nothing renders",
        "routes to AIServiceBackend nim-gateway/second-typo, which nothing renders"]


def test_a_service_backend_sends_to_a_backend_of_its_namespace_or_the_one_named(
        rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, backend = _edit(rendered, "AIServiceBackend", "llama3-8b-instruct")
    backend["spec"]["backendRef"]["namespace"] = "elsewhere"
    assert _findings(copied) == [
        ("[gateway-backend] AIServiceBackend nim-gateway/llama3-8b-instruct spec.backendRef: sends to Backend "
         "elsewhere/llama3-8b-instruct, which nothing renders")]
    del backend["spec"]["backendRef"]["namespace"], backend["spec"]["backendRef"]["name"]
    assert _findings(copied) == [
        ("[gateway-backend] AIServiceBackend nim-gateway/llama3-8b-instruct spec.backendRef: sends to Backend "
         "nim-gateway/, which nothing renders")]


def test_a_policy_without_authentication_does_not_hide_the_next_one(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, policy = _edit(rendered, "SecurityPolicy")
    cors = copy.deepcopy(policy)
    cors["metadata"]["name"] = "cors-only"
    cors["spec"] = {"targetRefs": policy["spec"]["targetRefs"], "cors": {"allowOrigins": ["https://chat.example.com"]}}
    copied["nim-gateway"].insert(0, cors)
    assert _findings(copied) == []


def _routes(copied: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in copied["nim-gateway"] if o["kind"] == "AIGatewayRoute"}


@pytest.mark.parametrize("uncovered", ["llama3-8b-instruct", "llama-3-1-70b-instruct"])
def test_each_route_is_checked_for_authentication(rendered: dict[str, list[dict[str, Any]]], uncovered: str) -> None:
    """Whichever route comes first, covered or public, the other is still checked."""
    for public in (False, True):
        copied, policy = _edit(rendered, "SecurityPolicy")
        policy["spec"]["targetRefs"] = [ref for ref in policy["spec"]["targetRefs"] if ref["name"] != uncovered]
        if public:  # the covered route is marked public instead
            other = next(name for name in _routes(copied) if name != uncovered)
            _routes(copied)[other]["metadata"]["labels"]["nimgen.io/access"] = "public"
            policy["spec"]["targetRefs"] = []
        [finding] = _found(copied)
        assert (finding.check, finding.obj, finding.path) == (
            "gateway-auth", f"AIGatewayRoute nim-gateway/{uncovered}", "metadata")
        assert finding.hint == ("set gateway.auth (apiKeys or oidc) in the environment file, or mark the model "
                                "gateway.public: true (label nimgen.io/access: public) to serve it openly on purpose")


def test_a_gateway_api_route_needs_authentication_too(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied = copy.deepcopy(rendered)
    copied["nim-gateway"].append({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "side-door", "namespace": "nim-gateway"},
        "spec": {"parentRefs": [{"name": "nim-gateway"}], "rules": [{"backendRefs": [{"name": "llama3-8b-instruct",
                                                                                       "port": 8000}]}]}})
    assert [f for f in _findings(copied) if f.startswith("[gateway-auth]")] == [
        ("[gateway-auth] HTTPRoute nim-gateway/side-door metadata: serves models to anyone who reaches the Gateway: no "
         "SecurityPolicy with API keys, JWT, basic auth or external authorisation targets its HTTPRoute or Gateway")]


def test_policies_add_up_and_take_a_single_target_ref(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied, policy = _edit(rendered, "SecurityPolicy")
    refs = policy["spec"].pop("targetRefs")
    policy["spec"]["targetRef"] = refs[0]  # the older, single form
    second = copy.deepcopy(policy)
    second["metadata"]["name"] = "second"
    second["spec"]["targetRef"] = refs[1]
    copied["nim-gateway"].append(second)
    assert _findings(copied) == []


def test_only_exact_matches_on_the_model_header_are_names(rendered: dict[str, list[dict[str, Any]]]) -> None:
    taken = "meta/llama3-8b-instruct"
    for header in ({"type": "RegularExpression", "name": "x-ai-eg-model", "value": taken},
                   {"type": "Exact", "name": "x-team", "value": taken}, {"name": "x-team", "value": taken}):
        copied = copy.deepcopy(rendered)
        _routes(copied)["llama-3-1-70b-instruct"]["spec"]["rules"][0]["matches"][0]["headers"].insert(0, header)
        assert _findings(copied) == [], header
    # An exact match is one whether it says so or not (Exact is the default), after any other header of the match.
    copied = copy.deepcopy(rendered)
    headers = _routes(copied)["llama-3-1-70b-instruct"]["spec"]["rules"][0]["matches"][0]["headers"]
    headers[:] = [{"name": "x-team", "value": "a"}, {"name": "X-AI-EG-Model", "value": taken}]
    [finding] = _found(copied)
    assert finding.check == "gateway-names"
    assert finding.hint == "give each model its own public name (gateway.name, aliases)"


def test_one_name_on_gateways_of_two_namespaces(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Gateways of the same name in two namespaces are two Gateways: one model name on each is no conflict."""
    copied = copy.deepcopy(rendered)
    route = copy.deepcopy(_routes(copied)["llama-3-1-70b-instruct"])
    route["metadata"]["namespace"] = "other-team"
    route["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] = "meta/llama3-8b-instruct"
    copied.setdefault("other", []).append(route)
    assert [f for f in _findings(copied) if f.startswith("[gateway-names]")] == []


def test_the_proxies_namespace_is_where_envoy_gateway_is_installed(rendered: dict[str, list[dict[str, Any]]]) -> None:
    envoy_gateway = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                     "metadata": {"name": "envoy-gateway", "namespace": "argocd"},
                     "spec": {"project": "platform", "source": {"chart": "gateway-helm", "repoURL": "x",
                                                                "targetRevision": "v1.8.3"},
                              "destination": {"server": "https://kubernetes.default.svc", "namespace": "edge"}}}
    other = copy.deepcopy(envoy_gateway)
    other["metadata"]["name"], other["spec"]["source"]["chart"] = "other", "something-else"
    other["spec"]["destination"]["namespace"] = "elsewhere"
    copied = copy.deepcopy(rendered)
    policy = _model_policy(copied)
    policy["spec"]["ingress"][0]["from"] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}]

    def reach(*apps: dict[str, Any]) -> list[str]:
        return [f"{f.obj}: {f.message}" for f in run(manifests=apps, apps=copied) if f.check == "gateway-reach"]

    assert reach(other, envoy_gateway) == []
    assert reach(other) == [  # not installed by the tree: Envoy Gateway's default namespace
        ("Backend nim-gateway/llama3-8b-instruct: the Envoy proxies (namespace envoy-gateway-system) cannot reach the "
         "pods of Service nim/llama3-8b-instruct: NetworkPolicy llama3-8b-instruct admits none of them")]
    envoy_gateway["spec"]["destination"].pop("namespace")
    assert len(reach(envoy_gateway)) == 1  # no destination namespace: the default again


# ------------------------------------------------------------------ the proxies reach the models' pods


def _model(copied: dict[str, list[dict[str, Any]]], kind: str, name: str = "llama3-8b-instruct",
           model: str = "llama3-8b-instruct") -> dict[str, Any]:
    return next(o for o in copied[model] if o["kind"] == kind and o["metadata"]["name"] == name)


def _reach(copied: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [f.split(": ", 1)[1] for f in _findings(copied) if f.startswith("[gateway-reach]")]


def _blocked(model: str = "llama3-8b-instruct", policies: str = "llama3-8b-instruct") -> str:
    return (f"the Envoy proxies (namespace envoy-gateway-system) cannot reach the pods of Service nim/{model}: "
            f"NetworkPolicy {policies} admits none of them")


def _only_port(copied: dict[str, list[dict[str, Any]]], port: Any, model: str = "llama3-8b-instruct") -> None:
    """The model's NetworkPolicy admits every namespace, on `port` only."""
    policy = _model_policy(copied, model)
    policy["spec"]["ingress"] = [{"from": [{"namespaceSelector": {}}], "ports": [{"port": port, "protocol": "TCP"}]}]


@pytest.mark.parametrize(("port", "reaches"), [
    ("http-openai", True), (8000, True),  # the container port, by name or by number
    ("metrics", False), (9400, False),
])
def test_a_policy_names_the_container_port_by_name_or_number(rendered: dict[str, list[dict[str, Any]]], port: Any,
                                                             reaches: bool) -> None:
    for target in ("http-openai", 8000):  # the Service's targetPort, by name or by number
        copied = copy.deepcopy(rendered)
        _model(copied, "Service")["spec"]["ports"][0]["targetPort"] = target
        [container] = _model(copied, "StatefulSet")["spec"]["template"]["spec"]["containers"]
        container["ports"].append({"name": "metrics", "containerPort": 9400, "protocol": "TCP"})
        _only_port(copied, port)
        assert _reach(copied) == ([] if reaches else [_blocked()]), (target, port)


def test_the_target_port_is_the_services_port_without_one(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied = copy.deepcopy(rendered)
    service = _model(copied, "Service")
    service["spec"]["ports"][0].pop("targetPort")
    service["spec"]["ports"].append({"name": "metrics", "port": 9400, "targetPort": 9400})  # another port of it
    _only_port(copied, 8000)
    assert _reach(copied) == []
    copied = copy.deepcopy(rendered)
    _model(copied, "Service")["spec"]["ports"][0]["targetPort"] = 7000  # the pods serve the Backend's port on 7000
    _only_port(copied, 8000)
    assert _reach(copied) == [_blocked()]
    _only_port(copied, 7000)
    assert _reach(copied) == []
    # Only the Service port the Backend names counts: a policy admitting another port of the Service does not help.
    copied = copy.deepcopy(rendered)
    _model(copied, "Service")["spec"]["ports"].append({"name": "metrics", "port": 9400, "targetPort": 9400})
    _only_port(copied, 9400)
    assert _reach(copied) == [_blocked()]


def test_only_the_services_own_pods_count(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Pods of another namespace with the same labels, even ones serving the admitted port, are not the Service's."""
    copied = copy.deepcopy(rendered)
    twin = copy.deepcopy(_model(copied, "StatefulSet"))
    twin["metadata"]["namespace"] = "elsewhere"
    twin["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"name": "alt", "containerPort": 7000}]
    copied["llama3-8b-instruct"].append(twin)
    _only_port(copied, 7000)
    assert _reach(copied) == [_blocked()]
    # A selector equal to the pods' labels still selects them.
    copied = copy.deepcopy(rendered)
    labels = _model(copied, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    _model(copied, "Service")["spec"]["selector"] = dict(labels)
    _only_port(copied, 9999)
    assert _reach(copied) == [_blocked()]


def test_egress_only_policies_do_not_shut_the_pods(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied = copy.deepcopy(rendered)
    _only_port(copied, 9999)
    _model_policy(copied)["spec"]["policyTypes"] = ["Egress"]
    assert _reach(copied) == []
    del _model_policy(copied)["spec"]["policyTypes"]  # without policyTypes, a policy with ingress rules is Ingress
    assert _reach(copied) == [_blocked()]


def test_every_policy_that_shuts_the_pods_is_named(rendered: dict[str, list[dict[str, Any]]]) -> None:
    copied = copy.deepcopy(rendered)
    _only_port(copied, 9999)
    second = copy.deepcopy(_model_policy(copied))
    second["metadata"]["name"] = "a-second-policy"
    copied["llama3-8b-instruct"].append(second)
    [finding] = [f for f in _found(copied) if f.check == "gateway-reach"]
    assert finding.message == _blocked(policies="a-second-policy, llama3-8b-instruct")
    assert finding.hint == "admit the proxies' namespace in the model's NetworkPolicy (nim-llm networkPolicy.clients)"


@pytest.mark.parametrize("skip", ["no-service", "no-selector", "other-port", "admitted"])
def test_every_endpoint_is_checked_whatever_came_before_it(rendered: dict[str, list[dict[str, Any]]],
                                                           skip: str) -> None:
    """A Backend's first endpoint passes for one reason or another; its second, shut out, is still found."""
    copied, backend = _edit(rendered, "Backend", "llama3-8b-instruct")
    backend["spec"]["endpoints"].append(
        {"fqdn": {"hostname": "llama-3-1-70b-instruct.nim.svc.cluster.local", "port": 8000}})
    _only_port(copied, 9999, "llama-3-1-70b-instruct")
    first = backend["spec"]["endpoints"][0]["fqdn"]
    if skip == "no-service":
        first["hostname"] = "gone.nim.svc.cluster.local"
    elif skip == "no-selector":
        del _model(copied, "Service")["spec"]["selector"]
    elif skip == "other-port":
        first["port"] = 8080
    blocked = [f for f in _found(copied) if f.check == "gateway-reach"]
    assert [(f.obj, f.path, f.message) for f in blocked if f.obj == "Backend nim-gateway/llama3-8b-instruct"] == [
        ("Backend nim-gateway/llama3-8b-instruct", "spec.endpoints[1]",
         _blocked("llama-3-1-70b-instruct", "llama-3-1-70b-instruct"))]


@pytest.mark.parametrize("host", ["llm.api.eu.example.com", "llm.svc.cluster.local"])
def test_only_a_services_full_name_is_a_service(rendered: dict[str, list[dict[str, Any]]], host: str) -> None:
    """<name>.<namespace>.svc.cluster.local names a Service; four dots elsewhere, or fewer before the suffix, not."""
    copied, backend = _edit(rendered, "Backend", "llama3-8b-instruct")
    backend["spec"]["endpoints"][0]["fqdn"] = {"hostname": host, "port": 443}
    assert _findings(copied) == []
