"""The front door as Argo CD applies it: prod's gateway Applications, and nimgen's nim-gateway chart rendered by the
real Helm engine and checked against Kubernetes' and the upstream Gateway API / Envoy Gateway / Envoy AI Gateway
CRD schemas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment, shared
from helpers import VALID, run, write_env
from kube import application_objects, crd_errors, kubernetes_errors
from nimgen import helm
from nimgen.components import gateway
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.helm import HelmError
from nimgen.model import Environment

GATEWAY_KINDS = {"GatewayClass", "EnvoyProxy", "Gateway", "ClientTrafficPolicy", "Backend", "AIServiceBackend",
                 "AIGatewayRoute", "SecurityPolicy", "BackendTrafficPolicy", "Deployment", "Service", "NetworkPolicy",
                 "PodMonitor"}


@pytest.fixture(scope=shared("module"))
def prod() -> Environment:
    return example_environment("prod")


@pytest.fixture(scope=shared("module"))
def objects(prod: Environment, rendered_repo: Path, helm_engine: helm.Engine) -> list[dict[str, Any]]:
    return application_objects(helm_engine, rendered_repo, applications.by_name(prod)["nim-gateway"])


def _of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = _of(objects, kind)
    return found


def test_every_object_passes_its_schema(objects: list[dict[str, Any]], crd_schemas: Path) -> None:
    assert {o["kind"] for o in objects} == GATEWAY_KINDS
    for obj in objects:
        if obj["apiVersion"] in ("v1", "apps/v1", "networking.k8s.io/v1"):
            assert kubernetes_errors(obj, "1.33") == [], obj["metadata"]["name"]
        else:
            assert crd_errors(obj, crd_schemas) == [], (obj["kind"], obj["metadata"]["name"])


def test_the_load_balancer_ends_tls_with_the_acm_certificate(prod: Environment,
                                                             objects: list[dict[str, Any]]) -> None:
    assert prod.gateway is not None
    annotations = _one(objects, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyService"]["annotations"]
    assert annotations == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": prod.gateway.acm_certificate_arn,
        "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "443",
        "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "tcp"}
    # Two proxies, spread over zones and nodes, one kept through drains.
    deployment = _one(objects, "EnvoyProxy")["spec"]["provider"]["kubernetes"]
    assert deployment["envoyDeployment"]["replicas"] == 2 and deployment["envoyPDB"] == {"minAvailable": 1}
    spread = deployment["envoyDeployment"]["pod"]["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread] == [
        ("topology.kubernetes.io/zone", "ScheduleAnyway"), ("kubernetes.io/hostname", "ScheduleAnyway")]
    assert all(c["labelSelector"]["matchLabels"] == {"gateway.envoyproxy.io/owning-gateway-name": "nim-gateway",
                                                     "gateway.envoyproxy.io/owning-gateway-namespace": "nim-gateway"}
               for c in spread)
    gw = _one(objects, "Gateway")
    # The public listener, and the in-cluster one answering on the same port for the Envoy Service's own name.
    service = deployment["envoyService"]["name"]
    assert service == gateway.proxy_service(prod.gateway) == "nim-gateway-nim-gateway"
    assert gw["spec"]["listeners"] == [
        {"name": "https", "hostname": "llm.prod.example.com", "port": 443, "protocol": "HTTP",
         "allowedRoutes": {"namespaces": {"from": "Same"}}},
        {"name": "in-cluster", "hostname": f"{service}.envoy-gateway-system.svc.cluster.local", "port": 443,
         "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]
    assert gateway.in_cluster_url(prod.gateway) == f"http://{service}.envoy-gateway-system.svc.cluster.local:443/v1"
    assert all([(ref["name"], ref["sectionName"]) for ref in route["spec"]["parentRefs"]] == [
        ("nim-gateway", "https"), ("nim-gateway", "in-cluster")] for route in _of(objects, "AIGatewayRoute"))
    assert gw["spec"]["infrastructure"]["parametersRef"] == {
        "group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": _one(objects, "EnvoyProxy")["metadata"]["name"]}
    assert gw["spec"]["gatewayClassName"] == _one(objects, "GatewayClass")["metadata"]["name"]
    assert _one(objects, "GatewayClass")["spec"]["controllerName"] == gateway.CONTROLLER_NAME


def test_each_model_is_routed_by_its_public_name_to_its_service(prod: Environment,
                                                                objects: list[dict[str, Any]]) -> None:
    routes = {o["metadata"]["name"]: o for o in _of(objects, "AIGatewayRoute")}
    backends = {o["metadata"]["name"]: o for o in _of(objects, "Backend")}
    for model in prod.models:
        assert model.route is not None
        route = routes[model.name]["spec"]
        assert [r["matches"] for r in route["rules"]] == [
            [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": name}]}] for name in model.route.names]
        assert all(r["timeouts"] == {"request": f"{model.request_timeout_seconds}s"} for r in route["rules"])
        assert backends[model.name]["spec"]["endpoints"] == [
            {"fqdn": {"hostname": f"{model.name}.{model.namespace}.svc.cluster.local", "port": 8000}}]
        assert {"metadataKey": "llm_total_token", "type": "TotalToken"} in route["llmRequestCosts"]
    assert routes["llama-3-1-70b-instruct"]["spec"]["rules"][0]["timeouts"] == {"request": "600s"}


def test_only_authenticated_callers_reach_a_model_and_the_key_stays_at_the_door(
        prod: Environment, objects: list[dict[str, Any]]) -> None:
    policy = _one(objects, "SecurityPolicy")["spec"]
    assert policy["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": model.name}
                                    for model in prod.models]
    assert policy["apiKeyAuth"] == {
        "credentialRefs": [{"group": "", "kind": "Secret", "name": "gateway-api-keys"}],
        "extractFrom": [{"headers": ["authorization"]}], "forwardClientIDHeader": "x-nimgen-client",
        "sanitize": True}
    # A caller cannot claim another client's name: the header is dropped before authentication sets it.
    client = _one(objects, "ClientTrafficPolicy")["spec"]
    assert client["headers"]["earlyRequestHeaders"] == {"remove": ["x-nimgen-client"]}


def test_token_budgets_per_client_and_per_model(prod: Environment, objects: list[dict[str, Any]]) -> None:
    policy = _one(objects, "BackendTrafficPolicy")["spec"]
    rules = policy["rateLimit"]["global"]["rules"]
    cost = {"request": {"from": "Number", "number": 0},
            "response": {"from": "Metadata", "metadata": {"namespace": "io.envoy.ai_gateway", "key": "llm_total_token"}}}
    assert all(rule["cost"] == cost and rule["shared"] for rule in rules)
    assert rules[0]["clientSelectors"] == [{"headers": [{"name": "x-nimgen-client", "type": "Distinct"}]}]
    assert rules[0]["limit"] == {"requests": 400000, "unit": "Minute"}
    assert [rule["limit"] for rule in rules[1:]] == [{"requests": 200000, "unit": "Minute"}] * len(prod.models)
    for rule, model in zip(rules[1:], prod.models):
        assert model.route is not None
        [selector] = rule["clientSelectors"]
        client, by_model = selector["headers"]
        assert client == {"name": "x-nimgen-client", "type": "Distinct"}
        pattern = re.compile(by_model["value"])
        assert all(pattern.fullmatch(name) for name in model.route.names)
        # The dot of a name is a dot, not any character.
        assert not pattern.fullmatch(model.route.names[0].replace(".", "x").replace("/", "x") + "x")
    # Counters in a Redis only Envoy Gateway's rate limiter (in its namespace) may reach.
    redis = _one(objects, "NetworkPolicy")["spec"]
    assert redis["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "envoy-gateway-system"}}}], "ports": [{"port": "redis", "protocol": "TCP"}]}]
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["image"] == "docker.io/library/redis:8.2.4-alpine3.22"


def test_the_applications_install_the_pinned_controllers_first(prod: Environment) -> None:
    apps = applications.by_name(prod)

    def wave(name: str) -> int:
        return int(apps[name]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])

    eg, crds, ai = apps["envoy-gateway"], apps["ai-gateway-crds"], apps["ai-gateway"]
    assert {k: eg["spec"]["source"][k] for k in ("repoURL", "chart", "targetRevision")} == {
        "repoURL": "registry-1.docker.io/envoyproxy", "chart": "gateway-helm", "targetRevision": "v1.8.3"}
    assert (crds["spec"]["source"]["chart"], crds["spec"]["source"]["targetRevision"]) == ("ai-gateway-crds-helm", "v1.1.0")
    assert (ai["spec"]["source"]["chart"], ai["spec"]["source"]["targetRevision"]) == ("ai-gateway-helm", "v1.1.0")
    assert "ServerSideApply=true" in eg["spec"]["syncPolicy"]["syncOptions"]
    assert "ServerSideApply=true" in crds["spec"]["syncPolicy"]["syncOptions"]
    # Only cluster-scoped CRDs: the namespace is the controller Application's to create.
    assert "CreateNamespace=true" not in crds["spec"]["syncPolicy"]["syncOptions"]
    assert "CreateNamespace=true" in ai["spec"]["syncPolicy"]["syncOptions"]
    config = eg["spec"]["source"]["helm"]["valuesObject"]["config"]["envoyGateway"]
    assert config["extensionApis"]["enableBackend"] is True
    assert config["extensionManager"]["service"]["fqdn"] == {
        "hostname": "ai-gateway-controller.envoy-ai-gateway-system.svc.cluster.local", "port": 1063}
    assert config["rateLimit"]["backend"] == {"type": "Redis", "redis": {
        "url": "nim-gateway-ratelimit-redis.nim-gateway.svc.cluster.local:6379"}}
    # The webhook certificate ai-gateway-helm generates at every render: Argo CD keeps the first.
    ignored = {d["kind"] for d in ai["spec"]["ignoreDifferences"]}
    assert ignored == {"Secret", "MutatingWebhookConfiguration"}
    assert "RespectIgnoreDifferences=true" in ai["spec"]["syncPolicy"]["syncOptions"]
    assert wave("envoy-gateway") == wave("ai-gateway-crds") < wave("ai-gateway") < wave("llama3-8b-instruct") \
        < wave("nim-gateway")
    assert wave("platform-secrets") < wave("nim-gateway")  # the API keys' Secret first


def test_the_api_keys_come_from_secrets_manager(prod: Environment, rendered_repo: Path,
                                                helm_engine: helm.Engine) -> None:
    secrets = application_objects(helm_engine, rendered_repo, applications.by_name(prod)["platform-secrets"])
    [keys] = [o for o in secrets if o["kind"] == "ExternalSecret" and o["metadata"]["name"] == "gateway-api-keys"]
    assert keys["metadata"]["namespace"] == "nim-gateway"
    assert [(d["secretKey"], d["remoteRef"]) for d in keys["spec"]["data"]] == [
        (client, {"key": "nim-prod/gateway-api-keys", "property": client})
        for client in ("chat-frontend", "batch-eval", "open-webui")]


def test_the_platform_project_admits_every_gateway_kind(prod: Environment, objects: list[dict[str, Any]]) -> None:
    project = applications.platform_project(prod)
    assert project is not None
    namespaced = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    cluster = {(k["group"], k["kind"]) for k in project["spec"]["clusterResourceWhitelist"]}
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        assert (group, obj["kind"]) in (cluster if obj["kind"] == "GatewayClass" else namespaced), obj["kind"]
    destinations = {d["namespace"] for d in project["spec"]["destinations"]}
    assert {"nim-gateway", "envoy-gateway-system", "envoy-ai-gateway-system"} <= destinations


SERVED = VALID.replace("    nodePool: a10g\n", "    nodePool: a10g\n    servedModelName: meta/llama3-8b-instruct\n")


def _render(tmp_path: Path, gateway_yaml: str, helm_engine: helm.Engine) -> list[dict[str, Any]]:
    env_file = write_env(tmp_path, SERVED.replace("models:\n", gateway_yaml + "models:\n"))
    assert run("render", env_file).exit_code == 0
    env = load_environment(env_file, tmp_path)
    return application_objects(helm_engine, tmp_path, applications.by_name(env)["nim-gateway"])


def test_cert_manager_tls_oidc_and_no_limits(tmp_path: Path, helm_engine: helm.Engine, crd_schemas: Path) -> None:
    objects = _render(tmp_path, "gateway:\n  enabled: true\n  hostname: llm.example.com\n  scheme: internet-facing\n"
                      "  sourceRanges: [203.0.113.0/24]\n  tls: {certManager: {issuer: letsencrypt}}\n"
                      "  auth: {oidc: {issuer: 'https://login.example.com/realms/ai', audiences: [nim],"
                      " clientClaim: team}}\n", helm_engine)
    for obj in objects:
        if obj["apiVersion"] not in ("v1", "apps/v1", "networking.k8s.io/v1"):
            assert crd_errors(obj, crd_schemas) == []
    gw = _one(objects, "Gateway")
    assert gw["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    [listener] = gw["spec"]["listeners"]  # no in-cluster listener: port 443 speaks TLS only
    assert listener["protocol"] == "HTTPS" and listener["tls"] == {
        "mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "nim-gateway-tls"}]}
    service = _one(objects, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    assert "service.beta.kubernetes.io/aws-load-balancer-ssl-cert" not in service["annotations"]
    assert service["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert _one(objects, "SecurityPolicy")["spec"]["jwt"] == {"providers": [{
        "name": "oidc", "issuer": "https://login.example.com/realms/ai", "audiences": ["nim"],
        "remoteJWKS": {"uri": "https://login.example.com/realms/ai/.well-known/jwks.json"},
        "claimToHeaders": [{"header": "x-nimgen-client", "claim": "team"}]}]}
    # No token budget: no rate limiter and no Redis.
    assert not _of(objects, "BackendTrafficPolicy") and not _of(objects, "Deployment")


def test_a_public_model_is_left_out_of_authentication(tmp_path: Path, helm_engine: helm.Engine) -> None:
    env_file = write_env(tmp_path, SERVED.replace("models:\n", "gateway:\n  enabled: true\n  hostname: llm.example.com"
                                                  "\n  tls: {certManager: {issuer: letsencrypt, kind: Issuer}}\n"
                                                  "models:\n").replace("    servedModelName: meta/llama3-8b-instruct\n",
                                                                        "    servedModelName: meta/llama3-8b-instruct\n"
                                                                        "    gateway: {public: true, aliases: [llama3]}\n"))
    assert run("render", env_file).exit_code == 0
    objects = application_objects(helm_engine, tmp_path,
                                  applications.by_name(load_environment(env_file, tmp_path))["nim-gateway"])
    assert not _of(objects, "SecurityPolicy") and not _of(objects, "BackendTrafficPolicy")
    assert _one(objects, "Gateway")["metadata"]["annotations"] == {"cert-manager.io/issuer": "letsencrypt"}
    route = _one(objects, "AIGatewayRoute")
    assert route["metadata"]["labels"]["nimgen.io/access"] == "public"
    # The alias reaches NIM under the name it serves; the public name needs no rewriting.
    assert [r["backendRefs"] for r in route["spec"]["rules"]] == [
        [{"name": "llama3-8b-instruct"}],
        [{"name": "llama3-8b-instruct", "modelNameOverride": "meta/llama3-8b-instruct"}]]


@pytest.mark.parametrize(("values", "message"), [
    ({"hostname": ""}, "hostname is required"),
    ({"tls": {"mode": "loadBalancer", "certificateArn": "", "issuer": "", "issuerKind": "ClusterIssuer",
              "secretName": "x"}}, "tls.certificateArn is required"),
    ({"tls": {"mode": "gateway", "certificateArn": "", "issuer": "", "issuerKind": "ClusterIssuer",
              "secretName": "x"}}, "tls.issuer is required"),
    # prod's in-cluster listener shares port 443, which speaks TLS only once Envoy ends it.
    ({"tls": {"mode": "gateway", "certificateArn": "", "issuer": "letsencrypt", "issuerKind": "ClusterIssuer",
              "secretName": "x"}}, "inCluster.enabled needs tls.mode loadBalancer"),
    ({"auth": {"apiKeys": {"enabled": False, "secret": "k"}, "oidc": {"enabled": False, "issuer": "", "jwksUri": "",
                                                                       "audiences": [], "clientClaim": "sub"}}},
     "need auth.apiKeys or auth.oidc"),
])
def test_the_chart_refuses_an_open_or_plain_text_door(prod: Environment, rendered_repo: Path, helm_engine: helm.Engine,
                                                      values: dict[str, Any], message: str) -> None:
    base = applications.by_name(prod)["nim-gateway"]["spec"]["source"]["helm"]["valuesObject"]
    with pytest.raises(HelmError, match=re.escape(message)):
        helm_engine.template(rendered_repo / "charts/nim-gateway", {**base, **values}, release="nim-gateway",
                             namespace="nim-gateway", kube_version="1.33")


def test_the_environment_readme_shows_how_to_call_a_model(rendered_repo: Path) -> None:
    readme = (rendered_repo / "argocd/prod/README.md").read_text()
    section = readme.split("## The gateway", 1)[1].split("\n## ", 1)[0]
    assert "| `llama3-8b-instruct` | `meta/llama3-8b-instruct` | authenticated |" in section
    assert ("export NIM_API_KEY=\"$(aws secretsmanager get-secret-value --secret-id nim-prod/gateway-api-keys \\\n"
            "  --query SecretString --output text | jq -r '.[\"chat-frontend\"]')\"") in section
    assert ("curl https://llm.prod.example.com/v1/chat/completions \\\n  -H \"Authorization: Bearer $NIM_API_KEY\" \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            "  -d '{\"model\": \"meta/llama3-8b-instruct\", ") in section
    assert "Token budgets per client: 400000 tokens a minute across models, 200000 a minute on each model." in section


def test_a_readme_of_a_public_model_sends_no_key(tmp_path: Path) -> None:
    text = SERVED.replace("models:\n", "gateway:\n  enabled: true\n  hostname: llm.example.com\n"
                          "  tls: {certManager: {issuer: letsencrypt}}\nmodels:\n").replace(
        "    servedModelName: meta/llama3-8b-instruct\n",
        "    servedModelName: meta/llama3-8b-instruct\n    gateway: {public: true}\n")
    assert run("render", write_env(tmp_path, text)).exit_code == 0
    section = (tmp_path / "argocd/test/README.md").read_text().split("## The gateway", 1)[1].split("\n## ", 1)[0]
    assert "TLS at Envoy with a certificate cert-manager issues (ClusterIssuer letsencrypt)" in section
    assert "| `llama3-8b-instruct` | `meta/llama3-8b-instruct` | public |" in section
    assert "Authorization" not in section and "NIM_API_KEY" not in section
    assert "curl https://llm.example.com/v1/chat/completions \\\n  -H 'Content-Type: application/json'" in section


def _closure_findings(prod: Environment, monkeypatch: pytest.MonkeyPatch, *, hook: bool) -> list[str]:
    from nimgen.validation import closure
    from nimgen.validation.manifests import Applied
    from nimgen.validation.sources import AppResult

    if not hook:
        monkeypatch.setattr(gateway.FrontDoor, "run_time_objects", lambda self, env: {})
    apps = applications.by_name(prod)
    manifests = [Applied(app, "prod-root", f"argocd/prod/apps/{name}.yaml") for name, app in apps.items()]
    # What gateway-helm renders for its controller: a Deployment mounting the certificates certgen makes.
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "envoy-gateway", "namespace": "envoy-gateway-system"},
                  "spec": {"template": {"spec": {"containers": [{"name": "envoy-gateway", "image": "x"}],
                                                  "volumes": [{"name": "certs",
                                                               "secret": {"secretName": "envoy-gateway"}}]}}}}
    result = AppResult(apps["envoy-gateway"], "envoy-gateway.yaml",
                       objects=[Applied(deployment, "envoy-gateway", "gateway-helm/templates/deployment.yaml")])
    found, _ = closure.check_and_order(prod, manifests, [result])
    return [f.message for f in found if "envoy-gateway" in f.message]


def test_the_certificates_certgen_makes_count_as_made(prod: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _closure_findings(prod, monkeypatch, hook=True) == []
    [missing] = _closure_findings(prod, monkeypatch, hook=False)
    assert "Secret envoy-gateway-system/envoy-gateway" in missing
