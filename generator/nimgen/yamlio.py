"""The one place that reads and writes YAML (writing lives in `yamldump`; `dump` and `dump_all` are here too).

Reading keeps the position of every key and value so that errors can point at
`FILE:LINE:COL`, and refuses YAML that is legal but dangerous or ambiguous in a
configuration file: duplicate keys, tab indentation and alias expansion bombs.
Writing is deterministic: insertion order kept, block style, multi-line strings
as literal blocks.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from nimgen.errors import ConfigError, Location, Problem, json_path, shorten, shown
from nimgen.yamldump import dump, dump_all

__all__ = ["LList", "LMap", "dump", "dump_all", "load_all_plain", "load_located", "load_plain"]

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


# libyaml's safe loader when PyYAML was built with it: the same YAML, several times faster.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_plain(text: str) -> Any:
    """Parse trusted YAML (nimgen's own output) into plain Python data."""
    return yaml.load(text, Loader=_FAST_LOADER)


def load_all_plain(text: str) -> list[Any]:
    """Parse a trusted multi-document YAML stream, dropping empty documents."""
    return [doc for doc in yaml.load_all(text, Loader=_FAST_LOADER) if doc is not None]
