"""Writing YAML: deterministic block style (insertion order kept, sequences indented under their key,
multi-line strings as literal blocks), byte for byte what PyYAML's emitter writes with these settings.

The fast path lays the block structure out directly and asks PyYAML only for each distinct scalar (see
`fast_dump`); PyYAML writes whatever it does not cover.
"""

from __future__ import annotations

import functools
import io
import re
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Block style with indented sequences, so output reads like hand-written Kubernetes YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _plain(dumper: yaml.SafeDumper, value: Any) -> yaml.Node:
    if isinstance(value, dict):
        return dumper.represent_dict(value)
    return dumper.represent_list(value)


_Dumper.add_representer(str, _str_representer)
# The reader's located mappings and lists (yamlio.LMap, LList) are written as plain ones.
_Dumper.add_multi_representer(dict, _plain)
_Dumper.add_multi_representer(list, _plain)


def pyyaml_dump(data: Any) -> str:
    """PyYAML's own dump with nimgen's settings: the reference the fast path matches byte for byte."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)


def dump(data: Any) -> str:
    """Serialise data as deterministic block YAML (insertion order kept)."""
    fast = fast_dump(data)
    return fast if fast is not None else pyyaml_dump(data)


def dump_all(documents: list[Any]) -> str:
    """Serialise several documents separated by `---`."""
    parts = [fast_dump(document) for document in documents]
    if documents and all(part is not None for part in parts):
        return "---\n".join(part for part in parts if part is not None)
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096
    )


# The fast path of `dump`: the same bytes as PyYAML's emitter with `_Dumper`, for the shapes nimgen builds.
# PyYAML's pure-Python emitter analyses every scalar anew and dominates rendering a large tree (libyaml's
# cannot indent sequences under their key). Here each distinct scalar is rendered once, by PyYAML itself, and
# the block structure, which depends only on nesting, is laid out directly. Anything outside that subset (a
# shared sub-object PyYAML would alias, a key PyYAML would write as a complex key, a long string it might fold
# at the line width, a type without a plain representer) falls back to PyYAML for the whole document.
class _Fallback(Exception):
    """The document needs PyYAML's emitter."""


# Strings longer than this could reach the line width (4096) once indented; PyYAML may then fold them.
_CONTEXT_FREE = 1024


# PyYAML's own scalar analysis and implicit-type resolution, outside a dump: for a one-line string they decide
# alone between plain and single-quoted style (Emitter.choose_scalar_style), which is most of nimgen's strings.
_ANALYZER = yaml.emitter.Emitter(io.StringIO(), allow_unicode=True)
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


def _one_line_form(value: str) -> str | None:
    """A one-line string after `key: ` or `- ` as PyYAML writes it, when plain or single-quoted; else None."""
    analysis = _ANALYZER.analyze_scalar(value)
    if analysis.multiline or len(value) > _CONTEXT_FREE:
        return None
    if analysis.allow_block_plain and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG:  # type: ignore[no-untyped-call]
        return value
    if analysis.allow_single_quoted:
        return "'" + value.replace("'", "''") + "'"
    return None


@functools.lru_cache(maxsize=65_536, typed=True)
def _scalar_form(value: Any) -> tuple[str, tuple[str, ...] | None]:
    """(what follows `key: ` or `- `, the literal block's lines without indentation or None), as PyYAML writes it."""
    if type(value) is str and "\n" not in value:
        quick = _one_line_form(value)
        if quick is not None:
            return quick, None
    text = pyyaml_dump({"k": value})
    # YAML's other line breaks make PyYAML break and indent inside quotes: the indentation depends on depth.
    if not text.startswith("k: ") or "\n..." in text or any(mark in text for mark in "\r\x85\u2028\u2029"):
        raise _Fallback
    first, _, rest = text[3:].partition("\n")
    if not rest:
        if isinstance(value, str) and len(value) > _CONTEXT_FREE:
            raise _Fallback
        return first, None
    if not first.startswith("|") or "+" in first:  # a folded quoted string, or `|+` (its document end marker)
        raise _Fallback
    lines = rest.split("\n")[:-1]
    if any(line and not line.startswith("  ") for line in lines):
        raise _Fallback
    return first, tuple(line[2:] for line in lines)


@functools.lru_cache(maxsize=65_536)
def _key_form(key: str) -> str:
    text = pyyaml_dump({key: 0})
    if not text.endswith(": 0\n") or text.startswith("? ") or text.count("\n") != 1:
        raise _Fallback
    return text[:-4]


_SCALARS = (str, int, float, bool, type(None))
# PyYAML writes a key as a simple key while it and its tag (`!!str`, 5 characters) are under 128 characters.
_SIMPLE_KEY = 128 - len("!!str")
# Strings PyYAML writes as they are: starting with a letter, of letters, digits, `._/-`, single inner spaces and
# inner colons not followed by a space, and not one of YAML 1.1's booleans or nulls (a number, a timestamp or
# a float starts with a digit, a sign or a dot). Everything else asks PyYAML (once per distinct string).
_PLAIN = re.compile(r"[A-Za-z](?:[A-Za-z0-9._/-]|:(?=[A-Za-z0-9._/-])| (?=[A-Za-z0-9._/-]))*")
_RESOLVED = frozenset(["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL"])


def _is_plain(text: str) -> bool:
    return len(text) <= _CONTEXT_FREE and _PLAIN.fullmatch(text) is not None and text not in _RESOLVED


def _emit_scalar(value: Any, indent: int, out: list[str]) -> None:
    """A scalar after `key: ` or `- `; a literal block's lines are indented 2 past its key or dash at `indent`."""
    kind = type(value)
    if kind is str and _is_plain(value):
        out.append(value + "\n")
        return
    if kind is int:
        out.append(f"{value}\n")
        return
    if kind not in _SCALARS:
        raise _Fallback
    # -0.0 == 0.0 with one hash: the cache would hand one the other's text, so a zero float goes around it.
    head, lines = _scalar_form.__wrapped__(value) if kind is float and value == 0 else _scalar_form(value)
    if lines is None:
        out.append(head + "\n")
        return
    pad = " " * (indent + 2)
    out.append(head + "\n" + "".join(pad + line + "\n" if line else "\n" for line in lines))


def _emit_mapping(data: dict[Any, Any], indent: int, inline: bool, out: list[str], seen: set[int]) -> None:
    """Each key at column `indent`; with `inline`, the first on the line already started (after `- `)."""
    pad = " " * indent
    for index, (key, value) in enumerate(data.items()):
        if type(key) is not str:
            raise _Fallback
        if index or not inline:
            out.append(pad)
        out.append(key if len(key) < _SIMPLE_KEY and _is_plain(key) else _key_form(key))
        _emit_value(value, indent, out, seen, mapping_value=True)


def _emit_sequence(data: list[Any], indent: int, inline: bool, out: list[str], seen: set[int]) -> None:
    """Each `- ` at column `indent`; with `inline`, the first on the line already started."""
    pad = " " * indent
    for index, item in enumerate(data):
        out.append("- " if index == 0 and inline else pad + "- ")
        _emit_value(item, indent, out, seen, mapping_value=False)


def _emit_value(value: Any, indent: int, out: list[str], seen: set[int], *, mapping_value: bool) -> None:
    """A mapping value (after its key at `indent`) or a sequence item (after its dash at `indent`)."""
    if isinstance(value, (dict, list)):
        if id(value) in seen:  # PyYAML would write an anchor and an alias
            raise _Fallback
        seen.add(id(value))
        if value:
            if mapping_value:
                out.append(":\n")
                emit = _emit_mapping if isinstance(value, dict) else _emit_sequence
                emit(value, indent + 2, False, out, seen)  # type: ignore[arg-type]
            elif isinstance(value, dict):
                _emit_mapping(value, indent + 2, True, out, seen)
            else:
                _emit_sequence(value, indent + 2, True, out, seen)
            return
        out.append((": " if mapping_value else "") + ("{}\n" if isinstance(value, dict) else "[]\n"))
        return
    if mapping_value:
        out.append(": ")
    _emit_scalar(value, indent, out)


def fast_dump(data: Any) -> str | None:
    """`data` (a non-empty mapping or sequence at the top) as PyYAML would write it, or None to let PyYAML do it."""
    if not isinstance(data, (dict, list)) or not data:
        return None
    out: list[str] = []
    try:
        if isinstance(data, dict):
            _emit_mapping(data, 0, False, out, {id(data)})
        else:
            _emit_sequence(data, 0, False, out, {id(data)})
    except _Fallback:
        return None
    return "".join(out)
