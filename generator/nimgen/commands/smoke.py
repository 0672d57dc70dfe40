"""`nimgen smoke`: send prompts to a running NIM (OpenAI API) and report latency, throughput and failures.

Built on the official `openai` package (extra `nimgen[smoke]`). Times are seconds throughout. Retries are
off: a smoke test must show a failing request, not hide it behind a retry. A misbehaving server (slow,
malformed answers, dropped connections) makes a failed request with its reason, never a crash or a hang:
--timeout bounds each whole request and answers are checked by `nimgen.smokeresponse`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nimgen.commands.smokeresponse import (
    Api,
    BadResponse,
    completion_tokens,
    failure_reason,
    model_ids,
    read_chunk,
    request_errors,
)
from nimgen.errors import UserError
from nimgen.jsonreport import camel_keys

if TYPE_CHECKING:
    from openai import AsyncOpenAI

Echo = Callable[[str], None]
DEFAULT_PROMPTS = "data/smoke-prompts.txt"


@dataclass(frozen=True)
class SmokeOptions:
    """What to send where."""

    url: str
    model: str
    prompts: tuple[str, ...]
    concurrency: int = 10
    max_tokens: int = 256
    stream: bool = False
    api: Api = "chat"
    timeout_s: float = 120.0
    # The environment variable holding the API key sent as `Authorization: Bearer` (a gateway's client key); a key
    # is never an option value, which shell history and the process list would keep.
    api_key_env: str = "OPENAI_API_KEY"
    api_key_required: bool = False  # the variable was named explicitly: unset is an error, not an anonymous call


@dataclass
class RequestResult:
    """One prompt's outcome. Token source: usage (server-reported), chunks (counted stream chunks), none."""

    index: int
    prompt: str
    ok: bool = False
    error: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    itl_s: float | None = None
    completion_tokens: int | None = None
    token_source: Literal["usage", "chunks", "none"] = "none"
    started: float = field(default=0.0, repr=False)


@dataclass(frozen=True)
class Summary:
    """Totals over all requests; tokens/s is completion tokens over wall time."""

    requests: int
    succeeded: int
    failed: int
    accumulated_s: float
    wall_s: float
    completion_tokens: int
    tokens_per_s: float
    token_source: str
    ttft_p50_s: float | None
    ttft_p95_s: float | None


@dataclass(frozen=True)
class SmokeReport:
    """The run: options, per-request results in prompt order, summary."""

    options: SmokeOptions
    base_url: str
    results: list[RequestResult]
    summary: Summary

    @property
    def ok(self) -> bool:
        return self.summary.failed == 0

    def to_json(self) -> str:
        """Deterministic JSON: camelCase keys as every report (sorted), two-space indent, floats rounded to 0.1 ms."""
        requests = [
            {key: _round(value) for key, value in asdict(result).items() if key != "started"}
            for result in self.results
        ]
        # Which variable held the key says nothing of the run (and the key itself is never recorded).
        options = {key: value for key, value in asdict(self.options).items()
                   if key not in ("prompts", "api_key_env", "api_key_required")}
        document = {
            "base_url": self.base_url,
            "options": options,
            "requests": requests,
            "summary": {key: _round(value) for key, value in asdict(self.summary).items()},
        }
        return json.dumps(camel_keys(document), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def load_prompts(path: Path | None) -> tuple[str, ...]:
    """Non-blank lines of PATH (default: the built-in LLM-serving prompts), stripped."""
    try:
        if path is None:
            text = resources.files("nimgen").joinpath(DEFAULT_PROMPTS).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"cannot read prompts file {path}: {reason}",
                        hint="pass a readable UTF-8 text file with one prompt per line") from exc
    prompts = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not prompts:
        raise UserError(f"prompts file {path} holds no prompts", hint="write one prompt per line")
    return prompts


def api_base_url(url: str) -> str:
    """URL + /v1 unless it already ends with /v1."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise UserError(f"--url {url!r} is not an http(s) URL", hint="e.g. http://localhost:8000")
    return base if base.endswith("/v1") else base + "/v1"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def _served_models(client: AsyncOpenAI, base_url: str, timeout_s: float) -> list[str]:
    try:
        return model_ids(await asyncio.wait_for(client.get("/models", cast_to=object), timeout_s))
    except request_errors() as exc:
        raise UserError(f"GET {base_url}/models failed: {failure_reason(exc, timeout_s)}",
                        hint="is the NIM ready and the URL right (e.g. a kubectl port-forward to the "
                             "model's Service on port 8000)?") from exc


async def _send(client: AsyncOpenAI, options: SmokeOptions, result: RequestResult) -> None:
    """Fill RESULT in place: timings and tokens; raises on a failed request.

    Posts plain JSON and gets plain JSON back (cast_to=object) so that smokeresponse can check its shape.
    """
    import openai

    body: dict[str, Any] = {"model": options.model, "max_tokens": options.max_tokens}
    if options.api == "chat":
        path, body["messages"] = "/chat/completions", [{"role": "user", "content": result.prompt}]
    else:
        path, body["prompt"] = "/completions", result.prompt
    if options.stream:
        body.update(stream=True, stream_options={"include_usage": True})
        stream = await client.post(path, cast_to=object, body=body, stream=True,
                                   stream_cls=openai.AsyncStream[object])
        async with stream:  # closes the connection when the deadline cancels us mid-stream
            await _read_stream(stream, options.api, result)
    else:
        tokens = completion_tokens(await client.post(path, cast_to=object, body=body), options.api)
        if tokens is not None:
            result.completion_tokens, result.token_source = tokens, "usage"
    result.latency_s = time.perf_counter() - result.started
    result.ok = True


async def _read_stream(stream: AsyncIterator[object], api: Api, result: RequestResult) -> None:
    """Consume the stream: TTFT and ITL from content chunks' arrival, tokens from usage or the chunk count."""
    stamps: list[float] = []
    usage: int | None = None
    had_choices = False
    number = 0
    try:
        async for data in stream:
            number += 1
            chunk = read_chunk(data, api)
            had_choices |= chunk.has_choices
            usage = usage if chunk.completion_tokens is None else chunk.completion_tokens
            if chunk.text:
                stamps.append(time.perf_counter())
    except json.JSONDecodeError as exc:  # raised by the client's SSE decoder for the next event
        raise BadResponse(f"stream chunk {number + 1} is not valid JSON ({exc.msg})") from None
    except BadResponse as exc:
        raise BadResponse(f"stream chunk {number}: {exc}") from None
    if not had_choices:
        raise BadResponse("the stream ended without any choices")
    if stamps:
        result.ttft_s = stamps[0] - result.started
        gaps = [later - earlier for earlier, later in pairwise(stamps)]
        result.itl_s = sum(gaps) / len(gaps) if gaps else None
    if usage is None:
        result.completion_tokens, result.token_source = len(stamps), "chunks"
    else:
        result.completion_tokens, result.token_source = usage, "usage"


def _request_line(result: RequestResult, width: int) -> str:
    head = f"{'ok' if result.ok else 'FAIL':<4}  #{result.index:<{width}}  {result.latency_s:7.3f} s"
    if not result.ok:
        return f"{head}  {result.error}"
    tokens = "? tokens" if result.completion_tokens is None else f"{result.completion_tokens} tokens"
    line = f"{head}  {tokens:>11}"
    if result.ttft_s is not None:
        line += f"  ttft {result.ttft_s:.3f} s"
    if result.itl_s is not None:
        line += f"  itl {result.itl_s:.4f} s"
    return line


def _token_source(results: list[RequestResult]) -> str:
    done = [r for r in results if r.ok]
    by_chunks = sum(1 for r in done if r.token_source == "chunks")
    unknown = sum(1 for r in done if r.token_source == "none")
    parts = []
    if not done:
        return "no request succeeded"
    if by_chunks == len(done):
        parts.append("counted stream chunks: the server sent no usage")
    else:
        parts.append("from usage")
        if by_chunks:
            parts.append(f"{by_chunks} requests without usage counted by stream chunks")
    if unknown:
        parts.append(f"{unknown} requests reported no usage and are not counted")
    return "; ".join(parts)


def summarise(results: list[RequestResult], wall_s: float) -> Summary:
    """Totals: accumulated is the sum of latencies, tokens/s is completion tokens / wall time."""
    tokens = sum(r.completion_tokens or 0 for r in results if r.ok)
    ttfts = [r.ttft_s for r in results if r.ok and r.ttft_s is not None]
    return Summary(
        requests=len(results), succeeded=sum(r.ok for r in results), failed=sum(not r.ok for r in results),
        accumulated_s=sum(r.latency_s for r in results), wall_s=wall_s, completion_tokens=tokens,
        tokens_per_s=tokens / wall_s if wall_s > 0 else 0.0, token_source=_token_source(results),
        ttft_p50_s=percentile(ttfts, 0.50), ttft_p95_s=percentile(ttfts, 0.95),
    )


def summary_text(report: SmokeReport) -> str:
    """The closing block: counts, times, throughput, TTFT percentiles, then PASS or the failures."""
    s = report.summary
    lines = [
        f"requests:          {s.succeeded} ok, {s.failed} failed (of {s.requests})",
        f"accumulated time:  {s.accumulated_s:.3f} s (sum of request latencies)",
        f"wall time:         {s.wall_s:.3f} s",
        f"completion tokens: {s.completion_tokens} ({s.token_source})",
        f"throughput:        {s.tokens_per_s:.1f} tokens/s (completion tokens / wall time)",
    ]
    if s.ttft_p50_s is not None and s.ttft_p95_s is not None:
        lines.append(f"time to first token: p50 {s.ttft_p50_s:.3f} s, p95 {s.ttft_p95_s:.3f} s")
    if report.ok:
        lines.append(f"PASS: {s.requests} requests to {report.options.model} succeeded")
    else:
        lines.append(f"FAIL: {s.failed} of {s.requests} requests failed:")
        lines += [f"  prompt #{r.index} ({_excerpt(r.prompt)}): {r.error}" for r in report.results if not r.ok]
    return "\n".join(lines)


def _excerpt(prompt: str, limit: int = 60) -> str:
    return repr(prompt if len(prompt) <= limit else prompt[: limit - 3] + "...")


async def run_smoke_async(options: SmokeOptions, echo: Echo) -> SmokeReport:
    """Check the model is served, send every prompt (at most `concurrency` at once), report as they finish."""
    import openai

    base_url = api_base_url(options.url)
    key = os.environ.get(options.api_key_env, "")
    if options.api_key_required and not key:
        raise UserError(f"--api-key-env {options.api_key_env}: the environment variable is not set or empty",
                        hint=f"export {options.api_key_env} with the client's API key (the environment README shows "
                             "where the gateway's keys are)")
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key or "not-used", max_retries=0, timeout=options.timeout_s)
    async with client:
        served = await _served_models(client, base_url, options.timeout_s)
        if options.model not in served:
            listing = ", ".join(served) if served else "none"
            raise UserError(f"model {options.model!r} is not served by {base_url}; served models: {listing}",
                            hint="pass one of the served ids with --model (the NIM's servedModelName)")
        mode = "streaming" if options.stream else "non-streaming"
        echo(f"{len(options.prompts)} prompts to {options.model} at {base_url}: {options.api} API, {mode}, "
             f"concurrency {options.concurrency}, max tokens {options.max_tokens}")
        results = [RequestResult(index, prompt) for index, prompt in enumerate(options.prompts, start=1)]
        gate = asyncio.Semaphore(options.concurrency)
        width = len(str(len(results)))

        async def one(result: RequestResult) -> None:
            async with gate:
                result.started = time.perf_counter()
                try:  # the client's timeout is per read: a server dripping bytes would never trip it
                    await asyncio.wait_for(_send(client, options, result), options.timeout_s)
                except request_errors() as exc:
                    result.latency_s = time.perf_counter() - result.started
                    result.error = failure_reason(exc, options.timeout_s)
            echo(_request_line(result, width))

        began = time.perf_counter()
        await asyncio.gather(*(one(result) for result in results))
        wall_s = time.perf_counter() - began
    return SmokeReport(options, base_url, results, summarise(results, wall_s))


def run_smoke(options: SmokeOptions, echo: Echo, results_file: Path | None = None) -> SmokeReport:
    """Run the smoke test, print the summary, write RESULTS_FILE (JSON) if given; failures are in the report."""
    if results_file is not None and not results_file.parent.is_dir():
        raise UserError(f"cannot write results to {results_file}: its folder does not exist")
    try:
        import openai  # noqa: F401 - fail early with an install hint
    except ImportError as exc:
        raise UserError("nimgen smoke needs the openai package", hint="pip install 'nimgen[smoke]'") from exc
    report = asyncio.run(run_smoke_async(options, echo))
    echo(summary_text(report))
    if results_file is not None:
        try:
            results_file.write_text(report.to_json(), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write results to {results_file}: {exc.strerror or exc}") from exc
        echo(f"results: {results_file}")
    return report
