"""Manifest validation for tests: Kubernetes' own schemas (kubernetes-validate) and upstream CRD schemas."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from nimgen import helm
from nimgen.yamlio import load_all_plain


@cache
def _crd_validator(path: Path) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(path.read_text(encoding="utf-8")))


def crd_schema_path(obj: dict[str, Any], schema_dir: Path) -> Path:
    """kubeconform layout: {group}/{kind}_{version}.json."""
    group, _, version = obj["apiVersion"].rpartition("/")
    return schema_dir / group / f"{obj['kind'].lower()}_{version}.json"


def crd_errors(obj: dict[str, Any], schema_dir: Path) -> list[str]:
    """Every violation of the upstream CRD schema (strict copies reject unknown fields)."""
    path = crd_schema_path(obj, schema_dir)
    assert path.is_file(), f"no CRD schema for {obj['apiVersion']} {obj['kind']} at {path}"
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in sorted(_crd_validator(path).iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]


def kubernetes_errors(obj: dict[str, Any], kubernetes_version: str) -> list[str]:
    """Violations of Kubernetes' own schema for the version, strict (unknown fields are errors)."""
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(map(str, error.path))}: {error.message}"]
    return []


def application_objects(engine: helm.Engine, root: Path, app: dict[str, Any],
                        kube_version: str = "1.33") -> list[dict[str, Any]]:
    """What Argo CD applies for an Application whose chart is under `root`: its chart rendered with its
    release name, destination namespace and values (NOTES.txt left out)."""
    source = app["spec"]["source"]
    rendered = engine.template(root / source["path"], source["helm"]["valuesObject"],
                               release=source["helm"]["releaseName"], namespace=app["spec"]["destination"]["namespace"],
                               kube_version=kube_version)
    return [d for p, t in sorted(rendered.items()) if not p.endswith("NOTES.txt") for d in load_all_plain(t)]
