"""CRD schemas an Application renders itself: the schema its own custom objects get when no location has one.

An Application that installs an operator often renders the operator's CustomResourceDefinitions beside the
custom objects it uses (kube-prometheus-stack: the `prometheuses.monitoring.coreos.com` CRD and a Prometheus).
The API server validates those objects against exactly that CRD, so validate does too, when no schema location
holds the kind. Only a CRD of the same Application counts: another Application may install another release of
the operator, whose CRD would not be the one these objects meet.

Each served version's `openAPIV3Schema` is converted as kubeconform's openapi2jsonschema.py writes its strict
schemas (the layout of the schema locations): every object schema that declares `properties` and no
`additionalProperties` gets `additionalProperties: false`, the root included (its DENY_ROOT_ADDITIONAL_PROPERTIES
setting), and `format: int-or-string` becomes `oneOf: [string, integer]`. The walk follows schema keywords only
(`properties`, `items`, `additionalProperties`), so a field that happens to be named `properties` is left alone,
and an object with `x-kubernetes-preserve-unknown-fields: true` stays open: the API server keeps unknown fields
there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from nimgen.validation.manifests import Applied

CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")


def strict_schema(schema: Any) -> Any:
    """A CRD version's openAPIV3Schema as kubeconform's strict JSON Schema (a new object; the input is kept)."""
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    converted = dict(schema)
    if ("properties" in converted and "additionalProperties" not in converted
            and converted.get("x-kubernetes-preserve-unknown-fields") is not True):
        converted["additionalProperties"] = False
    if isinstance(converted.get("properties"), dict):
        converted["properties"] = {name: strict_schema(sub) for name, sub in converted["properties"].items()}
    items = converted.get("items")
    if isinstance(items, list):
        converted["items"] = [strict_schema(sub) for sub in items]
    elif isinstance(items, dict):
        converted["items"] = strict_schema(items)
    if isinstance(converted.get("additionalProperties"), dict):
        converted["additionalProperties"] = strict_schema(converted["additionalProperties"])
    return converted


@dataclass(frozen=True)
class CrdVersion:
    """One version of a rendered CRD: its name, whether it is served, and its openAPIV3Schema."""

    crd: str  # the CRD's metadata.name, e.g. prometheuses.monitoring.coreos.com
    version: str
    served: bool
    schema: dict[str, Any] | None

    @cached_property
    def digest(self) -> str:
        """The schema's content hash: CRDs with the same schema share one compiled validator."""
        return hashlib.sha256(json.dumps(self.schema, sort_keys=True).encode()).hexdigest()


@dataclass
class RenderedCrds:
    """The CRDs one Application renders, by (group, kind): where its custom objects find their schema."""

    application: str
    kinds: dict[tuple[str, str], list[CrdVersion]] = field(default_factory=dict)

    @classmethod
    def of(cls, application: str, objects: Iterable[Applied]) -> RenderedCrds:
        """The apiextensions.k8s.io/v1 CRDs among an Application's rendered objects (the first of a kind wins)."""
        found = cls(application)
        for applied in objects:
            obj = applied.obj
            if (obj.get("apiVersion"), obj.get("kind")) != CRD or not isinstance(obj.get("spec"), dict):
                continue
            spec = obj["spec"]
            names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
            key = (str(spec.get("group") or ""), str(names.get("kind") or ""))
            versions = spec.get("versions") if isinstance(spec.get("versions"), list) else []
            if all(key) and key not in found.kinds:
                found.kinds[key] = [_version(str(obj["metadata"].get("name") or ""), entry) for entry in versions
                                    if isinstance(entry, dict)]
        return found

    def version(self, api_version: str, kind: str) -> CrdVersion | None:
        """The served version of the kind's CRD that objects of `api_version` meet, with its schema; else None."""
        group, _, version = api_version.rpartition("/")
        return next((entry for entry in self.kinds.get((group, kind), [])
                     if entry.version == version and entry.served and entry.schema is not None), None)

    def why_not(self, api_version: str, kind: str) -> str:
        """Why the Application's render gives no schema for the kind, for the "no schema" message."""
        group, _, version = api_version.rpartition("/")
        versions = self.kinds.get((group, kind))
        if not versions:
            return f"Application {self.application} renders no CRD for {kind}"
        name = versions[0].crd
        served = [entry.version for entry in versions if entry.served]
        listed = next((entry for entry in versions if entry.version == version), None)
        if listed is not None and listed.served:
            return f"the CRD {name} that Application {self.application} renders has no schema for {version}"
        return (f"the CRD {name} that Application {self.application} renders does not serve {version} "
                f"(it serves {', '.join(served) or 'no version'})")


def _version(crd: str, entry: dict[str, Any]) -> CrdVersion:
    """One entry of a CRD's spec.versions, read defensively (the CRD's own schema check reports what is amiss)."""
    holder = entry.get("schema")
    schema = holder.get("openAPIV3Schema") if isinstance(holder, dict) else None
    return CrdVersion(crd, str(entry.get("name") or ""), entry.get("served") is True,
                      schema if isinstance(schema, dict) else None)
