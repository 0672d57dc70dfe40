"""What `nimgen smoke` accepts from a server, and how it names what went wrong.

The openai client builds its response models without validating them, so a malformed answer would surface
as None or a string deep inside a model (and crash smoke). Smoke therefore reads the plain JSON and checks
explicitly the few fields it uses: a completion's choices and their text, a stream chunk's delta, usage,
and the ids of /v1/models.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal

from nimgen.errors import field_path, shown

Api = Literal["chat", "completions"]
_MISSING = object()  # a field the server left out, told apart from one it sent as null


class BadResponse(Exception):
    """The server answered, but not in the shape of the OpenAI API."""


@dataclass(frozen=True)
class Chunk:
    """One stream event: its text (None without content), whether it held choices, usage's token count."""

    text: str | None
    has_choices: bool
    completion_tokens: int | None


def _document(body: object, what: str) -> dict[str, Any]:
    """BODY as a JSON object. The client hands back the raw text when the Content-Type is not JSON."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            raise BadResponse(f"{what} is not JSON: {shown(body, 60)}") from None
    if not isinstance(body, dict):
        raise BadResponse(f"{what} is not a JSON object: {shown(body, 60)}")
    return body


def _expect(value: Any, kind: type, path: list[Any], *, nullable: bool = False) -> Any:
    """VALUE if it is a KIND (or null/missing when NULLABLE), else BadResponse naming the field and value."""
    if value is _MISSING and nullable:
        return None
    if (value is None and nullable) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    wanted = {dict: "an object", list: "a list", str: "a string", int: "an integer"}[kind]
    held = "missing" if value is _MISSING else shown(value, 60)
    raise BadResponse(f"{field_path(path)} is {held}, not {wanted}")


def _choice_text(choice: Any, index: int, api: Api, *, stream: bool) -> str | None:
    """The text of one choice: message.content (chat), delta.content (chat stream) or text (completions)."""
    _expect(choice, dict, ["choices", index])
    if api == "completions":
        text: str | None = _expect(choice.get("text", _MISSING), str, ["choices", index, "text"],
                                   nullable=stream)
        return text
    key = "delta" if stream else "message"
    holder = _expect(choice.get(key, _MISSING), dict, ["choices", index, key])
    content: str | None = _expect(holder.get("content", _MISSING), str, ["choices", index, key, "content"],
                                  nullable=True)
    return content


def _usage_tokens(document: dict[str, Any]) -> int | None:
    """usage.completion_tokens, None when the server sent no usage."""
    usage = _expect(document.get("usage", _MISSING), dict, ["usage"], nullable=True)
    if usage is None:
        return None
    tokens: int = _expect(usage.get("completion_tokens", _MISSING), int, ["usage", "completion_tokens"])
    return tokens


def completion_tokens(body: object, api: Api) -> int | None:
    """Check a non-streamed completion: a non-empty list of choices, each with its text; usage's tokens."""
    document = _document(body, "the response")
    error = document.get("error")
    if error is not None and "choices" not in document:
        message = error.get("message") if isinstance(error, dict) else error
        raise BadResponse(f"the response is an error: {shown(message, 200)}")
    choices = _expect(document.get("choices", _MISSING), list, ["choices"])
    if not choices:
        raise BadResponse("choices is an empty list")
    for index, choice in enumerate(choices):
        _choice_text(choice, index, api, stream=False)
    return _usage_tokens(document)


def read_chunk(body: object, api: Api) -> Chunk:
    """Check one stream event: choices a list (empty in the closing usage chunk), each with delta or text."""
    if not isinstance(body, dict):  # the client's SSE decoder already parsed the JSON
        raise BadResponse(f"not a JSON object: {shown(body, 60)}")
    choices = _expect(body.get("choices", _MISSING), list, ["choices"], nullable=True) or []
    texts = [_choice_text(choice, index, api, stream=True) for index, choice in enumerate(choices)]
    return Chunk(text=texts[0] if texts else None, has_choices=bool(choices),
                 completion_tokens=_usage_tokens(body))


def model_ids(body: object) -> list[str]:
    """The sorted ids of a /v1/models answer: an object whose data is a list of objects with a string id."""
    try:
        entries = _expect(_document(body, "the response").get("data", _MISSING), list, ["data"])
        entries = [_expect(entry, dict, ["data", index]) for index, entry in enumerate(entries)]
        return sorted(_expect(entry.get("id", _MISSING), str, ["data", index, "id"])
                      for index, entry in enumerate(entries))
    except BadResponse as exc:
        raise BadResponse(f"not a model list: {exc}") from None


def request_errors() -> tuple[type[BaseException], ...]:
    """What a failed request raises (as opposed to a bug in nimgen): failure_reason names each."""
    import openai

    return openai.OpenAIError, BadResponse, json.JSONDecodeError, UnicodeDecodeError, asyncio.TimeoutError


def failure_reason(exc: BaseException, timeout_s: float) -> str:
    """One line naming why a request failed: HTTP status, timeout, broken connection or malformed answer."""
    import openai

    if isinstance(exc, (asyncio.TimeoutError, openai.APITimeoutError)):
        return f"timed out after {timeout_s:g} s"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return f"HTTP {exc.status_code}: {message or body or exc.message}"
    if isinstance(exc, openai.APIConnectionError):
        return _connection_reason(exc)
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return f"the server reported an error: {exc.message}"
    if isinstance(exc, json.JSONDecodeError):
        return f"the response is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return f"the response is not UTF-8 ({exc.reason} at byte {exc.start})"
    if isinstance(exc, BadResponse):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _connection_reason(exc: BaseException) -> str:
    """Name a broken connection by the root cause the HTTP stack chained below the client's generic error."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in chain):
        chain.append(link)
        link = link.__cause__ or link.__context__
    if any(isinstance(link, ConnectionResetError) for link in chain):
        return "connection reset by the server"
    cause = exc.__cause__ or exc
    # httpx (and httpx2) raise RemoteProtocolError when the peer closes before the body is complete.
    if any(type(link).__name__ == "RemoteProtocolError" for link in chain):
        return f"server disconnected: {cause}"
    return f"connection failed: {cause}"
