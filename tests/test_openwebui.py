"""Open WebUI: the Application and nimgen's open-webui chart, rendered by the real Helm engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import example_environment, shared
from helpers import VALID, run, write_env
from kube import application_objects, crd_errors, kubernetes_errors
from nimgen import helm
from nimgen.components import gateway, models, openwebui
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.helm import HelmError
from nimgen.model import Environment, Gateway
from nimgen.secrets import find_secrets
from nimgen.yamlio import load_all_plain

WEBUI = VALID.replace("models:\n", "addons:\n  openWebUI: {enabled: true}\nmodels:\n")
GATEWAY_WEBUI = VALID.replace("    nodePool: a10g\n", "    nodePool: a10g\n    servedModelName: meta/llama3-8b-instruct\n"
                              ).replace("models:\n", """\
addons:
  openWebUI: {enabled: true}
gateway:
  enabled: true
  hostname: llm.example.com
  tls: {acmCertificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"}
  auth:
    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [chat, team-a]}
models:
""")
SECOND_MODEL = """\
  - name: mistral-7b
    image: nvcr.io/nim/mistralai/mistral-7b-instruct-v0.3:1.12.0
    nodePool: a10g
    namespace: nim-b
"""


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def _env(tmp_path: Path, text: str) -> Environment:
    return load_environment(write_env(tmp_path, text), tmp_path)


def _wave(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


@pytest.fixture(scope=shared("module"))
def prod() -> Environment:
    return example_environment("prod")


@pytest.fixture(scope=shared("module"))
def prod_objects(prod: Environment, rendered_repo: Path, helm_engine: helm.Engine) -> list[dict[str, Any]]:
    return application_objects(helm_engine, rendered_repo, applications.by_name(prod)["open-webui"])


def test_application_validates_and_syncs_after_the_models(prod: Environment, rendered_repo: Path,
                                                          crd_schemas: Path) -> None:
    app = applications.by_name(prod)["open-webui"]
    assert crd_errors(app, crd_schemas) == []
    assert app["spec"]["project"] == "prod-platform"
    assert app["spec"]["source"]["path"] == "charts/open-webui"
    assert app["spec"]["destination"]["namespace"] == "open-webui"
    assert "automated" in app["spec"]["syncPolicy"]  # a platform Application like the others
    # After every model: a broken UI never holds back a model, and a loading model only appears later.
    assert all(_wave(app) > _wave(applications.by_name(prod)[model.name]) for model in prod.models)
    # The committed example is what nimgen renders.
    committed = load_all_plain((rendered_repo / "argocd/prod/apps/platform/open-webui.yaml").read_text())
    assert committed == [app]


def test_every_object_passes_kubernetes_strict_schema(prod: Environment, prod_objects: list[dict[str, Any]],
                                                      rendered_repo: Path, helm_engine: helm.Engine) -> None:
    values = applications.by_name(prod)["open-webui"]["spec"]["source"]["helm"]["valuesObject"]
    findings = helm_engine.lint(rendered_repo / "charts/open-webui", values, kube_version="1.33")
    assert [f for f in findings if f.severity in ("warning", "error")] == []  # helm lint --strict
    assert {o["kind"] for o in prod_objects} == {"Deployment", "Service", "ServiceAccount", "PersistentVolumeClaim",
                                                "NetworkPolicy"}
    for obj in prod_objects:
        assert kubernetes_errors(obj, "1.33") == [], obj["kind"]


def test_wired_to_every_models_service(prod: Environment, rendered_repo: Path, helm_engine: helm.Engine) -> None:
    assert prod.open_webui is not None
    direct = dataclasses.replace(prod, open_webui=dataclasses.replace(prod.open_webui, gateway_client=""))
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(direct)["open-webui"])
    [container] = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env_vars = {e["name"]: e for e in container["env"]}
    assert "NIMGEN_GATEWAY_API_KEY" not in env_vars
    urls = env_vars["OPENAI_API_BASE_URLS"]["value"].split(";")
    expected = []
    for model in prod.models:
        # The Service the nim-llm chart renders for the model, as Argo CD renders it.
        objects = application_objects(helm_engine, rendered_repo, applications.by_name(prod)[model.name])
        [service] = [o for o in objects if o["kind"] == "Service" and "clusterIP" not in o["spec"]]
        [port] = [p["port"] for p in service["spec"]["ports"] if p["name"] == "http-openai"]
        expected.append(f"http://{service['metadata']['name']}.{service['metadata']['namespace']}"
                        f".svc.cluster.local:{port}/v1")
    assert urls == expected == [models.model_url(model) for model in prod.models]
    # One (unused) key per URL, as Open WebUI pairs them; NIM needs none.
    assert env_vars["OPENAI_API_KEYS"]["value"].split(";") == ["not-needed"] * len(urls)
    assert env_vars["ENABLE_OPENAI_API"]["value"] == "True" and env_vars["ENABLE_OLLAMA_API"]["value"] == "False"
    # Taken from the manifest at every start, so a model added later shows up after the next sync.
    assert env_vars["ENABLE_PERSISTENT_CONFIG"]["value"] == "False"


def test_prod_chats_through_the_gateway_with_a_key_of_its_own(prod: Environment,
                                                              prod_objects: list[dict[str, Any]]) -> None:
    assert prod.gateway is not None and prod.open_webui is not None
    assert prod.open_webui.gateway_client == "open-webui" in prod.gateway.api_key_clients
    [container] = _one(prod_objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    env_vars = {e["name"]: e for e in container["env"]}
    # Every model of prod is behind the gateway: one connection, the gateway's in-cluster endpoint.
    assert env_vars["OPENAI_API_BASE_URLS"]["value"] == gateway.in_cluster_url(prod.gateway)
    # The key is put in by Kubernetes from a variable defined before it: never in the manifest.
    assert env_vars["OPENAI_API_KEYS"]["value"] == "$(NIMGEN_GATEWAY_API_KEY)"
    assert names.index("NIMGEN_GATEWAY_API_KEY") < names.index("OPENAI_API_KEYS")
    assert env_vars["NIMGEN_GATEWAY_API_KEY"]["valueFrom"] == {"secretKeyRef": {
        "name": "open-webui-gateway-api-key", "key": "open-webui"}}
    info = {i["name"]: i["value"] for i in applications.by_name(prod)["open-webui"]["spec"]["info"]}
    assert info["Through"] == f"{gateway.in_cluster_url(prod.gateway)} as open-webui"


def test_models_the_gateway_does_not_serve_stay_direct(tmp_path: Path, rendered_repo: Path,
                                                       helm_engine: helm.Engine) -> None:
    text = (GATEWAY_WEBUI.replace("{enabled: true}", "{enabled: true, gatewayClient: chat}")
            + SECOND_MODEL + "    gateway: {enabled: false}\n")
    env = _env(tmp_path, text)
    assert env.gateway is not None
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(env)["open-webui"])
    env_vars = {e["name"]: e for e in _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_vars["OPENAI_API_BASE_URLS"]["value"] == (
        f"{gateway.in_cluster_url(env.gateway)};http://mistral-7b.nim-b.svc.cluster.local:8000/v1")
    assert env_vars["OPENAI_API_KEYS"]["value"] == "$(NIMGEN_GATEWAY_API_KEY);not-needed"
    assert env_vars["NIMGEN_GATEWAY_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "open-webui-gateway-api-key", "key": "chat"}
    # Without gatewayClient, the gateway changes nothing for Open WebUI.
    env = _env(tmp_path, GATEWAY_WEBUI + SECOND_MODEL + "    servedModelName: mistralai/mistral-7b-instruct-v0.3\n")
    assert openwebui.values(env)["gateway"] == {"url": "", "apiKeySecret": {"name": "", "key": ""}}
    assert openwebui.values(env)["openaiBaseUrls"] == [models.model_url(model) for model in env.models]
    assert openwebui.gateway_key_secrets(env) == []


def test_with_tls_at_envoy_the_public_endpoint_is_called() -> None:
    door = Gateway(namespace="door", hostname="llm.example.com", scheme="internal", cert_issuer="letsencrypt",
                   api_key_clients=("chat",), api_keys_remote="k")
    assert gateway.in_cluster_url(door) == "https://llm.example.com/v1"
    assert gateway.in_cluster_url(dataclasses.replace(door, cert_issuer="", acm_certificate_arn="arn")) == (
        "http://nim-gateway-door.envoy-gateway-system.svc.cluster.local:443/v1")
    # A long gateway namespace still names a Service within the 63 characters of a DNS label.
    long = dataclasses.replace(door, namespace="n" * 60)
    assert gateway.proxy_service(long) == f"nim-gateway-{'n' * 51}" and len(gateway.proxy_service(long)) == 63


def test_model_network_policies_admit_open_webui(prod: Environment, rendered_repo: Path,
                                                 helm_engine: helm.Engine) -> None:
    for model in prod.models:
        objects = application_objects(helm_engine, rendered_repo, applications.by_name(prod)[model.name])
        [policy] = [o for o in objects if o["kind"] == "NetworkPolicy"
                    and not o["metadata"]["name"].endswith("-cache-warmup")]
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]
                 if any(port["port"] == "http-openai" for port in rule["ports"])]

        def admits(peer: dict[str, Any], namespace: str = "open-webui") -> bool:
            selector = peer.get("namespaceSelector")
            return selector is not None and "podSelector" not in peer and (
                selector == {} or selector.get("matchLabels") == {"kubernetes.io/metadata.name": namespace})

        assert any(admits(peer) for peer in peers), model.name


def test_authentication_on_and_no_secret_in_git(prod: Environment, prod_objects: list[dict[str, Any]]) -> None:
    [container] = _one(prod_objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env_vars = {e["name"]: e for e in container["env"]}
    assert env_vars["WEBUI_AUTH"]["value"] == "True"
    assert env_vars["ENABLE_SIGNUP"]["value"] == "False"
    assert env_vars["DEFAULT_USER_ROLE"]["value"] == "pending"
    # The key is required; the first admin's credentials only until the admin exists.
    assert env_vars["WEBUI_SECRET_KEY"] == {"name": "WEBUI_SECRET_KEY", "valueFrom": {"secretKeyRef": {
        "name": "open-webui", "key": "WEBUI_SECRET_KEY"}}}
    for name in ("WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD"):
        assert env_vars[name]["valueFrom"]["secretKeyRef"] == {"name": "open-webui", "key": name, "optional": True}
    assert not [o for o in prod_objects if o["kind"] == "Secret"]
    app = applications.by_name(prod)["open-webui"]
    for document in [app, *prod_objects]:
        assert list(find_secrets(document)) == []


def test_non_root_no_gpu_data_on_a_kept_claim(prod_objects: list[dict[str, Any]]) -> None:
    deployment = _one(prod_objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"} and deployment["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert "tolerations" not in pod and "nodeSelector" not in pod
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert "nvidia.com/gpu" not in str(container["resources"])
        assert container["image"] == openwebui.DEFAULT_IMAGE
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert pod["containers"][0][probe]["httpGet"]["port"] == "http"
    claim = _one(prod_objects, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Delete=false,Prune=false"
    assert pod["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}]
    service = _one(prod_objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == pod["containers"][0]["ports"][0]["name"] == "http"


def test_platform_project_admits_it(prod: Environment, prod_objects: list[dict[str, Any]], crd_schemas: Path) -> None:
    project = applications.platform_project(prod)
    assert crd_errors(project, crd_schemas) == []
    assert "open-webui" in {d["namespace"] for d in project["spec"]["destinations"]}
    admitted = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    for obj in prod_objects:
        group = obj["apiVersion"].rpartition("/")[0]
        assert (group, obj["kind"]) in admitted, obj["kind"]


def test_settings_reach_the_chart(tmp_path: Path, rendered_repo: Path, helm_engine: helm.Engine) -> None:
    text = WEBUI.replace("{enabled: true}", "{enabled: true, namespace: chat, secret: webui-keys, allowSignup: true, "
                                            "image: 'ghcr.io/open-webui/open-webui:v0.7.2', "
                                            "persistence: {size: 20Gi, storageClassName: gp3}, "
                                            "resources: {cpu: '1', memory: 3Gi}}") + SECOND_MODEL
    env = _env(tmp_path, text)
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(env)["open-webui"])
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    env_vars = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env_vars["ENABLE_SIGNUP"]["value"] == "True"
    assert env_vars["WEBUI_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "webui-keys"
    assert env_vars["OPENAI_API_BASE_URLS"]["value"] == (
        "http://llama3-8b-instruct.nim.svc.cluster.local:8000/v1;http://mistral-7b.nim-b.svc.cluster.local:8000/v1")
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"memory": "3Gi"}}
    claim = _one(objects, "PersistentVolumeClaim")["spec"]
    assert (claim["storageClassName"], claim["resources"]["requests"]["storage"]) == ("gp3", "20Gi")
    assert {o["metadata"]["namespace"] for o in objects} == {"chat"}


def test_off_by_default(tmp_path: Path) -> None:
    dev = example_environment("dev")
    assert dev.open_webui is None
    assert "open-webui" not in {d["namespace"] for d in applications.platform_project(dev)["spec"]["destinations"]}
    result = run("render", write_env(tmp_path, VALID))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "argocd/test/apps/platform/open-webui.yaml").exists()
    assert not (tmp_path / "charts/open-webui").exists()


def test_alone_it_still_gets_a_platform_project(tmp_path: Path, crd_schemas: Path) -> None:
    result = run("render", write_env(tmp_path, WEBUI))
    assert result.exit_code == 0, result.output
    for name in ("project.yaml", "open-webui.yaml"):
        [obj] = load_all_plain((tmp_path / "argocd/test/apps/platform" / name).read_text())
        assert crd_errors(obj, crd_schemas) == []
    readme = (tmp_path / "argocd/test/README.md").read_text()
    assert "## Open WebUI" in readme and "kubectl -n open-webui create secret generic open-webui" in readme


@pytest.mark.parametrize(("setting", "message"), [
    ("image: ghcr.io/open-webui/open-webui:main",
     "$.addons.openWebUI.image: image 'ghcr.io/open-webui/open-webui:main' is not pinned: tag ':main' follows a branch"),
    ("image: ghcr.io/open-webui/open-webui",
     "$.addons.openWebUI.image: image 'ghcr.io/open-webui/open-webui' is not pinned"),
    ("namespace: argocd", "$.addons.openWebUI.namespace: Open WebUI namespace 'argocd' is reserved"),
    ("namespace: nim", None),  # sharing a namespace with the models is fine...
    ("webuiSecretKey: abc", "$.addons.openWebUI.webuiSecretKey: unknown key 'webuiSecretKey'"),
    ("gatewayClient: chat", ("$.addons.openWebUI.gatewayClient: Open WebUI would chat through the gateway as "
                             "'chat', but the environment has no gateway")),
    ("gatewayClient: Chat", "$.addons.openWebUI.gatewayClient: "),
])
def test_checks(tmp_path: Path, setting: str, message: str | None) -> None:
    result = run("render", write_env(tmp_path, WEBUI.replace("{enabled: true}", f"{{enabled: true, {setting}}}")))
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1 and message in result.output, result.output
        assert not (tmp_path / "argocd").exists()


@pytest.mark.parametrize(("old", "new", "message"), [
    ("clients: [chat, team-a]", "clients: [team-a]", ("Open WebUI's gateway client 'chat' is not one of "
                                                      "gateway.auth.apiKeys.clients, so the gateway's secret holds no "
                                                      "key for it")),
    ("apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [chat, team-a]}",
     "oidc: {issuer: 'https://login.example.com', audiences: [nim]}",
     "but the gateway takes no API keys: Open WebUI can send a key, not obtain an OIDC token"),
])
def test_a_gateway_client_needs_a_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = GATEWAY_WEBUI.replace("{enabled: true}", "{enabled: true, gatewayClient: chat}")
    assert old in text
    result = run("render", write_env(tmp_path, text.replace(old, new)))
    assert result.exit_code == 1 and "$.addons.openWebUI.gatewayClient: " in result.output, result.output
    assert message in result.output
    assert not (tmp_path / "argocd").exists()


def test_service_name_clash_and_no_models(tmp_path: Path) -> None:
    clash = WEBUI.replace("name: llama3-8b-instruct", "name: open-webui").replace(
        "{enabled: true}", "{enabled: true, namespace: nim}")
    result = run("render", write_env(tmp_path, clash))  # ...unless a model is named like Open WebUI's Service
    assert result.exit_code == 1
    assert "model 'open-webui' and Open WebUI would both own Service nim/open-webui" in result.output
    empty = WEBUI[:WEBUI.index("models:")] + "models: []\n"
    result = run("render", write_env(tmp_path, empty, "empty.yaml"))
    assert result.exit_code == 0, result.output
    assert "warning: Open WebUI is enabled but the environment has no model to chat with" in result.output


def test_chart_refuses_a_moving_tag(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    with pytest.raises(HelmError, match="moves with every Open WebUI release"):
        helm_engine.template(rendered_repo / "charts/open-webui", {"image": {"tag": "main"}}, release="open-webui",
                             namespace="open-webui", kube_version="1.33")
    # No URL at all: Open WebUI must not fall back to api.openai.com.
    objects = [d for p, t in helm_engine.template(rendered_repo / "charts/open-webui", {}, release="open-webui",
                                                  namespace="open-webui", kube_version="1.33").items()
               if not p.endswith("NOTES.txt") for d in load_all_plain(t)]
    [container] = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    assert env_vars["ENABLE_OPENAI_API"] == "False"


def test_default_image_is_the_schema_default() -> None:
    from nimgen.environment.load import environment_schema

    spec = environment_schema()["properties"]["addons"]["properties"]["openWebUI"]["properties"]
    assert spec["image"]["default"] == openwebui.DEFAULT_IMAGE
    from nimgen.gitops.charts import chart_default_values, chart_metadata

    values = chart_default_values("open-webui")
    assert f"{values['image']['repository']}:{values['image']['tag']}" == openwebui.DEFAULT_IMAGE
    assert chart_metadata("open-webui")["appVersion"] == values["image"]["tag"]


def test_values_are_documented_and_schema_covers_them() -> None:
    from nimgen.gitops.charts import chart_default_values, chart_files, chart_values_schema, documented_values

    values_text = dict(chart_files("open-webui"))[PurePosixPath("charts/open-webui/values.yaml")]
    rows = {row.key for row in documented_values(values_text)}
    schema = chart_values_schema("open-webui")["properties"]
    for key, spec in schema.items():
        children = spec.get("properties", {}) if spec.get("additionalProperties") is False else {}
        assert key in rows or (children and all(f"{key}.{child}" in rows for child in children)), key
    assert set(chart_default_values("open-webui")) == set(schema)


def test_a_model_that_scales_to_zero_wants_open_webui_through_the_gateway(tmp_path: Path) -> None:
    asleep = ("    replicas: {min: 1, max: 3}\n    autoscaling: {engine: keda, metric: num_requests_waiting, target: 2}\n"
              "    scaleToZero: {enabled: true}\n")
    text = GATEWAY_WEBUI.replace("gateway:\n", "observability:\n  enabled: true\ngateway:\n", 1) + asleep
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0, result.output
    assert ("$.addons.openWebUI: warning: Open WebUI calls 'llama3-8b-instruct' directly, and a model scaled to zero "
            "starts only on the gateway's requests") in result.output
    through = text.replace("openWebUI: {enabled: true}", "openWebUI: {enabled: true, gatewayClient: chat}")
    result = run("render", write_env(tmp_path / "other", through))
    assert result.exit_code == 0, result.output
    assert "Open WebUI calls" not in result.output


@pytest.mark.parametrize("gateway_values", [
    {"url": "http://door.example:443/v1", "apiKeySecret": {"name": "", "key": "chat"}},  # a gateway needs its key
    {"url": "http://door.example:443/v1", "apiKeySecret": {"name": "keys", "key": ""}},
    {"url": "http://door.example:443", "apiKeySecret": {"name": "keys", "key": "chat"}},  # an OpenAI base URL ends in /v1
    {"url": "http://a/v1;http://b/v1", "apiKeySecret": {"name": "keys", "key": "chat"}},  # ';' separates URLs
])
def test_chart_refuses_a_gateway_without_its_key_or_a_base_url(rendered_repo: Path, helm_engine: helm.Engine,
                                                              gateway_values: dict[str, Any]) -> None:
    with pytest.raises(HelmError, match="gateway"):
        helm_engine.template(rendered_repo / "charts/open-webui", {"gateway": gateway_values}, release="open-webui",
                             namespace="open-webui", kube_version="1.33")
