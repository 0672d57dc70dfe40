"""Exception hierarchy: library code raises these, only the CLI turns them into exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# Longest part of a user's value echoed in a message: a 5 MB value must not become a 5 MB error.
SHOWN_CHARS = 80


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to its first `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A user's value as messages echo it: strings JSON-quoted (control characters visible), all shortened;
    a value that holds a credential is never echoed (messages end up in CI logs)."""
    from nimgen.secrets import secret_in_text  # late: secrets is a leaf module, errors is imported everywhere

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if (what := secret_in_text(text)) is not None:
        return f"<{len(text)} characters holding {what}, not shown>"
    if not isinstance(value, str):
        return shorten(text, limit)
    quoted = json.dumps(value[:limit], ensure_ascii=False)
    return quoted if len(value) <= limit else f"{quoted}… ({len(value)} characters)"


def json_path(parts: list[Any]) -> str:
    """Render a path like `$.models[0].image`."""
    text = "$"
    for part in parts:
        name = str(part)
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif name.replace("_", "").replace("-", "").isalnum() and name.isascii() and len(name) <= SHOWN_CHARS:
            text += f".{name}"
        else:
            text += f"[{shorten(name)!r}]"
    return text


def field_path(parts: Any) -> str:
    """Render a manifest field path like `spec.containers[0].image`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class NimgenError(Exception):
    """Root of every error nimgen raises on purpose."""


class UserError(NimgenError):
    """A problem the user can fix; its message is shown verbatim, with an optional hint."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The text shown to the user."""
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


@dataclass(frozen=True, order=True)
class Location:
    """A place in an input file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One located finding in an environment file."""

    location: Location
    path: str
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"

    def render(self) -> str:
        """`FILE:LINE:COL: $.path: message` plus an indented hint line."""
        prefix = "warning: " if self.severity == "warning" else ""
        text = f"{self.location}: {self.path}: {prefix}{self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text

    def sort_key(self) -> tuple[str, int, int, str]:
        """Order by file, then position, then path, so reports read top to bottom."""
        return (self.location.file, self.location.line, self.location.column, self.path)


class ConfigError(UserError):
    """An environment file (or its defaults) is invalid: carries every problem found at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        count = len(self.problems)
        files = sorted({p.location.file for p in self.problems})
        header = f"{count} problem{'s' if count != 1 else ''} in {', '.join(files)}"
        super().__init__(header + "\n" + "\n".join(p.render() for p in self.problems))


class OutputConflictError(UserError):
    """nimgen would overwrite a file it did not generate."""

    def __init__(self, paths: list[Path]) -> None:
        listing = "\n".join(f"  {p}" for p in sorted(paths))
        super().__init__(
            f"refusing to overwrite files nimgen did not generate:\n{listing}",
            hint="move or delete them (nimgen never touches files it did not create), then render again",
        )


class OutputWriteError(UserError):
    """Writing the rendered tree failed; the hint says whether anything changed."""
