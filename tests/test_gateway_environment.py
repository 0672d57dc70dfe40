"""The environment's `gateway:` section and each model's `gateway:`: what they build, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import VALID, run, write_env
from nimgen.environment.load import load_environment
from nimgen.model import Gateway, Route

GATEWAY = """\
gateway:
  enabled: true
  hostname: llm.example.com
  tls: {acmCertificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"}
  auth:
    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [team-a, team-b]}
  rateLimits: {tokensPerMinutePerClient: 100000, tokensPerMinutePerModel: 50000}
"""
SECOND = """\
  - name: mistral-7b
    image: nvcr.io/nim/mistralai/mistral-7b-instruct-v0.3:1.12.0
    nodePool: a10g
    servedModelName: mistralai/mistral-7b-instruct-v0.3
"""


SERVED = VALID.replace("    nodePool: a10g\n", "    nodePool: a10g\n    servedModelName: meta/llama3-8b-instruct\n")


def _text(gateway: str = GATEWAY, models: str = "") -> str:
    return SERVED.replace("models:\n", gateway + "models:\n") + models


def _refused(tmp_path: Path, text: str) -> str:
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "argocd").exists()
    return result.output


def test_the_section_builds_the_gateway_and_a_route_per_model(tmp_path: Path) -> None:
    second = SECOND + "    gateway: {name: mistral, aliases: [mistral-7b-instruct], tokensPerMinute: 2000}\n"
    env = load_environment(write_env(tmp_path, _text(models=second)), tmp_path)
    assert env.gateway == Gateway(
        namespace="nim-gateway", hostname="llm.example.com", scheme="internal",
        acm_certificate_arn="arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        api_keys_remote="nim-test/gateway-api-keys", api_key_clients=("team-a", "team-b"),
        tokens_per_client=100000, tokens_per_model=50000)
    assert env.gateway.authenticated
    first, mistral = env.models
    assert first.route == Route(("meta/llama3-8b-instruct",))  # the name NIM serves
    assert mistral.route == Route(("mistral", "mistral-7b-instruct"), tokens_per_minute=2000)


def test_a_model_may_opt_out(tmp_path: Path) -> None:
    first, mistral = load_environment(write_env(tmp_path, _text(models=SECOND + "    gateway: {enabled: false}\n")),
                                      tmp_path).models
    assert first.route == Route(("meta/llama3-8b-instruct",))
    assert mistral.route is None


def test_a_served_model_needs_the_name_nim_serves(tmp_path: Path) -> None:
    output = _refused(tmp_path, VALID.replace("models:\n", GATEWAY + "models:\n"))
    assert ("$.models[0]: model 'llama3-8b-instruct' is served through the gateway but has no servedModelName: the "
            "gateway must send NIM the model name it serves") in output
    opted_out = VALID.replace("models:\n", GATEWAY + "models:\n").replace(
        "    nodePool: a10g\n", "    nodePool: a10g\n    gateway: {enabled: false}\n")
    result = run("render", write_env(tmp_path, opted_out, "out.yaml"))
    assert result.exit_code == 0 and "serves no model" in result.output, result.output


def test_without_a_gateway_nothing_is_routed(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, VALID), tmp_path)
    assert env.gateway is None and all(model.route is None for model in env.models)


def test_cert_manager_and_oidc(tmp_path: Path) -> None:
    gateway = (GATEWAY.replace('{acmCertificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/'
                               '0a1b2c3d-4e5f-6789-abcd-ef0123456789"}', "{certManager: {issuer: letsencrypt}}")
               .replace("    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [team-a, team-b]}\n",
                        "    oidc: {issuer: https://login.example.com/realms/ai, audiences: [nim]}\n"))
    gw = load_environment(write_env(tmp_path, _text(gateway)), tmp_path).gateway
    assert gw is not None
    assert (gw.cert_issuer, gw.cert_issuer_kind, gw.acm_certificate_arn) == ("letsencrypt", "ClusterIssuer", "")
    assert (gw.oidc_issuer, gw.oidc_audiences, gw.oidc_client_claim) == (
        "https://login.example.com/realms/ai", ("nim",), "sub")
    assert gw.authenticated and gw.api_key_clients == ()


@pytest.mark.parametrize(("old", "new", "message"), [
    ("  hostname: llm.example.com\n", "", "$.gateway: the gateway has no hostname"),
    (('  tls: {acmCertificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-'
      'ef0123456789"}\n'), "", "$.gateway: the gateway has no TLS: every listener must use it"),
    ("  tls: {", "  tls: {certManager: {issuer: x}, ", "$.gateway.tls: "),  # one of the two, not both
    ("  hostname: llm.example.com", "  hostname: LLM.example.com", "$.gateway.hostname: "),
    ("acm:us-west-2:123456789012", "acm:us-west-2:1234", "$.gateway.tls.acmCertificateArn: "),
    ("clients: [team-a, team-b]", "clients: []", "$.gateway.auth.apiKeys.clients: "),
    ("  hostname: llm.example.com\n", "  hostname: llm.example.com\n  namespace: kube-system\n",
     "$.gateway.namespace: gateway namespace 'kube-system' is reserved"),
    ("  hostname: llm.example.com\n", "  hostname: llm.example.com\n  namespace: argocd\n",
     "$.gateway.namespace: gateway namespace 'argocd' is reserved"),
])
def test_gateway_settings_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GATEWAY
    assert message in _refused(tmp_path, _text(GATEWAY.replace(old, new)))


def test_a_model_without_authentication_needs_public(tmp_path: Path) -> None:
    open_door = GATEWAY.replace("  auth:\n    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [team-a, "
                                "team-b]}\n", "").replace("  rateLimits: {tokensPerMinutePerClient: 100000, "
                                                          "tokensPerMinutePerModel: 50000}\n", "")
    output = _refused(tmp_path, _text(open_door))
    assert ("$.models[0]: model 'llama3-8b-instruct' would be served by the gateway without authentication\n"
            "    hint: set gateway.auth (apiKeys or oidc), mark the model gateway.public: true") in output
    public = _text(open_door).replace("    nodePool: a10g\n", "    nodePool: a10g\n    gateway: {public: true}\n", 1)
    result = run("render", write_env(tmp_path, public, "public.yaml"))
    assert result.exit_code == 0, result.output


def test_token_limits_need_clients(tmp_path: Path) -> None:
    no_auth = GATEWAY.replace("  auth:\n    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [team-a, "
                              "team-b]}\n", "")
    text = _text(no_auth).replace("    nodePool: a10g\n", "    nodePool: a10g\n    gateway: {public: true}\n", 1)
    assert "$.gateway.rateLimits: token limits per client need clients" in _refused(tmp_path, text)


@pytest.mark.parametrize(("second", "where"), [
    ("    gateway: {name: meta/llama3-8b-instruct}\n", "$.models[1].gateway.name"),
    ("    gateway: {aliases: [meta/llama3-8b-instruct]}\n", "$.models[1].gateway.aliases"),
])
def test_public_names_are_unique(tmp_path: Path, second: str, where: str) -> None:
    output = _refused(tmp_path, _text(models=SECOND + second))
    assert (f"{where}: models 'llama3-8b-instruct' and 'mistral-7b' both answer to 'meta/llama3-8b-instruct' through "
            "the gateway") in output


def test_two_models_serving_one_name_collide(tmp_path: Path) -> None:
    second = SECOND.replace("servedModelName: mistralai/mistral-7b-instruct-v0.3", "servedModelName: meta/llama3-8b-instruct")
    assert ("$.models[1].servedModelName: models 'llama3-8b-instruct' and 'mistral-7b' both answer to "
            "'meta/llama3-8b-instruct' through the gateway") in _refused(tmp_path, _text(models=second))


def test_a_model_opted_out_takes_no_name(tmp_path: Path) -> None:
    text = _text(models=SECOND + "    gateway: {enabled: false, name: meta/llama3-8b-instruct}\n")
    assert run("render", write_env(tmp_path, text)).exit_code == 0


def test_a_public_model_without_a_gateway_is_a_warning(tmp_path: Path) -> None:
    text = VALID.replace("    nodePool: a10g\n", "    nodePool: a10g\n    gateway: {public: true}\n")
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0, result.output
    assert "warning: model 'llama3-8b-instruct' is marked public but the environment has no gateway" in result.output


def test_plan_shows_the_endpoint_and_who_may_call_each_model(tmp_path: Path) -> None:
    second = SECOND + "    gateway: {name: mistral, aliases: [mistral-7b-instruct], public: true}\n"
    env_file = write_env(tmp_path, _text(models=second))
    result = run("plan", env_file)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("endpoint https://llm.example.com/v1 (internal load balancer), authentication: API keys "
                        "(2 clients: team-a, team-b)")
    assert [line.split() for line in lines[start + 1:start + 4]] == [
        ["MODEL", "CALLED", "AS", "ACCESS"],
        ["llama3-8b-instruct", "meta/llama3-8b-instruct", "authenticated"],
        ["mistral-7b", "mistral,", "mistral-7b-instruct", "public"]]
    document = json.loads(run("plan", env_file, "-o", "json").output)
    assert document["endpoint"] == {
        "url": "https://llm.example.com/v1", "scheme": "internal",
        "authentication": "API keys (2 clients: team-a, team-b)",
        "routes": [{"model": "llama3-8b-instruct", "names": ["meta/llama3-8b-instruct"], "public": False},
                   {"model": "mistral-7b", "names": ["mistral", "mistral-7b-instruct"], "public": True}]}


def test_plan_without_a_gateway_has_no_endpoint(tmp_path: Path) -> None:
    env_file = write_env(tmp_path, VALID)
    assert "endpoint" not in run("plan", env_file).output
    assert json.loads(run("plan", env_file, "-o", "json").output)["endpoint"] is None


def test_plan_names_an_oidc_issuer(tmp_path: Path) -> None:
    gateway = GATEWAY.replace("    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [team-a, team-b]}\n",
                              "    oidc: {issuer: https://login.example.com/realms/ai, audiences: [nim]}\n")
    output = run("plan", write_env(tmp_path, _text(gateway))).output
    assert "authentication: OIDC (https://login.example.com/realms/ai)" in output


def test_a_model_that_is_no_mapping_keeps_the_others_places(tmp_path: Path) -> None:
    text = _text(models="  - just-a-name\n" + SECOND.replace("servedModelName: mistralai/mistral-7b-instruct-v0.3",
                                                             "servedModelName: meta/llama3-8b-instruct"))
    output = _refused(tmp_path, text)
    # models[1] is the string; the clash is reported where the second model is, models[2].
    assert "$.models[2].servedModelName: models 'llama3-8b-instruct' and 'mistral-7b' both answer to" in output

