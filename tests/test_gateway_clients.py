"""What a client of prod's gateway sees: `nimgen smoke` (the official OpenAI client) calls a local stand-in for Envoy
that routes exactly as prod's rendered objects say - the AIGatewayRoutes' model names and name rewriting, the
SecurityPolicy's routes and the API keys' Secret - to one stub NIM per model. Only Envoy is stood in for; what it
obeys is nimgen's output, read from the rendered tree."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import example_environment
from helpers import run
from kube import application_objects
from nimgen import helm
from nimgen.gitops import applications
from smokestub import StubConfig, StubServer, start_stub

KEYS = {"chat-frontend": "key-of-chat-frontend", "batch-eval": "key-of-batch-eval",  # Secrets Manager, in the test
        "open-webui": "key-of-open-webui"}


def _routing(objects: list[dict[str, Any]]) -> tuple[dict[str, tuple[str, str | None, str]], set[str]]:
    """Model name -> (backend, name sent on, route), and the routes a SecurityPolicy with API keys covers."""
    table: dict[str, tuple[str, str | None, str]] = {}
    for route in (o for o in objects if o["kind"] == "AIGatewayRoute"):
        for rule in route["spec"]["rules"]:
            [match] = rule["matches"]
            [header] = match["headers"]
            assert header["name"] == "x-ai-eg-model" and header.get("type", "Exact") == "Exact"
            [ref] = rule["backendRefs"]
            table[header["value"]] = (ref["name"], ref.get("modelNameOverride"), route["metadata"]["name"])
    covered = {ref["name"] for policy in objects if policy["kind"] == "SecurityPolicy" and "apiKeyAuth" in policy["spec"]
               for ref in policy["spec"]["targetRefs"] if ref["kind"] == "HTTPRoute"}
    return table, covered


def _gateway(objects: list[dict[str, Any]], backends: dict[str, StubServer], secret: dict[str, str]
             ) -> ThreadingHTTPServer:
    table, covered = _routing(objects)
    by_key = {key: client for client, key in secret.items()}

    class Envoy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # Envoy AI Gateway answers /v1/models with the routes' model names
            models = [{"id": name, "object": "model", "created": 0, "owned_by": "Envoy AI Gateway"} for name in table]
            self._send(200, json.dumps({"object": "list", "data": models}).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body.get("model") not in table:
                self._send(404, b'{"error": {"message": "No matching route found"}}')
                return
            backend, rewrite, route = table[body["model"]]
            headers = {"Content-Type": "application/json"}
            if route in covered:  # apiKeyAuth: "Bearer " dropped, the key looked up, the client named, the key kept
                given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if given not in by_key:
                    self._send(401, b'{"error": {"message": "Client authentication failed."}}')
                    return
                headers["x-nimgen-client"] = by_key[given]
            forwarded = json.dumps({**body, "model": rewrite or body["model"]}).encode()
            request = urllib.request.Request(f"{backends[backend].url}{self.path}", data=forwarded, headers=headers)
            with urllib.request.urlopen(request, timeout=30) as answer:
                self._send(answer.status, answer.read())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Envoy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def gateway(rendered_repo: Path, helm_engine: helm.Engine, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Callable[[], tuple[str, dict[str, StubServer]]]]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    prod = example_environment("prod")
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(prod)["nim-gateway"])
    started: list[Any] = []

    def start() -> tuple[str, dict[str, StubServer]]:
        backends = {}
        for model in prod.models:  # each NIM serves only its own servedModelName
            stub, httpd = start_stub(StubConfig(models=(model.served_model_name,)))
            backends[model.name] = stub
            started.append(httpd)
        server = _gateway(objects, backends, KEYS)
        started.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", backends

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_client_reaches_each_model_by_its_public_name_with_its_key(
        gateway: Callable[[], tuple[str, dict[str, StubServer]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, backends = gateway()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hi\nbye\n", encoding="utf-8")
    monkeypatch.setenv("NIM_API_KEY", KEYS["batch-eval"])
    for model, name in (("llama3-8b-instruct", "meta/llama3-8b-instruct"),
                        ("llama-3-1-70b-instruct", "meta/llama-3.1-70b-instruct")):
        result = run("smoke", "--url", url, "--model", name, "--prompts", prompts, "--api-key-env", "NIM_API_KEY")
        assert result.exit_code == 0, result.output
        posts = backends[model].posts()
        assert [post["body"]["model"] for post in posts] == [name, name]
    # The other model's NIM saw none of the first model's requests, and the key never reached a NIM.
    assert all(entry["authorization"] != f"Bearer {KEYS['batch-eval']}"
               for stub in backends.values() for entry in stub.log)


def test_without_a_key_the_gateway_refuses(gateway: Callable[[], tuple[str, dict[str, StubServer]]],
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, backends = gateway()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hi\n", encoding="utf-8")
    result = run("smoke", "--url", url, "--model", "meta/llama3-8b-instruct", "--prompts", prompts)
    assert result.exit_code == 1 and "401" in result.output
    monkeypatch.setenv("NIM_API_KEY", "key-of-nobody")
    result = run("smoke", "--url", url, "--model", "meta/llama3-8b-instruct", "--prompts", prompts,
                 "--api-key-env", "NIM_API_KEY")
    assert result.exit_code == 1 and "401" in result.output
    assert all(stub.posts() == [] for stub in backends.values())


def test_a_named_key_variable_must_be_set(gateway: Callable[[], tuple[str, dict[str, StubServer]]]) -> None:
    url, _ = gateway()
    result = run("smoke", "--url", url, "--model", "meta/llama3-8b-instruct", "--api-key-env", "NIM_API_KEY")
    assert result.exit_code == 1
    assert "error: --api-key-env NIM_API_KEY: the environment variable is not set or empty" in result.stderr


def test_an_unknown_model_name_is_routed_nowhere(gateway: Callable[[], tuple[str, dict[str, StubServer]]]) -> None:
    url, backends = gateway()
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(
        {"model": "llama3-8b-instruct", "messages": []}).encode(), headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 404  # the model's object name is not one of its public names
    assert all(stub.posts() == [] for stub in backends.values())


def _external_secret_data(objects: list[dict[str, Any]], namespace: str, name: str) -> dict[str, str]:
    """The Secret External Secrets makes from Secrets Manager (KEYS, here) for one ExternalSecret of nimgen's."""
    [external] = [o for o in objects if o["kind"] == "ExternalSecret" and o["metadata"]["namespace"] == namespace
                  and o["spec"]["target"]["name"] == name]
    return {entry["secretKey"]: KEYS[entry["remoteRef"]["property"]] for entry in external["spec"]["data"]}


def _expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of an env value, from the variables defined before it."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: defined.get(m[1], m[0]), value)


def test_open_webui_chats_through_the_gateway_with_its_own_key(
        gateway: Callable[[], tuple[str, dict[str, StubServer]]], rendered_repo: Path,
        helm_engine: helm.Engine) -> None:
    """Open WebUI's rendered settings, resolved as Kubernetes and External Secrets would, reach every model."""
    prod = example_environment("prod")
    apps = applications.by_name(prod)
    webui = application_objects(helm_engine, rendered_repo, apps["open-webui"])
    secrets = application_objects(helm_engine, rendered_repo, apps["platform-secrets"])
    door = application_objects(helm_engine, rendered_repo, apps["nim-gateway"])
    [deployment] = [o for o in webui if o["kind"] == "Deployment"]
    defined: dict[str, str] = {}
    for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in var:
            defined[var["name"]] = _expand(var["value"], defined)
        elif (ref := var["valueFrom"].get("secretKeyRef")) and ref["name"] != "open-webui":
            defined[var["name"]] = _external_secret_data(secrets, deployment["metadata"]["namespace"],
                                                         ref["name"])[ref["key"]]
    [url] = defined["OPENAI_API_BASE_URLS"].split(";")
    [key] = defined["OPENAI_API_KEYS"].split(";")
    assert key == KEYS["open-webui"]
    # The URL names the Envoy Service (its name fixed by the EnvoyProxy, in Envoy Gateway's namespace) on the port
    # of a listener that answers for that name and that every route is attached to.
    address = urllib.parse.urlsplit(url)
    [proxy] = [o for o in door if o["kind"] == "EnvoyProxy"]
    [listener] = [item for o in door if o["kind"] == "Gateway" for item in o["spec"]["listeners"]
                  if item["hostname"] == address.hostname]
    proxy_namespace = apps["envoy-gateway"]["spec"]["destination"]["namespace"]
    assert address.hostname == (f"{proxy['spec']['provider']['kubernetes']['envoyService']['name']}."
                                f"{proxy_namespace}.svc.cluster.local")
    assert (address.scheme, address.port, address.path) == ("http", listener["port"], "/v1")
    assert all(any(ref.get("sectionName") == listener["name"] for ref in route["spec"]["parentRefs"])
               for route in door if route["kind"] == "AIGatewayRoute")
    # What Open WebUI then does: list the models, and chat with each under the name it lists.
    local, backends = gateway()
    client = openai.OpenAI(base_url=f"{local}{address.path}", api_key=key, max_retries=0)
    listed = sorted(model.id for model in client.models.list())
    assert listed == sorted(name for model in prod.models if model.route for name in model.route.names)
    for model in prod.models:
        assert model.route is not None
        reply = client.chat.completions.create(model=model.route.names[0],
                                               messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        assert [post["body"]["model"] for post in backends[model.name].posts()] == [model.served_model_name]
