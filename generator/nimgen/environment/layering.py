"""Layering of environment documents: `_defaults.yaml` under each environment file.

Rules, applied recursively from the top:
- mappings deep-merge; a key set to `null` in the upper layer removes it;
- lists whose items are all mappings with a `name` merge item by item on `name`
  (defaults' order first, new items appended); an item `{name: x, $patch: delete}`
  removes `x` (the Kubernetes strategic-merge-patch spelling);
- anything else in the upper layer replaces the lower value.

Locations travel with the values, so errors in merged data still point at the
file and line the value came from.
"""

from __future__ import annotations

from typing import Any

from nimgen.errors import Location
from nimgen.yamlio import LList, LMap

DELETE_DIRECTIVE = "$patch"


def _is_named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) and "name" in item for item in value)


def merge(lower: Any, upper: Any) -> Any:
    """Return `upper` layered over `lower` (neither is modified)."""
    if isinstance(lower, dict) and isinstance(upper, dict):
        return _merge_maps(lower, upper)
    if _is_named_list(lower) and _is_named_list(upper) and lower and upper:
        return _merge_named_lists(lower, upper)
    return strip_directives(upper)


def _merge_maps(lower: dict[Any, Any], upper: dict[Any, Any]) -> LMap:
    out = LMap(loc=getattr(upper, "loc", None) or getattr(lower, "loc", None))
    for key, value in lower.items():
        if key in upper:
            continue
        out[key] = strip_directives(value)
        _copy_locs(out, key, lower, key)
    for key, value in upper.items():
        if value is None:
            continue  # `key: null` removes what the lower layer set
        out[key] = merge(lower[key], value) if key in lower else strip_directives(value)
        _copy_locs(out, key, upper, key)
    return out


def _merge_named_lists(lower: list[Any], upper: list[Any]) -> LList:
    upper_by_name = {item["name"]: (index, item) for index, item in enumerate(upper)}
    merged: list[tuple[Any, Location | None]] = []
    for index, item in enumerate(lower):
        hit = upper_by_name.get(item["name"])
        if hit is None:
            merged.append((strip_directives(item), _item_loc(lower, index)))
        elif hit[1].get(DELETE_DIRECTIVE) != "delete":
            merged.append((merge(item, hit[1]), _item_loc(upper, hit[0])))
    lower_names = {item["name"] for item in lower}
    for index, item in enumerate(upper):
        if item["name"] not in lower_names and item.get(DELETE_DIRECTIVE) != "delete":
            merged.append((strip_directives(item), _item_loc(upper, index)))
    out = LList([value for value, _ in merged], loc=getattr(upper, "loc", None))
    out.item_locs = [loc for _, loc in merged]
    return out


def strip_directives(value: Any) -> Any:
    """Drop `$patch: delete` items that have nothing under them to delete."""
    if _is_named_list(value) and any(item.get(DELETE_DIRECTIVE) == "delete" for item in value):
        keep = [index for index, item in enumerate(value) if item.get(DELETE_DIRECTIVE) != "delete"]
        out = LList([value[index] for index in keep], loc=getattr(value, "loc", None))
        out.item_locs = [_item_loc(value, index) for index in keep]
        return out
    return value


def _item_loc(container: list[Any], index: int) -> Location | None:
    locs = getattr(container, "item_locs", None)
    return locs[index] if locs and index < len(locs) else None


def _copy_locs(out: LMap, key: Any, source: dict[Any, Any], source_key: Any) -> None:
    key_locs = getattr(source, "key_locs", {})
    value_locs = getattr(source, "value_locs", {})
    if source_key in key_locs:
        out.key_locs[key] = key_locs[source_key]
    if source_key in value_locs:
        out.value_locs[key] = value_locs[source_key]


def locate(root: Any, path: list[Any], fallback: Location) -> Location:
    """Best location for a JSON path (list of keys/indices) in located data."""
    best = getattr(root, "loc", None) or fallback
    node = root
    for part in path:
        if isinstance(node, dict) and part in node:
            best = getattr(node, "value_locs", {}).get(part) or best
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            best = _item_loc(node, part) or best
            node = node[part]
        else:
            break
    return best


def locate_key(root: Any, path: list[Any], key: Any, fallback: Location) -> Location:
    """Location of `key` itself inside the mapping at `path` (for unknown-key errors)."""
    node = root
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return locate(root, path, fallback)
    return getattr(node, "key_locs", {}).get(key) or locate(root, path, fallback)

