"""`nimgen smoke`: the real openai client against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from helpers import run
from nimgen.commands.smoke import api_base_url, percentile
from smokestub import MODEL, StubConfig, StubHTTPServer, StubServer, start_stub

DEFAULT_PROMPTS = resources.files("nimgen").joinpath("data/smoke-prompts.txt").read_text(encoding="utf-8")


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., StubServer]]:
    """Start a stub server with the given StubConfig fields; stopped after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    servers: list[StubHTTPServer] = []

    def start(**settings: Any) -> StubServer:
        stub, httpd = start_stub(StubConfig(**settings))
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
    # Orderings and counts only: a loaded machine stretches every time, never shortens a server's sleep.
    assert accumulated >= 20 * 0.2 and wall >= 4 * 0.2  # 20 requests, 5 at a time, each sleeps 0.2 s
    assert wall < accumulated                           # the requests overlapped
    assert rate == pytest.approx(tokens / wall, rel=0.01, abs=0.1)
    assert 1 < stub.max_in_flight <= 5

    assert [entry["path"] for entry in stub.log[:1]] == ["/v1/models"]
    posts = stub.posts()
    assert len(posts) == 20 and {entry["path"] for entry in posts} == {"/v1/chat/completions"}
    assert sorted(entry["body"]["messages"][0]["content"] for entry in posts) == sorted(DEFAULT_PROMPTS.splitlines())
    assert all(entry["body"]["messages"][0]["role"] == "user" and len(entry["body"]["messages"]) == 1
               and entry["body"]["max_tokens"] == 256 and entry["body"]["model"] == MODEL
               and not entry["body"].get("stream") for entry in posts)
    assert {entry["authorization"] for entry in stub.log} == {"Bearer not-used"}

    summary = json.loads(results.read_text(encoding="utf-8"))["summary"]
    assert summary["accumulatedSeconds"] == pytest.approx(accumulated, abs=0.001)
    assert summary["tokensPerSecond"] == pytest.approx(summary["completionTokens"] / summary["wallSeconds"], rel=1e-3)


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
    rounding = 0.0002  # the JSON rounds each time to 0.1 ms
    for request in document["requests"]:
        assert request["ok"] and request["completionTokens"] == 6 and request["tokenSource"] == "usage"
        assert 0.05 - rounding <= request["ttftSeconds"] <= request["latencySeconds"]  # the server sleeps 0.05 s first
        assert request["itlSeconds"] >= 0
        # the last of 6 content chunks arrives 5 gaps after the first, before the request ends
        assert request["ttftSeconds"] + 5 * request["itlSeconds"] <= request["latencySeconds"] + 3 * rounding
    summary = document["summary"]
    ttfts = sorted(request["ttftSeconds"] for request in document["requests"])
    assert ttfts[0] <= summary["ttftP50Seconds"] <= summary["ttftP95Seconds"] <= ttfts[-1]


@pytest.mark.parametrize("tokens", [1, 5])
def test_stream_without_usage_counts_chunks(serve: Callable[..., StubServer], tmp_path: Path,
                                            tokens: int) -> None:
    stub = serve(usage=False, tokens=tokens)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n", encoding="utf-8")
    results = tmp_path / "results.json"
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", prompts, "--stream",
                 "--results", results)
    assert result.exit_code == 0, result.output
    counted = f"completion tokens: {2 * tokens} (counted stream chunks: the server sent no usage)"
    assert counted in result.stdout
    for request in json.loads(results.read_text(encoding="utf-8"))["requests"]:
        assert (request["completionTokens"], request["tokenSource"]) == (tokens, "chunks")
        assert 0 < request["ttftSeconds"] <= request["latencySeconds"]
        assert (request["itlSeconds"] is None) is (tokens == 1)  # inter-token latency needs two content chunks


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
    assert document["summary"]["failed"] == 1 and document["summary"]["completionTokens"] == 19 * 8


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
    assert document["baseUrl"] == stub.url + "/v1"
    assert document["options"] == {"api": "chat", "concurrency": 1, "maxTokens": 2, "model": MODEL,
                                   "stream": False, "timeoutSeconds": 120.0, "url": stub.url}
    assert [(r["index"], r["prompt"], r["ok"], r["error"], r["completionTokens"], r["ttftSeconds"], r["itlSeconds"])
            for r in document["requests"]] == [
        (1, "first prompt", True, None, 2, None, None), (2, "second prompt", True, None, 2, None, None),
        (3, "third", True, None, 2, None, None)]
    summary = document["summary"]
    assert (summary["requests"], summary["succeeded"], summary["failed"], summary["completionTokens"]) == (3, 3, 0, 6)
    assert summary["accumulatedSeconds"] == pytest.approx(sum(r["latencySeconds"] for r in document["requests"]),
                                                          abs=0.001)
    assert summary["ttftP50Seconds"] is None
    assert number(result.stdout, "wall time") == pytest.approx(summary["wallSeconds"], abs=0.0006)


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
    failed = re.search(r"^FAIL  #1 +(\d+\.\d{3}) s  timed out after 0\.1 s$", result.stdout, re.MULTILINE)
    assert failed and float(failed.group(1)) >= 0.1, result.stdout
    assert "0 ok, 1 failed (of 1)" in result.stdout and len(stub.posts()) == 1


def one_prompt(tmp_path: Path) -> Path:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello\n", encoding="utf-8")
    return prompts


def failure(result: Result) -> tuple[float, str]:
    """The one FAIL line's latency and reason, after checking the run ended with its summary and exit 1."""
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    found = re.findall(r"^FAIL  #1 +(\d+\.\d{3}) s  (.+)$", result.stdout, re.MULTILINE)
    assert len(found) == 1, result.stdout
    latency, reason = found[0]
    assert "requests:          0 ok, 1 failed (of 1)" in result.stdout
    assert f"FAIL: 1 of 1 requests failed:\n  prompt #1 ('hello'): {reason}\n" in result.stdout
    return float(latency), reason


@pytest.mark.parametrize(("settings", "args"), [
    pytest.param({"drip_s": 0.5}, [], id="body-one-byte-every-0.5s"),
    pytest.param({"tokens": 10**9, "token_delay_s": 0.5}, ["--stream", "--max-tokens", "1000000000"],
                 id="endless-stream-one-chunk-every-0.5s"),
])
def test_timeout_bounds_the_whole_request(serve: Callable[..., StubServer], tmp_path: Path,
                                          settings: dict[str, Any], args: list[str]) -> None:
    # Every read gets data within 0.5 s, so only a deadline over the whole request stops these.
    stub = serve(**settings)
    began = time.perf_counter()
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", one_prompt(tmp_path),
                 "--timeout", "1.5", *args)
    elapsed = time.perf_counter() - began
    latency, reason = failure(result)
    assert reason == "timed out after 1.5 s"
    assert 1.5 <= latency <= elapsed < 4 * 1.5  # the stub gives up only after GIVE_UP_S
    assert len(stub.posts()) == 1


HTML = ("text/html", b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>")
OK_MESSAGE = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}


def reply(document: Any) -> tuple[str, bytes]:
    return "application/json", json.dumps(document).encode()


@pytest.mark.parametrize(("settings", "args", "reason"), [
    pytest.param({"reply": HTML}, [],
                 'the response is not JSON: "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></"… '
                 '(65 characters)', id="html"),
    pytest.param({"reply": ("application/json", b'{"choices": [')}, [],
                 "the response is not valid JSON (Expecting value: line 1 column 14)", id="invalid-json"),
    pytest.param({"reply": ("application/json", b'{"choices": "\xff"}')}, [],
                 "the response is not UTF-8 (invalid start byte at byte 13)", id="not-utf8"),
    pytest.param({"events": (b'{"choices": "\xff"}',)}, ["--stream"],
                 "the response is not UTF-8 (invalid start byte at byte 19)", id="stream-not-utf8"),
    pytest.param({"reply": reply({"choices": "nope"})}, [], 'choices is "nope", not a list',
                 id="choices-nope"),
    pytest.param({"reply": reply({"choices": [None]})}, [], "choices[0] is null, not an object",
                 id="choices-null"),
    pytest.param({"reply": reply({"choices": []})}, [], "choices is an empty list", id="choices-empty"),
    pytest.param({"reply": reply({"id": "x"})}, [], "choices is missing, not a list", id="no-choices"),
    pytest.param({"reply": reply({"choices": [{"index": 0}]})}, [],
                 "choices[0].message is missing, not an object", id="no-message"),
    pytest.param({"reply": reply({"choices": [{"index": 0, "text": 7}]})}, ["--api", "completions"],
                 "choices[0].text is 7, not a string", id="completions-text-not-a-string"),
    pytest.param({"reply": reply({"choices": [OK_MESSAGE], "usage": {"completion_tokens": "many"}})}, [],
                 'usage.completion_tokens is "many", not an integer', id="usage-not-a-count"),
    pytest.param({"reply": reply({"error": {"message": "model overloaded"}})}, [],
                 'the response is an error: "model overloaded"', id="error-with-200"),
    pytest.param({"events": ({"choices": [{"index": 0, "delta": None}]},)}, ["--stream"],
                 "stream chunk 1: choices[0].delta is null, not an object", id="stream-delta-null"),
    pytest.param({"events": ({"choices": [{"index": 0, "delta": {"content": "a"}}]}, "{nope")}, ["--stream"],
                 "stream chunk 2 is not valid JSON (Expecting property name enclosed in double quotes)",
                 id="stream-invalid-json"),
    pytest.param({"events": ({"choices": "nope"},)}, ["--stream"],
                 'stream chunk 1: choices is "nope", not a list', id="stream-choices-nope"),
    pytest.param({"events": ('"hello"',)}, ["--stream"], 'stream chunk 1: not a JSON object: "hello"',
                 id="stream-chunk-not-an-object"),
    pytest.param({"events": ({"error": {"message": "engine died", "code": 500}},)}, ["--stream"],
                 "the server reported an error: engine died", id="stream-error-event"),
    pytest.param({"events": ({"id": "x"}, {"choices": [], "usage": None})}, ["--stream"],
                 "the stream ended without any choices", id="stream-without-choices"),
    pytest.param({"reply": reply({"choices": [OK_MESSAGE]})}, ["--stream"],
                 "the stream ended without any choices", id="json-answer-to-a-stream-request"),
])
def test_a_malformed_answer_is_a_failed_request(serve: Callable[..., StubServer], tmp_path: Path,
                                                settings: dict[str, Any], args: list[str],
                                                reason: str) -> None:
    stub = serve(**settings)
    results = tmp_path / "results.json"
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", one_prompt(tmp_path),
                 "--results", results, *args)
    assert failure(result)[1] == reason
    assert json.loads(results.read_text(encoding="utf-8"))["requests"][0]["error"] == reason


@pytest.mark.parametrize(("settings", "args", "reason"), [
    pytest.param({"break_after": 20}, [], "connection reset by the server", id="reset-mid-body"),
    pytest.param({"break_after": 2}, ["--stream"], "connection reset by the server", id="reset-mid-stream"),
    pytest.param({"break_after": 20, "break_how": "close"}, [],
                 r"server disconnected: peer closed connection without sending complete message body "
                 r"\(received 20 bytes, expected \d+\)", id="closed-mid-body"),
    pytest.param({"break_after": 2, "break_how": "close"}, ["--stream"],
                 r"server disconnected: peer closed connection without sending complete message body.*",
                 id="closed-mid-stream"),
])
def test_a_dropped_connection_names_its_reason(serve: Callable[..., StubServer], tmp_path: Path,
                                               settings: dict[str, Any], args: list[str],
                                               reason: str) -> None:
    stub = serve(**settings)
    result = run("smoke", "--url", stub.url, "--model", MODEL, "--prompts", one_prompt(tmp_path), *args)
    assert re.fullmatch(reason, failure(result)[1])


@pytest.mark.parametrize(("answer", "reason"), [
    pytest.param(HTML, 'not a model list: the response is not JSON: "<!DOCTYPE html>', id="html"),
    pytest.param(("application/json", b'{"data": '),
                 "the response is not valid JSON (Expecting value: line 1 column 10)", id="invalid-json"),
    pytest.param(reply([]), "not a model list: the response is not a JSON object: []", id="a-list"),
    pytest.param(reply({"object": "list", "data": "nope"}), 'not a model list: data is "nope", not a list',
                 id="data-nope"),
    pytest.param(reply({"data": [None]}), "not a model list: data[0] is null, not an object", id="data-null"),
    pytest.param(reply({"data": [{"name": MODEL}]}), "not a model list: data[0].id is missing, not a string",
                 id="no-id"),
])
def test_a_models_answer_that_is_not_a_model_list_is_an_error(serve: Callable[..., StubServer],
                                                              answer: tuple[str, bytes], reason: str) -> None:
    stub = serve(models_reply=answer)
    result = run("smoke", "--url", stub.url, "--model", MODEL)
    assert result.exit_code == 1, result.output
    assert f"error: GET {stub.url}/v1/models failed: {reason}" in result.stderr
    assert "internal error" not in result.output and stub.posts() == []


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
