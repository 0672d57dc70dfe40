"""`nimgen smoke`: the real openai client against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from helpers import run
from nimgen.smoke import api_base_url, percentile

MODEL = "meta/llama3-8b-instruct"
DEFAULT_PROMPTS = resources.files("nimgen").joinpath("data/smoke-prompts.txt").read_text(encoding="utf-8")


# --- the server ---------------------------------------------------------------------------------------------

@dataclass
class StubConfig:
    """How the stub behaves: served ids, delays, tokens per answer, which prompt fails, whether usage is sent."""

    models: tuple[str, ...] = (MODEL, "meta/llama-3.1-70b-instruct")
    delay_s: float = 0.0        # before the response (or the first stream chunk)
    token_delay_s: float = 0.0  # between stream chunks
    tokens: int = 8
    fail_prompt: str | None = None   # a prompt containing this gets HTTP 500
    usage: bool = True


@dataclass
class StubServer:
    config: StubConfig
    url: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self) -> list[dict[str, Any]]:
        return [entry for entry in self.log if entry["method"] == "POST"]


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one SSE event, one packet

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, document: Any) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body: Any) -> None:
            with stub.lock:
                stub.log.append({"method": self.command, "path": self.path, "body": body,
                                 "authorization": self.headers.get("Authorization")})

        def do_GET(self) -> None:
            self._record(None)
            if self.path != "/v1/models":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "NotFound", "code": 404}})
                return
            self._json(200, {"object": "list", "data": [
                {"id": model, "object": "model", "created": 0, "owned_by": "stub"} for model in stub.config.models]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._record(body)
            with stub.lock:
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
            try:
                self._complete(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (--timeout)
            finally:
                with stub.lock:
                    stub.in_flight -= 1

        def _complete(self, body: dict[str, Any]) -> None:
            chat = self.path == "/v1/chat/completions"
            if not chat and self.path != "/v1/completions":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "NotFound", "code": 404}})
                return
            config = stub.config
            prompt = body["messages"][-1]["content"] if chat else body["prompt"]
            time.sleep(config.delay_s)
            if config.fail_prompt and config.fail_prompt in prompt:
                self._json(500, {"error": {"message": "CUDA out of memory (stub)", "type": "InternalServerError",
                                           "param": None, "code": 500}})
                return
            words = [f"w{i} " for i in range(min(config.tokens, body.get("max_tokens") or config.tokens))]
            usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words),
                     "total_tokens": len(prompt.split()) + len(words)}
            head = {"id": "cmpl-stub", "created": 0, "model": body["model"]}
            if not body.get("stream"):
                choice: dict[str, Any] = (
                    {"index": 0, "message": {"role": "assistant", "content": "".join(words)}, "finish_reason": "length"}
                    if chat else {"index": 0, "text": "".join(words), "finish_reason": "length", "logprobs": None})
                self._json(200, {**head, "object": "chat.completion" if chat else "text_completion",
                                 "choices": [choice], **({"usage": usage} if config.usage else {})})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            kind = "chat.completion.chunk" if chat else "text_completion"

            def send(document: Any) -> None:
                data = f"data: {document if isinstance(document, str) else json.dumps(document)}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            if chat:  # a role-only first chunk, as vLLM/NIM send it: no content, so not the first token
                send({**head, "object": kind, "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
            for number, word in enumerate(words):
                if number:
                    time.sleep(config.token_delay_s)
                piece = {"delta": {"content": word}} if chat else {"text": word, "logprobs": None}
                send({**head, "object": kind, "choices": [{"index": 0, **piece, "finish_reason": None}]})
            if config.usage and (body.get("stream_options") or {}).get("include_usage"):
                send({**head, "object": kind, "choices": [], "usage": usage})
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connects under load: 1 s SYN retries


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., StubServer]]:
    """Start a stub server with the given StubConfig fields; stopped after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    servers: list[_Server] = []

    def start(**settings: Any) -> StubServer:
        stub = StubServer(StubConfig(**settings))
        httpd = _Server(("127.0.0.1", 0), _handler(stub))
        stub.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(httpd)
        return stub

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def ok_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ok ")]


def number(output: str, label: str) -> float:
    found = re.search(rf"^{label}:\s+([0-9.]+)", output, re.MULTILINE)
    assert found, f"no {label!r} in:\n{output}"
    return float(found.group(1))


# --- tests ----------------------------------------------------------------------------------------------------

def test_default_prompts_run_concurrently_with_consistent_summary(serve: Callable[..., StubServer],
                                                                  tmp_path: Path) -> None:
    stub = serve(delay_s=0.2)
    results = tmp_path / "results.json"
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--concurrency", "5", "--results", results)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert len(ok_lines(out)) == 20 and "FAIL" not in out and "PASS: 20 requests" in out
    assert all(re.search(r"\d+\.\d{3} s ", line) for line in ok_lines(out)) and " ms" not in out
    assert "20 ok, 0 failed (of 20)" in out

    accumulated, wall = number(out, "accumulated time"), number(out, "wall time")
    tokens, rate = number(out, "completion tokens"), number(out, "throughput")
    assert tokens == 20 * 8 and "(from usage)" in out
    assert accumulated >= wall >= 0.2 * 4 * 0.95       # 20 requests, 5 at a time, 0.2 s each
    assert wall < accumulated / 2                       # the requests overlapped
    assert rate == pytest.approx(tokens / wall, rel=0.01, abs=0.1)
    assert stub.max_in_flight == 5

    assert [entry["path"] for entry in stub.log[:1]] == ["/v1/models"]
    posts = stub.posts()
    assert len(posts) == 20 and {entry["path"] for entry in posts} == {"/v1/chat/completions"}
    assert sorted(entry["body"]["messages"][0]["content"] for entry in posts) == sorted(DEFAULT_PROMPTS.splitlines())
    assert all(entry["body"]["messages"][0]["role"] == "user" and len(entry["body"]["messages"]) == 1
               and entry["body"]["max_tokens"] == 256 and entry["body"]["model"] == MODEL
               and not entry["body"].get("stream") for entry in posts)
    assert {entry["authorization"] for entry in stub.log} == {"Bearer not-used"}

    summary = json.loads(results.read_text(encoding="utf-8"))["summary"]
    assert summary["accumulated_s"] == pytest.approx(accumulated, abs=0.001)
    assert summary["tokens_per_s"] == pytest.approx(summary["completion_tokens"] / summary["wall_s"], rel=1e-3)


def test_streaming_reports_ttft_itl_and_percentiles(serve: Callable[..., StubServer], tmp_path: Path) -> None:
    stub = serve(delay_s=0.05, token_delay_s=0.01, tokens=6)
    results = tmp_path / "results.json"
    result = run("smoke", "--url", stub.url + "/v1/", "--model", MODEL, "--stream", "--concurrency", "10",
                 "--results", results)
    assert result.exit_code == 0, result.output
    lines = ok_lines(result.stdout)
    assert len(lines) == 20 and all(re.search(r"ttft \d\.\d{3} s  itl \d\.\d{4} s$", line) for line in lines)
    assert re.search(r"^time to first token: p50 \d\.\d{3} s, p95 \d\.\d{3} s$", result.stdout, re.MULTILINE)
    assert "completion tokens: 120 (from usage)" in result.stdout
    assert all(entry["body"]["stream"] is True and entry["body"]["stream_options"] == {"include_usage": True}
               for entry in stub.posts())

    document = json.loads(results.read_text(encoding="utf-8"))
    for request in document["requests"]:
        assert request["ok"] and request["completion_tokens"] == 6 and request["token_source"] == "usage"
        assert 0.045 <= request["ttft_s"] < request["latency_s"]
        assert 0 < request["itl_s"] < 0.05
    itls = sorted(request["itl_s"] for request in document["requests"])
    assert 0.008 <= itls[len(itls) // 2] <= 0.02    # the server sleeps 0.01 s between content chunks
    summary = document["summary"]
    ttfts = sorted(request["ttft_s"] for request in document["requests"])
    assert ttfts[0] <= summary["ttft_p50_s"] <= summary["ttft_p95_s"] <= ttfts[-1]


def test_stream_without_usage_counts_chunks(serve: Callable[..., StubServer], tmp_path: Path) -> None:
    stub = serve(usage=False, tokens=5)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n", encoding="utf-8")
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", prompts, "--stream")
    assert result.exit_code == 0, result.output
    assert "completion tokens: 10 (counted stream chunks: the server sent no usage)" in result.stdout


def test_a_failing_request_exits_1_naming_it_with_the_summary(serve: Callable[..., StubServer],
                                                              tmp_path: Path) -> None:
    stub = serve(fail_prompt="paged attention")
    results = tmp_path / "results.json"
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--concurrency", "5", "--results", results)
    assert result.exit_code == 1
    out = result.stdout
    assert len(ok_lines(out)) == 19
    assert re.search(r"^FAIL  #9 +\d\.\d{3} s  HTTP 500: CUDA out of memory \(stub\)$", out, re.MULTILINE)
    assert "requests:          19 ok, 1 failed (of 20)" in out and "wall time:" in out and "throughput:" in out
    assert "FAIL: 1 of 20 requests failed:\n  prompt #9 ('What is paged attention" in out
    assert "PASS" not in out
    failing = [entry for entry in stub.posts() if "paged attention" in entry["body"]["messages"][0]["content"]]
    assert len(failing) == 1  # no retries
    document = json.loads(results.read_text(encoding="utf-8"))
    assert [r["index"] for r in document["requests"] if not r["ok"]] == [9]
    assert document["requests"][8]["error"] == "HTTP 500: CUDA out of memory (stub)"
    assert document["summary"]["failed"] == 1 and document["summary"]["completion_tokens"] == 19 * 8


def test_a_model_that_is_not_served_sends_nothing(serve: Callable[..., StubServer]) -> None:
    stub = serve()
    result = run("smoke", "--url", stub.url, "--model", "meta/llama3-70b")
    assert result.exit_code == 1
    assert ("error: model 'meta/llama3-70b' is not served by " + stub.url + "/v1; served models: "
            "meta/llama-3.1-70b-instruct, meta/llama3-8b-instruct") in result.stderr
    assert [(entry["method"], entry["path"]) for entry in stub.log] == [("GET", "/v1/models")]


def test_results_json_is_deterministic_and_matches(serve: Callable[..., StubServer], tmp_path: Path) -> None:
    stub = serve(tokens=3)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first prompt\n\n  second prompt  \nthird\n", encoding="utf-8")
    results = tmp_path / "results.json"
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", prompts, "--max-tokens", "2",
                 "--concurrency", "1", "--results", results)
    assert result.exit_code == 0, result.output
    assert f"results: {results}" in result.stdout
    assert [entry["body"]["messages"][0]["content"] for entry in stub.posts()] == [
        "first prompt", "second prompt", "third"]
    text = results.read_text(encoding="utf-8")
    document = json.loads(text)
    assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"
    assert document["base_url"] == stub.url + "/v1"
    assert document["options"] == {"api": "chat", "concurrency": 1, "max_tokens": 2, "model": MODEL,
                                   "stream": False, "timeout_s": 120.0, "url": stub.url}
    assert [(r["index"], r["prompt"], r["ok"], r["error"], r["completion_tokens"], r["ttft_s"], r["itl_s"])
            for r in document["requests"]] == [
        (1, "first prompt", True, None, 2, None, None), (2, "second prompt", True, None, 2, None, None),
        (3, "third", True, None, 2, None, None)]
    summary = document["summary"]
    assert (summary["requests"], summary["succeeded"], summary["failed"], summary["completion_tokens"]) == (3, 3, 0, 6)
    assert summary["accumulated_s"] == pytest.approx(sum(r["latency_s"] for r in document["requests"]), abs=0.001)
    assert summary["ttft_p50_s"] is None
    assert number(result.stdout, "wall time") == pytest.approx(summary["wall_s"], abs=0.0006)


@pytest.mark.parametrize("stream", [False, True])
def test_completions_api(serve: Callable[..., StubServer], tmp_path: Path, stream: bool) -> None:
    stub = serve(tokens=4)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hello.\nSay goodbye.\n", encoding="utf-8")
    args = ["--stream"] if stream else []
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", prompts, "--api", "completions", *args)
    assert result.exit_code == 0, result.output
    assert "completions API" in result.stdout and len(ok_lines(result.stdout)) == 2
    assert "completion tokens: 8 (from usage)" in result.stdout
    posts = stub.posts()
    assert {entry["path"] for entry in posts} == {"/v1/completions"}
    assert sorted(entry["body"]["prompt"] for entry in posts) == ["Say goodbye.", "Say hello."]
    assert ("ttft" in result.stdout) is stream


def test_api_key_from_the_environment(serve: Callable[..., StubServer], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    stub = serve()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hi\n", encoding="utf-8")
    assert run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", prompts).exit_code == 0
    assert {entry["authorization"] for entry in stub.log} == {"Bearer sk-local"}


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read prompts file {path}: No such file or directory"),
    (b"\xff\xfe\x00bad", "cannot read prompts file {path}: 'utf-8' codec can't decode"),
    (b"\n  \n", "prompts file {path} holds no prompts"),
])
def test_bad_prompts_file_is_a_user_error(serve: Callable[..., StubServer], tmp_path: Path, content: bytes | None,
                                          message: str) -> None:
    stub = serve()
    path = tmp_path / "prompts.txt"
    if content is not None:
        path.write_bytes(content)
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", path)
    assert result.exit_code == 1
    assert "error: " + message.format(path=path) in result.stderr
    assert stub.log == []


def test_unreachable_server_is_a_user_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("smoke", "--url", f"http://127.0.0.1:{port}", "--model", MODEL)
    assert result.exit_code == 1
    assert f"error: GET http://127.0.0.1:{port}/v1/models failed: connection failed" in result.stderr


def test_a_slow_request_times_out(serve: Callable[..., StubServer], tmp_path: Path) -> None:
    stub = serve(delay_s=0.4)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("slow\n", encoding="utf-8")
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", prompts, "--timeout", "0.1")
    assert result.exit_code == 1
    assert re.search(r"^FAIL  #1 +0\.1\d\d s  timed out$", result.stdout, re.MULTILINE), result.stdout
    assert "0 ok, 1 failed (of 1)" in result.stdout and len(stub.posts()) == 1


def test_url_must_be_http() -> None:
    result = run("smoke", "--url", "localhost:8000", "--model", MODEL)
    assert result.exit_code == 1 and "error: --url 'localhost:8000' is not an http(s) URL" in result.stderr


def test_missing_results_folder_fails_before_sending(serve: Callable[..., StubServer], tmp_path: Path) -> None:
    stub = serve()
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--results", tmp_path / "nope" / "r.json")
    assert result.exit_code == 1 and "its folder does not exist" in result.stderr
    assert stub.log == []


def test_base_url_and_percentiles() -> None:
    assert api_base_url("http://nim:8000") == "http://nim:8000/v1"
    assert api_base_url("http://nim:8000/v1/") == "http://nim:8000/v1"
    assert api_base_url("https://gw.example.com/llama/") == "https://gw.example.com/llama/v1"
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([float(n) for n in range(1, 21)], 0.95) == pytest.approx(19.05)


def test_default_prompts_ship_in_the_package() -> None:
    lines = DEFAULT_PROMPTS.splitlines()
    assert len(lines) == 20 and all(line.strip() for line in lines)
