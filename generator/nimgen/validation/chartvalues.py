"""Value paths an Application sets for a chart from a Helm repository, against what that chart documents.

Helm ignores a value no template reads: a misspelled path (`grafana.admin.existingSecrets`) renders without
a word and the setting is lost. For every Application whose chart is in the chart cache, each path it sets
(`valuesObject` or `values`, and each of its `parameters`) must exist in the chart's values.yaml, or be admitted
by its values.schema.json when it has one. Under the key of a dependency (its alias, else its name) the
subchart's own values.yaml and schema count too, as Helm coalesces them, and the subcharts' `global` values
under `global`.

How a path is decided, one key at a time from the top:
- a key the chart's values.yaml holds exists. When the Application sets a map there, the check goes on into
  it only while values.yaml holds a non-empty map too: a key documented as `{}`, a list, null or a scalar is
  free-form (`affinity: {}`, `podAnnotations: {}`, `tolerations: []`), so whatever the map holds counts as
  existing at that level;
- a key the schema names (`properties`, a matching `patternProperties`) or admits explicitly
  (`additionalProperties: true` or a schema) is admitted; an object schema that describes no property at all is
  free-form. A schema that lists properties and says nothing of others documents only those: JSON Schema would
  admit a misspelling there, and catching one is what this check is for;
- anything else is an error.
"""

from __future__ import annotations

import difflib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from nimgen.components import registry
from nimgen.model import Environment
from nimgen.validation.findings import Finding, object_ref
from nimgen.validation.manifests import Applied, is_application
from nimgen.validation.sources import cached_chart
from nimgen.validation.yamldocs import documents

CHECK = "chart-values"
_MISSING: Any = object()  # neither values.yaml nor the schema has the key
_FREE: Any = object()  # the schema admits anything below
_KEPT = ("Chart.yaml", "values.yaml", "values.schema.json")


@dataclass(frozen=True)
class ChartValues:
    """What one chart documents: its values.yaml, its schema, and its dependencies under their keys."""

    name: str
    values: dict[str, Any]
    schema: dict[str, Any] | None = None
    subcharts: dict[str, ChartValues] = field(default_factory=dict)  # alias (else name) -> subchart


def _yaml_map(data: bytes | None) -> dict[str, Any]:
    docs = documents(data.decode("utf-8")) if data else []
    return docs[0] if docs and isinstance(docs[0], dict) else {}


def _archive_files(data: bytes) -> dict[str, bytes]:
    """The files of a chart archive that say what it documents, relative to the chart's own folder."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive:
            _, _, relative = member.name.lstrip("./").partition("/")  # archives hold one folder: <chart>/...
            if member.isfile() and _wanted(relative):
                extracted = archive.extractfile(member)
                if extracted is not None:
                    files[relative] = extracted.read()
    return files


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and _wanted(path.relative_to(folder).as_posix())}


def _wanted(relative: str) -> bool:
    """Chart.yaml, values and schema of the chart and of every chart under charts/, and packaged subcharts."""
    parts = relative.split("/")
    while len(parts) > 2 and parts[0] == "charts":
        parts = parts[2:]  # charts/<sub>/...: the same files one level down
    if len(parts) == 2 and parts[0] == "charts":
        return parts[1].endswith(".tgz")
    return len(parts) == 1 and parts[0] in _KEPT


def _chart(files: dict[str, bytes]) -> ChartValues:
    metadata = _yaml_map(files.get("Chart.yaml"))
    schema_text = files.get("values.schema.json")
    schema = json.loads(schema_text) if schema_text else None
    subs: list[ChartValues] = []
    folders = sorted({name.split("/")[1] for name in files if name.startswith("charts/") and name.count("/") >= 2})
    for folder in folders:
        prefix = f"charts/{folder}/"
        subs.append(_chart({name[len(prefix):]: data for name, data in files.items() if name.startswith(prefix)}))
    for name, data in sorted(files.items()):
        if name.startswith("charts/") and name.count("/") == 1 and name.endswith(".tgz"):
            subs.append(_chart(_archive_files(data)))
    # Helm puts a dependency's values under its alias; a chart in charts/ that Chart.yaml does not list, under
    # its name.
    subcharts: dict[str, ChartValues] = {}
    dependencies = [d for d in metadata.get("dependencies") or [] if isinstance(d, dict)]
    for sub in subs:
        keys = [str(d.get("alias") or d.get("name")) for d in dependencies if d.get("name") == sub.name]
        for key in keys or [sub.name]:
            subcharts[key] = sub
    return ChartValues(str(metadata.get("name", "")), _yaml_map(files.get("values.yaml")),
                       schema if isinstance(schema, dict) else None, subcharts)


@lru_cache(maxsize=32)
def _load(path: Path, stamp: tuple[int, int]) -> ChartValues:
    del stamp  # part of the cache key only: a replaced archive is read again
    return _chart(_archive_files(path.read_bytes()) if path.is_file() else _folder_files(path))


def load(path: Path) -> ChartValues:
    """The values a chart documents, from a `helm pull` archive or an unpacked chart folder."""
    status = path.stat()
    return _load(path.resolve(), (status.st_mtime_ns, status.st_size))


def documented(chart: ChartValues) -> dict[str, Any]:
    """values.yaml with each subchart's documented values merged under its key (the union of their keys), and
    the subcharts' `global` values under `global` (Helm hands the parent's globals to every subchart)."""
    merged = dict(chart.values)
    for key, sub in chart.subcharts.items():
        own = documented(sub)
        merged[key] = _union(own, merged.get(key))
        if isinstance(own.get("global"), dict):
            merged["global"] = _union(own["global"], merged.get("global"))
    return merged


def _union(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _union(out.get(key), value) if key in out else value
        return out
    if override is None or (isinstance(override, dict) and not override):
        return base  # the parent leaves it to the subchart
    return override


# --- JSON Schema: what a values.schema.json node says of one key ---------------------------------------------

def _resolve(node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """A schema node with its local `$ref` followed (remote references are not followed: free-form)."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 32:
        ref = node["$ref"]
        if not ref.startswith("#"):
            return _FREE
        target: Any = root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        node, depth = target, depth + 1
    return node


def _branches(node: Any, root: dict[str, Any]) -> list[Any]:
    """The node and every `allOf`/`anyOf`/`oneOf` branch of it, references followed."""
    node = _resolve(node, root)
    if not isinstance(node, dict):
        return [node]
    found = [node]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(keyword) or []:
            found += _branches(branch, root)
    return found


def _schema_child(node: Any, key: str, root: dict[str, Any]) -> Any:
    """What the schema says of `key` under `node`: its schema, _FREE (anything goes) or _MISSING."""
    if node is _MISSING or node is _FREE:
        return node
    branches = [b for b in _branches(node, root) if b is not None]
    if any(b is True or b is _FREE for b in branches):
        return _FREE
    maps = [b for b in branches if isinstance(b, dict)]
    if not maps:
        return _MISSING  # a `false` schema admits nothing
    for branch in maps:
        if key in (branch.get("properties") or {}):
            return _resolve(branch["properties"][key], root)
        for pattern, sub in (branch.get("patternProperties") or {}).items():
            if re.search(pattern, key):
                return _resolve(sub, root)
    for branch in maps:
        extra = branch.get("additionalProperties")
        if extra is True:
            return _FREE
        if isinstance(extra, dict):
            return _resolve(extra, root)
    described = any("properties" in b or "patternProperties" in b or b.get("additionalProperties") is False
                    for b in maps)
    typed = {t for b in maps for t in ([b["type"]] if isinstance(b.get("type"), str) else b.get("type") or [])}
    if not described and (not typed or "object" in typed):
        return _FREE  # an object schema that describes none of its properties: free-form
    return _MISSING


# --- the walk ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unknown:
    """A value path the chart does not document, and the keys it does have at that level."""

    path: tuple[str, ...]
    siblings: tuple[str, ...]


def _free(doc: Any) -> bool:
    """A documented value under which anything counts as existing: `{}`, a list, null or a scalar."""
    return doc is not _MISSING and not (isinstance(doc, dict) and doc)


def unknown_paths(values: dict[str, Any], chart: ChartValues) -> list[Unknown]:
    """Every path of `values` that the chart neither holds in its values.yaml nor admits by its schema."""
    schema: Any = chart.schema if chart.schema is not None else _MISSING
    return list(_walk(values, documented(chart), schema, chart.schema or {}, chart.subcharts, ()))


def _walk(values: dict[str, Any], doc: Any, schema: Any, root: dict[str, Any], subcharts: dict[str, ChartValues],
          path: tuple[str, ...]) -> Iterator[Unknown]:
    for key, value in values.items():
        here = (*path, key)
        doc_child = doc[key] if isinstance(doc, dict) and key in doc else _MISSING
        schema_child, child_root = _schema_child(schema, key, root), root
        sub = subcharts.get(key)
        if sub is not None and sub.schema is not None and schema_child is _MISSING:
            # A subchart's values.schema.json validates the values under its key.
            schema_child, child_root = sub.schema, sub.schema
        if doc_child is _MISSING and schema_child is _MISSING:
            yield Unknown(here, tuple(sorted(doc)) if isinstance(doc, dict) else ())
            continue
        if not isinstance(value, dict) or not value or _free(doc_child) or schema_child is _FREE:
            continue
        yield from _walk(value, doc_child, schema_child, child_root, sub.subcharts if sub else {}, here)


# --- findings ------------------------------------------------------------------------------------------------

def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(f"[{part!r}]" if "." in part or not part else part for part in path).replace(".[", "[")


def _sources(helm: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, values) for each place an Application sets values: the inline values, then each parameter."""
    inline = helm.get("valuesObject")
    where = "spec.source.helm.valuesObject"
    if inline is None and helm.get("values"):
        where = "spec.source.helm.values"
        try:
            inline = documents(helm["values"])[0] if isinstance(helm["values"], str) else helm["values"]
        except (yaml.YAMLError, IndexError):
            inline = None  # the render reports values that are not YAML
    if isinstance(inline, dict):
        yield where, inline
    for index, parameter in enumerate(helm.get("parameters") or []):
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str) and parameter["name"]:
            nested: dict[str, Any] = {}
            node = nested
            *parents, last = parameter["name"].split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = parameter.get("value", "")
            yield f"spec.source.helm.parameters[{index}]", nested


def check(env: Environment, manifests: list[Applied], chart_cache: Path | None) -> list[Finding]:
    """A finding for each value path an Application sets that its cached chart does not document."""
    found: list[Finding] = []
    for applied in manifests:
        if not is_application(applied):
            continue
        source = applied.obj["spec"].get("source") or {}
        helm = source.get("helm")
        if not source.get("chart") or not isinstance(helm, dict) or applied.obj["spec"].get("sources"):
            continue
        chart_name, version = str(source["chart"]), str(source.get("targetRevision", ""))
        path = cached_chart(chart_cache, chart_name, version)
        if path is None:
            continue  # the render reports the chart as not rendered offline
        place: dict[str, Any] = {"environment": env.name, "application": applied.application,
                                 "obj": object_ref(applied.obj)}
        try:
            chart = load(path)
        except (OSError, tarfile.TarError, yaml.YAMLError, ValueError, UnicodeDecodeError) as error:
            found.append(Finding("error", CHECK, f"cannot read the values of {path.name}: {error}", path="spec.source",
                                 hint="replace it with the `helm pull` archive of the chart", **place))
            continue
        passed_on = [tuple(path.split(".")) for component in registry.COMPONENTS
                     for path in component.open_values.get(chart_name, ())]
        for where, values in _sources(helm):
            for unknown in unknown_paths(values, chart):
                if any(unknown.path[:len(prefix)] == prefix for prefix in passed_on):
                    continue
                close = difflib.get_close_matches(unknown.path[-1], unknown.siblings, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                found.append(Finding(
                    "error", CHECK, f"chart {chart_name} {version} has no value {_dotted(unknown.path)}: Helm ignores "
                    "it and renders as if it were not set", path=f"{where}.{_dotted(unknown.path)}",
                    hint=f"{hint}set a value the chart's values.yaml documents ({path.name})", **place))
    return found
