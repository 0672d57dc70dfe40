"""YAML as Argo CD reads it: documents JSON can hold, with aliases that cannot expand without bound.

Argo CD turns YAML into JSON before anything looks at it: keys become strings (`yes:` is "true", `1:` is "1")
and timestamps stay text. PyYAML would give booleans, integers and dates that neither a JSON Schema validator
nor Helm's JSON values accept, so the loader builds JSON-compatible data as it goes. Committed files are input
from a pull request: a billion-laughs document is refused before anything expands it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml


def _key(key: Any) -> str:
    """A mapping key as JSON holds it (Go's YAML-to-JSON step writes `yes:` as "true", `1:` as "1")."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return key if isinstance(key, str) else str(key)


class _JSONLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader building only what JSON holds, as it goes: every key a string, timestamps and
    binary left as their text (as Argo CD's YAML-to-JSON step leaves them), sets as lists."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # The implicit tag of a plain scalar depends on its text alone; the thousands of documents Helm renders
        # for a large environment repeat the same few thousand texts (keys above all).
        if kind is yaml.ScalarNode and implicit == (True, False) and self.yaml_implicit_resolvers is _RESOLVERS:
            tag = _PLAIN_TAGS.get(value)
            if tag is None:
                tag = _PLAIN_TAGS[value] = super().resolve(kind, value, implicit)
                if len(_PLAIN_TAGS) > _MAX_PLAIN_TAGS:
                    _PLAIN_TAGS.clear()
            return tag
        return super().resolve(kind, value, implicit)


_RESOLVERS = _JSONLoader.yaml_implicit_resolvers
_PLAIN_TAGS: dict[str, str] = {}
_MAX_PLAIN_TAGS = 200_000


def _json_map(loader: Any, node: yaml.MappingNode) -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = {}
    yield data  # first, so that an alias inside the mapping can refer to it (as PyYAML's own mappings do)
    loader.flatten_mapping(node)  # merge keys (<<)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, (dict, list)):
            raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                    "found a mapping or list as a key", key_node.start_mark)
        data[_key(key)] = loader.construct_object(value_node)


def _scalar_text(loader: Any, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node)).strip()


_JSONLoader.add_constructor("tag:yaml.org,2002:map", _json_map)
_JSONLoader.add_constructor("tag:yaml.org,2002:timestamp", _scalar_text)
_JSONLoader.add_constructor("tag:yaml.org,2002:binary", _scalar_text)
# YAML 1.1's "value" key: a plain `=` (in Prometheus Operator's CRDs, as an enum member) is the string "=" to Go.
_JSONLoader.add_constructor("tag:yaml.org,2002:value", _scalar_text)
_JSONLoader.add_constructor("tag:yaml.org,2002:set", lambda loader, node: list(loader.construct_mapping(node)))


class AliasBombError(yaml.YAMLError):
    """YAML aliases that expand into an enormous (or endless) document."""


# Far above any manifest (a 100-model environment's largest is a few thousand nodes), far below what exhausts memory.
MAX_NODES = 1_000_000


def _expanded(value: Any, sizes: dict[int, int], open_: set[int]) -> int:
    """How many nodes `value` has once every alias is expanded (each shared node measured once)."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise AliasBombError("a YAML alias refers to the node that holds it: the document never ends")
    open_.add(key)
    size = 1 + sum(_expanded(child, sizes, open_) for child in (value.values() if isinstance(value, dict) else value))
    open_.discard(key)
    if size > MAX_NODES:
        raise AliasBombError(f"YAML aliases expand the document past {MAX_NODES:,} nodes")
    sizes[key] = size
    return size


class _Unusual(Exception):
    """A node `_convert` leaves to PyYAML's constructor (a tag outside JSON's and YAML 1.1's common ones)."""


# Scalar tags and the constructor _JSONLoader runs for each; all plain functions (PyYAML builds collections with
# generators, which `_convert` replaces).
_SCALAR_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary",
                "tag:yaml.org,2002:value")
_MAP, _SEQ, _STR = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:str"


def _convert(loader: Any, node: yaml.Node, built: dict[int, Any]) -> Any:
    """The node as _JSONLoader constructs it, without PyYAML's per-node bookkeeping (several times faster on the
    thousands of documents Helm renders for a large environment). An alias is the same node object: built once."""
    known = built.get(id(node))
    if known is not None or id(node) in built:
        return known
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        if tag == _STR:  # most scalars: SafeConstructor.construct_yaml_str returns the text as it is
            value = node.value
        elif tag in _SCALAR_TAGS:
            value = _JSONLoader.yaml_constructors[tag](loader, node)
        else:
            raise _Unusual
        built[id(node)] = value
        return value
    if isinstance(node, yaml.SequenceNode):
        if tag != _SEQ:
            raise _Unusual
        items: list[Any] = []
        built[id(node)] = items  # before the children: an alias inside may refer to it
        items.extend(_convert(loader, child, built) for child in node.value)
        return items
    if tag != _MAP or not isinstance(node, yaml.MappingNode):
        raise _Unusual
    data: dict[str, Any] = {}
    built[id(node)] = data
    loader.flatten_mapping(node)  # merge keys (<<)
    for key_node, value_node in node.value:
        key = _convert(loader, key_node, built)
        if isinstance(key, (dict, list)):
            raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                    "found a mapping or list as a key", key_node.start_mark)
        data[_key(key)] = _convert(loader, value_node, built)
    return data


def _load_all(text: str) -> list[Any]:
    """`yaml.load_all(text, Loader=_JSONLoader)`, through `_convert` where it can."""
    loader = _JSONLoader(text)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            try:
                docs.append(None if node is None else _convert(loader, node, {}))
            except _Unusual:
                docs.append(loader.construct_document(node))
    finally:
        loader.dispose()
    return docs


def documents(text: str) -> list[Any]:
    """Every document of a YAML stream (empty ones as None), JSON-compatible.

    yaml.YAMLError when the stream is not YAML or its aliases would expand without bound (a billion laughs).
    """
    docs = _load_all(text)
    if "&" in text and "*" in text:  # anchors and aliases: measure before anything expands them
        sizes: dict[int, int] = {}
        for doc in docs:
            _expanded(doc, sizes, set())
    return docs
