"""The one place that reads and writes YAML.

Reading keeps the position of every key and value so that errors can point at
`FILE:LINE:COL`, and refuses YAML that is legal but dangerous or ambiguous in a
configuration file: duplicate keys, tab indentation and alias expansion bombs.
Writing is deterministic: insertion order kept, block style, multi-line strings
as literal blocks.
"""

from __future__ import annotations

import functools
import io
import math
import re
from typing import Any

import yaml

from nimgen.errors import ConfigError, Location, Problem, json_path, shorten, shown

# An alias may legitimately share a block; past this many expanded nodes the
# document is an expansion bomb ("billion laughs"), not a configuration.
MAX_EXPANDED_NODES = 20_000
# Integers beyond int64 reach neither Kubernetes nor Helm intact (Go parses them as float64 or fails).
MAX_INTEGER = 2**63 - 1
# What YAML 1.1 makes of an unquoted key that is not a string, for the message.
_KEY_KINDS = {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}


class LMap(dict):  # type: ignore[type-arg]
    """A mapping that remembers where it and each of its keys and values came from."""

    def __init__(self, *args: Any, loc: Location | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loc = loc
        self.key_locs: dict[Any, Location] = {}
        self.value_locs: dict[Any, Location] = {}


class LList(list):  # type: ignore[type-arg]
    """A sequence that remembers where it and each of its items came from."""

    def __init__(self, *args: Any, loc: Location | None = None) -> None:
        super().__init__(*args)
        self.loc = loc
        self.item_locs: list[Location | None] = [None] * len(self)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml's parser when available: several times faster on a hundred-model file, with the
    same marks) that also reads YAML 1.2 exponent floats such as `8e9` as numbers (YAML 1.1 wants `8.0e+9`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+\Z"),
    list("-+0123456789"),
)


def _loc(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed YAML node graph into LMap/LList/scalars, checking as it goes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")  # only used to resolve scalar values
        self.expanded = 0
        self.bomb_reported = False

    def build(self, node: yaml.Node, path: str) -> Any:
        self.expanded += 1
        if self.expanded > MAX_EXPANDED_NODES:
            if not self.bomb_reported:
                self.bomb_reported = True
                self.problems.append(
                    Problem(
                        _loc(self.file, node.start_mark),
                        path,
                        f"aliases expand this document past {MAX_EXPANDED_NODES} nodes",
                        "anchors and aliases are for sharing small blocks; use environments/_defaults.yaml "
                        "and modelDefaults for shared settings",
                    )
                )
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            out = LList(loc=_loc(self.file, node.start_mark))
            for index, item in enumerate(node.value):
                out.append(self.build(item, f"{path}[{index}]"))
                out.item_locs.append(_loc(self.file, item.start_mark))
            return out
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: str) -> Any:
        """A scalar's value; non-finite or out-of-range numbers are refused (Go and JSON have no such values)."""
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(Problem(
                _loc(self.file, node.start_mark), path, f"number {shorten(node.value)} is not finite",
                "write a finite number (infinity and NaN, or numbers beyond about 1.8e308, mean nothing here)"))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            self.problems.append(Problem(
                _loc(self.file, node.start_mark), path, f"number {shorten(node.value)} is out of range",
                f"integers must lie between -{MAX_INTEGER} and {MAX_INTEGER}"))
        return value

    def _mapping(self, node: yaml.MappingNode, path: str) -> LMap:
        out = LMap(loc=_loc(self.file, node.start_mark))
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merges.append(value_node)  # applied after the explicit keys, which win
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem(_loc(self.file, key_node.start_mark), path, "mapping keys must be plain scalars")
                )
                continue
            key = self.constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                # YAML 1.1 reads `yes:`, `on:`, `1:` or `null:` as booleans, numbers or null: a key named `on`
                # would silently become `true` (and mixed key types cannot even be sorted).
                self.problems.append(Problem(
                    _loc(self.file, key_node.start_mark), f"{path}{json_path([key_node.value])[1:]}",
                    f"key {shown(key_node.value)} is read as {_KEY_KINDS.get(type(key), 'a non-string')} "
                    f"({shown(key)}), not as a string",
                    f"quote the key: '{shorten(key_node.value)}': (YAML 1.1 reads yes/no/on/off/true/false, numbers "
                    "and null as other types)"))
                continue
            child_path = f"{path}{json_path([key])[1:]}"
            if key in out.key_locs:
                first = out.key_locs[key]
                self.problems.append(
                    Problem(
                        _loc(self.file, key_node.start_mark),
                        child_path,
                        f"duplicate key '{shorten(key)}' (first defined at line {first.line})",
                        "YAML keeps only the last value of a repeated key; keep one of them",
                    )
                )
                continue
            out[key] = self.build(value_node, child_path)
            out.key_locs[key] = _loc(self.file, key_node.start_mark)
            out.value_locs[key] = _loc(self.file, value_node.start_mark)
        for value_node in merges:
            self._merge_into(out, value_node, path)
        return out

    def _merge_into(self, out: LMap, value_node: yaml.Node, path: str) -> None:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            merged = self.build(source, path)
            if not isinstance(merged, LMap):
                self.problems.append(
                    Problem(_loc(self.file, source.start_mark), path, "'<<' merges only mappings")
                )
                continue
            for key, value in merged.items():
                if key not in out:  # explicit keys win over merged ones, as in YAML 1.1
                    out[key] = value
                    out.key_locs[key] = merged.key_locs[key]
                    out.value_locs[key] = merged.value_locs[key]


def load_located(text: str, file: str) -> Any:
    """Parse one YAML document into LMap/LList/scalars, or raise ConfigError with every problem."""
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(" ")
        if stripped.startswith("\t"):
            problems.append(
                Problem(
                    Location(file, number, len(line) - len(stripped) + 1),
                    "$",
                    "tab character used for indentation",
                    "YAML indents with spaces only; replace the tab with spaces",
                )
            )
    if problems:
        raise ConfigError(problems)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _loc(file, mark) if mark else Location(file, 1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ConfigError([Problem(where, "$", f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(Location(file, 1, 1), "$", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if node is None:
        return None
    builder = _Builder(file)
    try:
        data = builder.build(node, "$")
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = _loc(file, mark) if mark else Location(file, 1, 1)
        raise ConfigError([Problem(where, "$", f"invalid YAML value: {exc.problem}")]) from None
    if builder.problems:
        raise ConfigError(builder.problems)
    return data


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
_Dumper.add_representer(LMap, _plain)
_Dumper.add_representer(LList, _plain)


def _pyyaml_dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)


def dump(data: Any) -> str:
    """Serialise data as deterministic block YAML (insertion order kept)."""
    fast = _fast_dump(data)
    return fast if fast is not None else _pyyaml_dump(data)


def dump_all(documents: list[Any]) -> str:
    """Serialise several documents separated by `---`."""
    parts = [_fast_dump(document) for document in documents]
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
    text = _pyyaml_dump({"k": value})
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
    text = _pyyaml_dump({key: 0})
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
    head, lines = _scalar_form(value)
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
            if type(value) not in (dict, list, LMap, LList):
                raise _Fallback
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


def _fast_dump(data: Any) -> str | None:
    """`data` (a non-empty mapping or sequence at the top) as PyYAML would write it, or None to let PyYAML do it."""
    if not isinstance(data, (dict, list)) or not data or type(data) not in (dict, list, LMap, LList):
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


# libyaml's safe loader when PyYAML was built with it: the same YAML, several times faster.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_plain(text: str) -> Any:
    """Parse trusted YAML (nimgen's own output) into plain Python data."""
    return yaml.load(text, Loader=_FAST_LOADER)


def load_all_plain(text: str) -> list[Any]:
    """Parse a trusted multi-document YAML stream, dropping empty documents."""
    return [doc for doc in yaml.load_all(text, Loader=_FAST_LOADER) if doc is not None]
