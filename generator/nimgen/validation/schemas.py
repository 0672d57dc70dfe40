"""Schemas of everything a cluster accepts: Kubernetes' own (kubernetes-validate) and CRDs (kubeconform locations,
else the CRD the object's own Application renders).

Every schema is read and compiled once per run and kept by (apiVersion, kind), a rendered CRD's by its content;
validating a manifest is then one pass of an already built validator. The validators are jsonschema-rs (compiled
Rust): a hundred-model environment has about a thousand manifests, and pure-Python validation of
Kubernetes' heavily $ref'd schemas would cost more than everything else together.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema_rs

from nimgen.errors import UserError, field_path
from nimgen.validation.crdschemas import CrdVersion, RenderedCrds, strict_schema

# The CRD catalog kubeconform users point at (datreeio/CRDs-catalog), in kubeconform's template syntax.
PUBLIC_CATALOG = ("https://raw.githubusercontent.com/datreeio/CRDs-catalog/main/"
                  "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json")
LOCATION_ENV = "NIMGEN_SCHEMA_LOCATION"
_TEMPLATE_VAR = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_KNOWN_VARS = {"Group", "ResourceKind", "ResourceAPIVersion", "KindSuffix", "NormalizedKubernetesVersion",
               "StrictSuffix"}
FETCH_TIMEOUT_SECONDS = 10
# Base URI the built-in schemas are registered under, so their relative $refs resolve in memory.
_BUILTIN_BASE = "file:///kubernetes-json-schema/"


class MissingSchema(Exception):
    """No location holds a schema for a kind; the message says where nimgen looked."""


class UnreachableSchema(MissingSchema):
    """No location answered with the schema, and a remote one could not be asked: the kind is unchecked, not
    known to be missing."""


class _Unreachable(Exception):
    """A remote location that did not answer (offline, refused, timed out, or an HTTP error other than 404)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cache_dir() -> Path:
    """Where fetched schemas are kept: $XDG_CACHE_HOME/nimgen/schemas (~/.cache/nimgen/schemas)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nimgen" / "schemas"


@dataclass(frozen=True)
class SchemaLocation:
    """A kubeconform schema location: a folder in {group}/{kind}_{version}.json layout, or a path/URL template."""

    template: str

    @classmethod
    def parse(cls, text: str) -> SchemaLocation:
        """A folder, a file/URL template in kubeconform syntax; UserError on anything else."""
        if "{{" not in text:
            if text.startswith(("http://", "https://")):
                text = text.rstrip("/") + "/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
            else:
                folder = Path(text).expanduser()
                if not folder.is_dir():
                    raise UserError(f"schema location {text} is not a folder",
                                    hint="give a folder in {group}/{kind}_{version}.json layout, or a template such as "
                                         "'DIR/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'")
                text = str(folder) + "/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
        unknown = {name for name in _TEMPLATE_VAR.findall(text)} - _KNOWN_VARS
        if unknown:
            raise UserError(f"schema location {text} uses unknown variables: {', '.join(sorted(unknown))}",
                            hint=f"kubeconform's variables are {', '.join(sorted(_KNOWN_VARS))}")
        return cls(text)

    def resolve(self, api_version: str, kind: str, kubernetes_version: str, strict: bool = True) -> str:
        """The path or URL for one kind."""
        group, _, version = api_version.rpartition("/")
        values = {"Group": group, "ResourceKind": kind.lower(), "ResourceAPIVersion": version,
                  "KindSuffix": f"-{group.split('.')[0]}-{version}" if group else f"-{version}",
                  "NormalizedKubernetesVersion": f"v{kubernetes_version}.0" if kubernetes_version.count(".") == 1
                  else f"v{kubernetes_version}",
                  "StrictSuffix": "-strict" if strict else ""}
        return _TEMPLATE_VAR.sub(lambda match: values[match.group(1)], self.template)

    @property
    def remote(self) -> bool:
        return self.template.startswith(("http://", "https://"))


def default_locations() -> list[SchemaLocation]:
    """$NIMGEN_SCHEMA_LOCATION (several separated by commas) if set, else the public CRD catalog."""
    configured = os.environ.get(LOCATION_ENV, "").strip()
    if configured:
        return [SchemaLocation.parse(part.strip()) for part in configured.split(",") if part.strip()]
    return [SchemaLocation.parse(PUBLIC_CATALOG)]


def _fetch(url: str) -> Any | None:
    """A schema by URL, from the cache or fetched once into it; None when the catalog has none."""
    cached = cache_dir() / f"{hashlib.sha256(url.encode()).hexdigest()}.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise _Unreachable(f"HTTP {error.code} for {url}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise _Unreachable(str(getattr(error, "reason", error))) from None
    schema = json.loads(body)
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_suffix(".tmp")
    temporary.write_bytes(body)
    temporary.replace(cached)
    return schema


def _builtin_root() -> Path:
    """kubernetes-validate's schema folder, found without importing it (its import costs start-up time)."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'kubernetes_validate'", name="kubernetes_validate")
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


def _builtin_sets() -> list[str]:
    """Kubernetes versions kubernetes-validate has strict schemas for, oldest first (e.g. "1.33.0")."""
    found = [match[1] for entry in _builtin_root().iterdir()
             if (match := re.fullmatch(r"v([0-9]+\.[0-9]+\.[0-9]+)-local-strict", entry.name))]
    return sorted(found, key=_minor)


def _minor(version: str) -> tuple[int, int]:
    """(1, 33) from "1.33", "v1.33.2" or "1.33.0": compared as numbers, so 1.9 < 1.33."""
    major, minor = re.findall(r"[0-9]+", version)[:2]
    return int(major), int(minor)


class Schemas:
    """Compiled validators for one Kubernetes version: built-in kinds, then CRDs from the locations in order, then
    the CRD the object's own Application renders."""

    def __init__(self, kubernetes_version: str, locations: list[SchemaLocation],
                 unreachable: dict[str, str] | None = None) -> None:
        self.requested_version = kubernetes_version
        sets = _builtin_sets()
        wanted = _minor(kubernetes_version)
        # The newest schema set not newer than the cluster (kubernetes-validate's own rule).
        usable = [s for s in sets if _minor(s) <= wanted] or sets[:1]
        self.version = ".".join(map(str, _minor(usable[-1])))
        self._builtin_dir = _builtin_root() / f"v{usable[-1]}-local-strict"
        self.locations = locations
        # Remote locations that did not answer -> why, shared by a run's Schemas: each is asked once, not per kind.
        self.unreachable = unreachable if unreachable is not None else {}
        self._validators: dict[tuple[str, str], Any] = {}
        self._crd_schemas: dict[tuple[str, str], dict[str, Any]] = {}
        # Rendered CRD versions by content digest: converted and compiled once, whichever Application renders them
        # (a schema the validator cannot compile keeps why instead).
        self._rendered: dict[str, tuple[dict[str, Any], Any]] = {}
        self._uncompilable: dict[str, str] = {}
        self._missing: dict[tuple[str, str], MissingSchema] = {}  # looked for once per kind, found nowhere

    @cached_property
    def _builtin_files(self) -> frozenset[str]:
        return frozenset(path.name for path in self._builtin_dir.iterdir())

    @cached_property
    def _registry(self) -> jsonschema_rs.Registry:
        # The kind schemas refer to "_definitions.json#/definitions/..." relative to their own location.
        definitions = json.loads((self._builtin_dir / "_definitions.json").read_text(encoding="utf-8"))
        return jsonschema_rs.Registry([(f"{_BUILTIN_BASE}_definitions.json", definitions)])

    def _builtin_file(self, api_version: str, kind: str) -> str | None:
        # kubernetes-validate's naming: rbac.authorization.k8s.io/v1 -> rbac-v1; v1 -> v1.
        short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        name = f"{kind.lower()}-{short}.json"
        # A CRD group may share the short form of a built-in one (monitoring.coreos.com vs none): only
        # Kubernetes' own groups end in k8s.io or have no dot.
        group = api_version.rpartition("/")[0]
        builtin_group = "." not in group or group.endswith(".k8s.io")
        return name if builtin_group and name in self._builtin_files else None

    def is_builtin(self, api_version: str, kind: str) -> bool:
        return self._builtin_file(api_version, kind) is not None

    def crd_schema(self, api_version: str, kind: str) -> dict[str, Any]:
        """The CRD schema a location holds for a kind; MissingSchema when no location has it."""
        key = (api_version, kind)
        if key in self._missing:
            raise self._missing[key]
        if key not in self._crd_schemas:
            try:
                self._crd_schemas[key] = self._find_crd(api_version, kind)
            except MissingSchema as missing:
                self._missing[key] = missing
                raise
        return self._crd_schemas[key]

    def _find_crd(self, api_version: str, kind: str) -> dict[str, Any]:
        tried: list[str] = []
        silent: list[str] = []
        for location in self.locations:
            where = location.resolve(api_version, kind, self.version)
            if location.remote:
                if location.template in self.unreachable:
                    silent.append(location.template)
                    continue
                try:
                    schema = _fetch(where)
                except _Unreachable as error:
                    self.unreachable[location.template] = error.reason
                    silent.append(location.template)
                    continue
                if schema is not None:
                    return dict(schema)
            else:
                path = Path(where)
                if path.is_file():
                    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                    return loaded
            tried.append(where)
        if silent:
            raise UnreachableSchema(f"no schema for {kind} ({api_version}): {', '.join(silent)} cannot be reached")
        raise MissingSchema(f"no schema for {kind} ({api_version}); looked in: {', '.join(tried) or 'nowhere'}")

    def crd_source(self, api_version: str, kind: str, crds: RenderedCrds | None = None) -> tuple[str, dict[str, Any]]:
        """(cache key, schema) of a custom kind: the locations' schema, else that of the CRD the Application renders
        (`crds`, converted as the locations' files are); MissingSchema, saying where nimgen looked, without either."""
        if (api_version, kind) not in self._missing:
            try:
                return f"{api_version} {kind}", self.crd_schema(api_version, kind)
            except MissingSchema:
                pass
        # A fresh exception each time: raising the kept one again would grow its traceback with every object.
        missing = self._missing[(api_version, kind)]
        version = crds.version(api_version, kind) if crds is not None else None
        if crds is None or version is None:
            why = f"; {crds.why_not(api_version, kind)}" if crds is not None else ""
            raise type(missing)(f"{missing}{why}")
        self._compile(version)
        if version.digest in self._uncompilable:
            raise MissingSchema(f"no schema for {kind} ({api_version}): the CRD {version.crd} that Application "
                                f"{crds.application} renders has a {version.version} schema that does not "
                                f"compile: {self._uncompilable[version.digest]}")
        return version.digest, self._rendered[version.digest][0]

    def _compile(self, version: CrdVersion) -> None:
        """A rendered CRD version's converted schema and its validator, built once per content."""
        if version.digest in self._rendered or version.digest in self._uncompilable:
            return
        schema = strict_schema(version.schema)
        try:
            self._rendered[version.digest] = (schema, _crd_validator(schema))
        except ValueError as error:  # jsonschema_rs.ValidationError: a keyword or pattern it cannot take
            self._uncompilable[version.digest] = _short(str(error).splitlines()[0])

    def validator(self, api_version: str, kind: str, crds: RenderedCrds | None = None) -> Any:
        """The compiled validator for a kind (built once); MissingSchema when there is none."""
        key = (api_version, kind)
        found = self._validators.get(key)
        if found is None:
            builtin = self._builtin_file(api_version, kind)
            if builtin:
                schema = json.loads((self._builtin_dir / builtin).read_text(encoding="utf-8"))
                found = jsonschema_rs.Draft202012Validator(schema, registry=self._registry, validate_formats=False,
                                                           base_uri=f"{_BUILTIN_BASE}{builtin}")
            else:
                source, schema = self.crd_source(api_version, kind, crds)
                if source in self._rendered:  # the Application's own CRD: kept by content, not by kind
                    return self._rendered[source][1]
                found = _crd_validator(schema)
            self._validators[key] = found
        return found

    def errors(self, obj: dict[str, Any], crds: RenderedCrds | None = None) -> list[tuple[str, str]]:
        """(field path, message) of every schema violation, sorted by path; `crds` are those the object's
        Application renders, for kinds no location has."""
        validator = self.validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), crds)
        return sorted((field_path(error.instance_path), _short(error.message)) for error in validator.iter_errors(obj))


def _crd_validator(schema: dict[str, Any]) -> Any:
    # CRD schemas are OpenAPI v3 subsets; Draft 7 reads them as the API server means them.
    # Formats (int32, int-or-string, ...) are OpenAPI's, not JSON Schema's: not checked.
    return jsonschema_rs.Draft7Validator(_ecma_patterns(schema), validate_formats=False)


def _case_folded(pattern: str) -> str:
    """Go's inline `(?i)` (which JSON Schema's ECMA-262 regexes lack) as explicit [aA] classes."""
    out, in_class, escaped = [], False, False
    for char in pattern.replace("(?i)", ""):
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char in "[]":
            in_class = char == "["
            out.append(char)
        elif char.isascii() and char.isalpha() and not in_class:
            out.append(f"[{char.lower()}{char.upper()}]")
        else:
            out.append(char)
    return "".join(out)


def _ecma_patterns(schema: Any) -> Any:
    """The schema with Go-only `(?i)` patterns rewritten (e.g. PrometheusRule's partial_response_strategy)."""
    if isinstance(schema, dict):
        return {key: _case_folded(value) if key == "pattern" and isinstance(value, str) and "(?i)" in value
                else _ecma_patterns(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_ecma_patterns(item) for item in schema]
    return schema


def _short(message: str, limit: int = 300) -> str:
    """jsonschema quotes whole sub-documents; keep messages readable."""
    return message if len(message) <= limit else message[: limit - 3] + "..."
