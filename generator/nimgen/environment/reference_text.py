"""Markdown text for the environment file reference: code spans, escaped prose, table cells, values."""

from __future__ import annotations

import json
import re
from typing import Any


def code(text: str) -> str:
    """`text` as a Markdown code span (a longer fence when it holds backticks)."""
    runs = re.findall("`+", text)
    fence = "`" * (max(map(len, runs)) + 1 if runs else 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def prose(text: str) -> str:
    """Schema text as Markdown: outside its code spans, characters that would start HTML (<name>),
    emphasis or an escape are escaped."""
    parts = re.split(r"(`[^`]*`)", text)
    for index in range(0, len(parts), 2):
        escaped = re.sub(r"([\\<*])", r"\\\1", parts[index])
        parts[index] = re.sub(r"(?<!\w)_|_(?!\w)", r"\\_", escaped)
    return "".join(parts)


def cell(text: str) -> str:
    """Markdown for one table cell: a `|` would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def literal(value: Any, *, bare: bool = False) -> str:
    """A schema value as code: JSON (in an enum, "1" differs from 1), or with `bare` a plain string as
    someone writes it in YAML (a default)."""
    if bare and isinstance(value, str) and value and value == value.strip() and "\n" not in value:
        return code(value)
    return code(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def number(value: Any) -> str:
    """A bound, readable: 1000000.0 -> 1,000,000."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10000 else str(value)


def sentence(text: str, *, upper: bool = False) -> str:
    """A hint as a sentence: "use a region" -> "use a region." ("Use a region." with `upper`)."""
    text = text.strip()
    text = text[:1].upper() + text[1:] if upper else text
    return text if text.endswith((".", "!", "?")) else text + "."


def group(text: str) -> str:
    """A type inside another (list of ..., map of ... → ...), parenthesized when it has alternatives."""
    return f"({text})" if " | " in text or " or " in text else text


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def adds(hint: str, description: str) -> bool:
    """Whether a hint says something the description does not already."""
    return bool(hint.strip()) and _words(hint) not in _words(description)
