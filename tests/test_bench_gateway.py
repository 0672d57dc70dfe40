"""`nimgen bench --gateway`: GenAI-Perf Jobs that call the models through the gateway, with a client's key that
never reaches the manifests or the Job's log."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import example_environment, shared
from helpers import VALID, run, tree_digest, write_env
from kube import crd_errors, kubernetes_errors
from nimgen.commands import bench
from nimgen.components import gateway
from nimgen.environment.load import load_environment
from nimgen.model import Environment
from nimgen.secrets import find_secrets
from nimgen.yamlio import load_all_plain, load_plain

SCRIPT = Path(bench.__file__).parents[1] / "data" / "bench" / "genai_perf_with_key.py"


def _container(job: dict[str, Any], name: str) -> dict[str, Any]:
    pod = job["spec"]["template"]["spec"]
    [found] = [c for c in pod["initContainers"] + pod["containers"] if c["name"] == name]
    return found


def _flag(job: dict[str, Any], flag: str) -> str:
    args = _container(job, "genai-perf")["args"]
    return str(args[args.index(flag) + 1])


@pytest.fixture(scope=shared("module"))
def prod() -> Environment:
    return example_environment("prod")


def test_jobs_call_each_model_by_its_public_name_at_the_in_cluster_endpoint(prod: Environment) -> None:
    assert prod.gateway is not None
    models = bench.select_models(prod, ())
    door = bench.gateway_door(prod, models, "batch-eval")
    assert door == bench.Door(gateway.in_cluster_url(prod.gateway), "nim-gateway", "gateway-api-keys", "batch-eval")
    documents = load_all_plain(bench.jobs_yaml(prod, models, bench.BenchParams(), door))
    for document in documents:
        assert kubernetes_errors(document, prod.kubernetes_version) == [], document["kind"]
        assert list(find_secrets(document)) == []
        # Beside the keys' Secret, which a pod can only read in its own namespace.
        assert document["metadata"]["namespace"] == "nim-gateway"
    jobs = {d["metadata"]["labels"]["nimgen.io/model"]: d for d in documents if d["kind"] == "Job"}
    for model in models:
        assert model.route is not None
        job = jobs[model.name]
        # GenAI-Perf appends /v1/completions to --url.
        assert _flag(job, "--url") == "http://nim-gateway-nim-gateway.envoy-gateway-system.svc.cluster.local:443"
        assert _flag(job, "-m") == model.route.names[0]
        profile = _container(job, "genai-perf")
        assert profile["command"] == ["python3", "-c", SCRIPT.read_text(encoding="utf-8")]
        assert "--header" not in profile["args"]  # the wrapper adds it, from the variable below
        variables = {v["name"]: v for v in profile["env"]}
        assert variables["NIMGEN_GATEWAY_API_KEY"]["valueFrom"] == {"secretKeyRef": {
            "name": "gateway-api-keys", "key": "batch-eval"}}
        assert variables["NIMGEN_SUMMARY_FILE"]["value"] == _container(job, "report")["args"][0]
        # Readiness is still the model's own: the gateway answers for a model that has no replica yet.
        assert _container(job, "wait-for-model")["args"][0] == (
            f"http://{model.name}.{model.namespace}.svc.cluster.local:8000/v1/health/ready")
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    assert len(policies) == len(models) and all(p["spec"]["ingress"] == [] for p in policies)


def test_written_through_the_gateway(repo: Path, prod: Environment, crd_schemas: Path) -> None:
    assert run("render", repo / "environments" / "prod.yaml").exit_code == 0
    result = run("bench", repo / "environments" / "prod.yaml", "--gateway", "--client", "chat-frontend", "--write")
    assert result.exit_code == 0, result.output
    base = repo / "argocd" / "prod" / "bench"
    project = load_plain((base / "project.yaml").read_text(encoding="utf-8"))
    application = load_plain((base / "application.yaml").read_text(encoding="utf-8"))
    for obj in (project, application):
        assert crd_errors(obj, crd_schemas) == []
    # The project admits the gateway's namespace too, and still only Jobs and NetworkPolicies.
    assert {d["namespace"] for d in project["spec"]["destinations"]} == {"nim", "nim-gateway"}
    info = {i["name"]: i["value"] for i in application["spec"]["info"]}
    assert prod.gateway is not None
    assert info["Through"] == f"{gateway.in_cluster_url(prod.gateway)} as chat-frontend"
    job_file = (base / "jobs" / "llama3-8b-instruct.yaml").read_text(encoding="utf-8")
    assert all(d["metadata"]["namespace"] == "nim-gateway" for d in load_all_plain(job_file))


@pytest.mark.parametrize(("args", "message"), [
    (("--gateway",), "error: the gateway asks for an API key: --client is missing"),
    (("--gateway", "--client", "nobody"), ("error: the gateway asks for an API key: --client 'nobody' is not one "
                                           "of its clients")),
    (("--client", "batch-eval"), "error: --client names an API key of the gateway, which only --gateway uses"),
])
def test_refused_without_a_key_of_the_gateway(repo: Path, args: tuple[str, ...], message: str) -> None:
    before = tree_digest(repo)
    for write in ((), ("--write",)):
        result = run("bench", repo / "environments" / "prod.yaml", *args, *write)
        assert result.exit_code == 1 and message in result.output, result.output
        # Where a key is missing or wrong, the hint names the clients that have one.
        assert ("pass --client with one of chat-frontend, batch-eval, open-webui" in result.output) == (
            "--gateway" in args), result.output
    assert tree_digest(repo) == before


def test_refused_where_the_gateway_cannot_take_the_benchmark(tmp_path: Path) -> None:
    result = run("bench", example_environment_path("dev"), "--gateway")
    assert result.exit_code == 1 and "error: environment 'dev' has no gateway to benchmark through" in result.output
    served = VALID.replace("    nodePool: a10g\n", "    nodePool: a10g\n    servedModelName: meta/llama3-8b-instruct\n")
    door = ("gateway:\n  enabled: true\n  hostname: llm.example.com\n  tls: {certManager: {issuer: letsencrypt}}\n"
            "  auth: {oidc: {issuer: 'https://login.example.com', audiences: [nim]}}\nmodels:\n")
    result = run("bench", write_env(tmp_path, served.replace("models:\n", door)), "--gateway")
    assert result.exit_code == 1
    assert "error: the gateway takes OIDC tokens: a benchmark Job cannot obtain one" in result.output
    public = (door.replace("  auth: {oidc: {issuer: 'https://login.example.com', audiences: [nim]}}\n", "")
              + "  - name: opted-out\n    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n    nodePool: a10g\n"
              "    gateway: {enabled: false}\n")
    text = served.replace("models:\n", public).replace("    servedModelName: meta/llama3-8b-instruct\n",
                                                       "    servedModelName: meta/llama3-8b-instruct\n"
                                                       "    gateway: {public: true}\n")
    path = write_env(tmp_path, text, "public.yaml")
    result = run("bench", path, "--gateway")
    assert result.exit_code == 1 and "error: the gateway does not serve 'opted-out'" in result.output
    # A gateway without keys takes the benchmark without one: GenAI-Perf runs on its own.
    result = run("bench", path, "--gateway", "--model", "llama3-8b-instruct")
    assert result.exit_code == 0, result.output
    [job] = [d for d in load_all_plain(result.stdout) if d["kind"] == "Job"]
    assert _container(job, "genai-perf")["command"] == ["genai-perf", "profile"]
    assert _flag(job, "--url") == "https://llm.example.com"  # TLS at Envoy: the public endpoint
    result = run("bench", path, "--gateway", "--client", "team-a", "--model", "llama3-8b-instruct")
    assert result.exit_code == 1 and "error: --client names an API key, but the gateway asks for none" in result.output


def example_environment_path(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "environments" / f"{name}.yaml"


FAKE_GENAI_PERF = """\
#!{python}
import json, os, sys
# What GenAI-Perf 0.0.10 does with a header: it logs the perf_analyzer command line and keeps the argument.
print("Running Perf Analyzer : 'perf_analyzer -m m " + " ".join("-H " + sys.argv[i + 1]
      for i, arg in enumerate(sys.argv) if arg == "--header") + "'", flush=True)
print("environment has the key:", "NIMGEN_GATEWAY_API_KEY" in os.environ, file=sys.stderr, flush=True)
with open(os.environ["ARGS_FILE"], "w") as file:
    json.dump(sys.argv[1:], file)
with open(os.environ["NIMGEN_SUMMARY_FILE"], "w") as file:
    json.dump({{"request_throughput": {{"avg": 1.5}}, "input_config": {{"header": [sys.argv[-1]], "u": "x"}}}}, file)
sys.exit(3)
"""


def test_the_wrapper_passes_the_key_as_a_header_and_masks_it_everywhere(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "genai-perf"
    fake.parent.mkdir()
    fake.write_text(FAKE_GENAI_PERF.format(python=sys.executable), encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    key = "sk-team-Zq8xW3"
    summary, args_file = tmp_path / "summary.json", tmp_path / "args.json"
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "NIMGEN_GATEWAY_API_KEY": key,
           "NIMGEN_SUMMARY_FILE": str(summary), "ARGS_FILE": str(args_file)}
    # As the Job runs it: python3 -c SCRIPT ARGS...
    done = subprocess.run([sys.executable, "-c", SCRIPT.read_text(encoding="utf-8"), "-m", "meta/x", "--streaming"],
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 3  # GenAI-Perf's own
    # GenAI-Perf got the header in perf_analyzer's 'Name:Value' form (the value is all after the first ':').
    assert json.loads(args_file.read_text()) == [
        "profile", "-m", "meta/x", "--streaming", "--header", f"Authorization:Bearer {key}"]
    assert key not in done.stdout + done.stderr
    assert "-H Authorization:Bearer [key]" in done.stdout
    # GenAI-Perf's errors come through the same mask; the key was popped before it started.
    assert "environment has the key: False" in done.stdout
    data = json.loads(summary.read_text())
    assert data == {"request_throughput": {"avg": 1.5},
                    "input_config": {"header": ["Authorization:Bearer [key]"], "u": "x"}}
    # No key: nothing runs.
    env["NIMGEN_GATEWAY_API_KEY"] = ""
    args_file.unlink()
    done = subprocess.run([sys.executable, "-c", SCRIPT.read_text(encoding="utf-8")], env=env, capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 1 and "NIMGEN_GATEWAY_API_KEY is empty" in done.stderr
    assert not args_file.exists()


WAIT = Path(bench.__file__).parents[1] / "data" / "bench" / "wait_for_model.py"
ASLEEP = """\
observability:
  enabled: true
gateway:
  enabled: true
  hostname: llm.example.com
  tls: {acmCertificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"}
  auth:
    apiKeys: {externalSecret: nim-test/gateway-api-keys, clients: [team-a]}
models:
"""
ASLEEP_MODEL = """\
    servedModelName: meta/llama3-8b-instruct
    replicas: {min: 1, max: 3}
    startupTimeoutMinutes: 45
    autoscaling: {engine: keda, metric: num_requests_waiting, target: 2}
    scaleToZero: {enabled: true}
"""


def test_a_model_that_scales_to_zero_is_woken_through_the_gateway(tmp_path: Path) -> None:
    path = write_env(tmp_path, VALID.replace("models:\n", ASLEEP) + ASLEEP_MODEL)
    # Its Service may have no replica behind it, and no direct request starts one.
    result = run("bench", path)
    assert result.exit_code == 1
    assert ("error: 'llama3-8b-instruct' scale to zero: only requests through the gateway start a replica"
            in result.output)
    result = run("bench", path, "--gateway", "--client", "team-a")
    assert result.exit_code == 0, result.output
    [job] = [d for d in load_all_plain(result.stdout) if d["kind"] == "Job"]
    wait = _container(job, "wait-for-model")
    assert wait["command"] == ["python3", "-c", WAIT.read_text(encoding="utf-8")]
    # One-token completions at the gateway until one is served, for as long as a cold start may take.
    assert wait["args"] == ["http://nim-gateway-nim-gateway.envoy-gateway-system.svc.cluster.local:443/v1/completions",
                            "2700", "meta/llama3-8b-instruct"]
    assert {v["name"]: v.get("valueFrom") for v in wait["env"]}["NIMGEN_GATEWAY_API_KEY"] == {
        "secretKeyRef": {"name": "gateway-api-keys", "key": "team-a"}}
    assert job["spec"]["activeDeadlineSeconds"] == bench.DEADLINE_SECONDS + 2700 - bench.READY_WAIT_SECONDS
    # A model that keeps a replica is waited for at its readiness endpoint, with the usual deadline.
    env = load_environment(write_env(tmp_path, VALID.replace("models:\n", ASLEEP) + ASLEEP_MODEL.replace(
        "    scaleToZero: {enabled: true}\n", ""), "awake.yaml"), tmp_path)
    door = bench.gateway_door(env, env.models, "team-a")
    awake = bench.job(env, env.models[0], bench.BenchParams(), door)
    assert _container(awake, "wait-for-model")["args"] == [
        "http://llama3-8b-instruct.nim.svc.cluster.local:8000/v1/health/ready", "600"]
    assert awake["spec"]["activeDeadlineSeconds"] == bench.DEADLINE_SECONDS


class _Answers(BaseHTTPRequestHandler):
    """503 for the first `busy` requests (a replica starting), then 200; every request recorded."""

    busy = 2
    seen: ClassVar[list[tuple[str, str, dict[str, Any] | None]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, body: dict[str, Any] | None) -> None:
        type(self).seen.append((self.command, self.headers.get("Authorization", ""), body))
        status = 503 if len(type(self).seen) <= type(self).busy else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))


@pytest.fixture
def answers() -> Any:
    _Answers.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _wait(*args: str, key: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NIMGEN_WAIT_INTERVAL": "0.05", "NIMGEN_GATEWAY_API_KEY": key, "NO_PROXY": "127.0.0.1"}
    return subprocess.run([sys.executable, "-c", WAIT.read_text(encoding="utf-8"), *args], env=env,
                          capture_output=True, text=True, check=False, timeout=60)


def test_the_wait_polls_readiness_or_wakes_the_model_through_the_gateway(answers: str) -> None:
    done = _wait(f"{answers}/v1/health/ready", "30")
    assert done.returncode == 0, done.stderr
    assert [(method, body) for method, _, body in _Answers.seen] == [("GET", None)] * 3
    _Answers.seen = []
    done = _wait(f"{answers}/v1/completions", "30", "meta/llama3-8b-instruct", key="sk-team-a")
    assert done.returncode == 0, done.stderr
    assert _Answers.seen == [("POST", "Bearer sk-team-a", {"model": "meta/llama3-8b-instruct", "prompt": "ping",
                                                           "max_tokens": 1})] * 3
    assert "HTTP Error 503" in done.stdout and "sk-team-a" not in done.stdout + done.stderr
    # Nothing ever served: it gives up once the time is over.
    _Answers.busy, _Answers.seen = 10**6, []
    try:
        done = _wait(f"{answers}/v1/completions", "0", "meta/llama3-8b-instruct")
    finally:
        _Answers.busy = 2
    assert done.returncode == 1 and "not ready after 0 s" in done.stderr
    assert _Answers.seen[0][1] == ""  # no key, no Authorization header
