"""A real OpenAI-compatible HTTP server on 127.0.0.1 for the `nimgen smoke` tests, well-behaved or not.

Besides answering like vLLM/NIM (optionally slow, failing one prompt, without usage) it can misbehave the
ways a real server or proxy does: answer non-JSON or malformed JSON, drip its body, stream forever, send
chunks without a delta, drop the connection mid-answer, or serve something else at /v1/models.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

MODEL = "meta/llama3-8b-instruct"
# A misbehaving answer stops after this long even if smoke never hangs up, so a regression fails, not hangs.
GIVE_UP_S = 15.0


@dataclass
class StubConfig:
    """How the stub behaves: served ids, delays, tokens per answer, failing prompt, usage, misbehaviour."""

    models: tuple[str, ...] = (MODEL, "meta/llama-3.1-70b-instruct")
    delay_s: float = 0.0        # before the response (or the first stream chunk)
    token_delay_s: float = 0.0  # between stream chunks
    tokens: int = 8
    fail_prompt: str | None = None   # a prompt containing this gets HTTP 500
    usage: bool = True
    # --- misbehaviour ---
    reply: tuple[str, bytes] | None = None          # (Content-Type, body): every POST gets this 200 instead
    models_reply: tuple[str, bytes] | None = None   # the same for GET /v1/models
    events: tuple[Any, ...] | None = None           # a stream sends these data documents, then [DONE]
    drip_s: float = 0.0                             # a non-streamed answer goes out one byte per drip_s
    break_after: int | None = None                  # body bytes (or stream chunks) sent before breaking off
    break_how: Literal["reset", "close"] = "reset"  # a TCP reset, or an orderly close of an unfinished answer


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


def _words(count: int) -> Iterator[str]:
    return (f"w{i} " for i in range(count))  # lazy: an endless stream asks for a billion


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one SSE event, one packet

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _raw(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            config = stub.config
            if config.break_after is not None and self.command == "POST":
                self.wfile.write(data[: config.break_after])
                self._break_off()
            elif config.drip_s and status == 200 and self.command == "POST":
                began = time.monotonic()
                for offset in range(len(data)):
                    if time.monotonic() - began > GIVE_UP_S:
                        self.wfile.write(data[offset:])
                        break
                    self.wfile.write(data[offset: offset + 1])
                    time.sleep(config.drip_s)
            else:
                self.wfile.write(data)

        def _json(self, status: int, document: Any) -> None:
            self._raw(status, "application/json", json.dumps(document).encode())

        def _break_off(self) -> None:
            if stub.config.break_how == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # rfile still references the socket, so socket.close() would not close it yet
                os.close(self.connection.detach())
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

        def _record(self, body: Any) -> None:
            with stub.lock:
                stub.log.append({"method": self.command, "path": self.path, "body": body,
                                 "authorization": self.headers.get("Authorization")})

        def do_GET(self) -> None:
            self._record(None)
            if self.path != "/v1/models":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "NotFound", "code": 404}})
            elif stub.config.models_reply is not None:
                self._raw(200, *stub.config.models_reply)
            else:
                self._json(200, {"object": "list", "data": [
                    {"id": model, "object": "model", "created": 0, "owned_by": "stub"}
                    for model in stub.config.models]})

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
            if config.reply is not None:
                self._raw(200, *config.reply)
                return
            count = min(config.tokens, body.get("max_tokens") or config.tokens)
            usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": count,
                     "total_tokens": len(prompt.split()) + count}
            head = {"id": "cmpl-stub", "created": 0, "model": body["model"]}
            if not body.get("stream"):
                text = "".join(_words(count))
                choice: dict[str, Any] = (
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                    if chat else {"index": 0, "text": text, "finish_reason": "length", "logprobs": None})
                self._json(200, {**head, "object": "chat.completion" if chat else "text_completion",
                                 "choices": [choice], **({"usage": usage} if config.usage else {})})
                return
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(chat, head, count, usage, include_usage=include_usage)

        def _stream(self, chat: bool, head: dict[str, Any], count: int, usage: dict[str, Any],
                    include_usage: bool) -> None:
            config = stub.config
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            kind = "chat.completion.chunk" if chat else "text_completion"
            sent = 0
            began = time.monotonic()

            def send(document: Any) -> None:
                nonlocal sent
                if config.break_after is not None and sent == config.break_after:
                    raise _BreakOff
                if isinstance(document, bytes):  # sent as they are, e.g. not UTF-8
                    data = b"data: " + document + b"\n\n"
                else:
                    data = f"data: {document if isinstance(document, str) else json.dumps(document)}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                sent += 1

            def documents() -> Iterator[Any]:
                if config.events is not None:
                    yield from config.events
                    return
                if chat:  # a role-only first chunk, as vLLM/NIM send it: no content, so not the first token
                    yield {**head, "object": kind, "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
                for number, word in enumerate(_words(count)):
                    if number:
                        time.sleep(config.token_delay_s)
                    if time.monotonic() - began > GIVE_UP_S:
                        return
                    piece = {"delta": {"content": word}} if chat else {"text": word, "logprobs": None}
                    yield {**head, "object": kind, "choices": [{"index": 0, **piece, "finish_reason": None}]}
                if config.usage and include_usage:
                    yield {**head, "object": kind, "choices": [], "usage": usage}

            try:
                for document in documents():
                    send(document)
                send("[DONE]")
            except _BreakOff:
                self._break_off()
                return
            self.wfile.write(b"0\r\n\r\n")

    return Handler


class _BreakOff(Exception):
    """The stream has sent break_after chunks: drop the connection."""


class StubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connects under load: 1 s SYN retries

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a misbehaving answer is expected, not worth a traceback


def start_stub(config: StubConfig) -> tuple[StubServer, StubHTTPServer]:
    """Serve CONFIG on a free port of 127.0.0.1 in a daemon thread; the caller shuts the server down."""
    stub = StubServer(config)
    httpd = StubHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return stub, httpd
