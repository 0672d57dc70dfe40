"""Unit-level behaviour of validate's parts: secret detection, Go regex patterns in CRD schemas, kubeconform paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nimgen.secrets import find_secrets as secret_values
from nimgen.secrets import may_hold_secrets
from nimgen.validation.schemas import SchemaLocation, Schemas

SECRETS: dict[str, tuple[Any, str]] = {
    "ngc key": ({"env": [{"name": "NGC_API_KEY", "value": "nvapi-" + "a1B2" * 16}]}, "an NGC API key"),
    "legacy ngc key": ({"key": "a" * 26 + ":01234567-89ab-cdef-0123-456789abcdef"}, "an NGC API key"),
    "aws access key": ({"data": {"id": "AKIAIOSFODNN7EXAMPLE"}}, "an AWS access key id"),
    "aws secret key": ({"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
                       "a literal value under 'aws_secret_access_key'"),
    "private key": ({"tls": "-----BEGIN RSA PRIVATE KEY-----\nMIIE..."}, "a private key"),
    "registry credential": ({".dockerconfigjson": json.dumps({"auths": {"nvcr.io": {"username": "$oauthtoken",
                                                                                    "password": "s3cr3t"}}})},
                            "a registry credential"),
    "password": ({"grafana": {"adminPassword": "hunter2hunter2"}}, "a literal value under 'adminPassword'"),
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_credentials_are_found(name: str) -> None:
    document, what = SECRETS[name]
    assert may_hold_secrets(document)  # the quick filter never hides one the walk would find
    assert [w for _, w in secret_values(document)] == [what]


@pytest.mark.parametrize("document", [
    {"env": [{"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "ngc-api", "key": "NGC_API_KEY"}}}]},
    {"grafana": {"admin": {"existingSecret": "grafana-admin", "passwordKey": "admin-password"}}},
    {"ngc": {"apiKeySecret": "ngc-api", "token": ""}},
    {"auth": {"password": "${GRAFANA_PASSWORD}"}},
])
def test_references_and_placeholders_are_not_secrets(document: Any) -> None:
    assert list(secret_values(document)) == []


def test_go_case_insensitive_pattern_is_honoured(crd_schemas: Path) -> None:
    # PrometheusRule's partial_response_strategy uses Go's (?i), which JSON Schema regexes lack.
    schemas = Schemas("1.33", [SchemaLocation.parse(str(crd_schemas))])

    def rule(strategy: str) -> dict[str, Any]:
        return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": "r", "namespace": "nim"},
                "spec": {"groups": [{"name": "g", "partial_response_strategy": strategy,
                                     "rules": [{"record": "x", "expr": "up"}]}]}}

    assert schemas.errors(rule("ABORT")) == [] and schemas.errors(rule("warn")) == []
    [(path, message)] = schemas.errors(rule("sometimes"))
    assert path == "spec.groups[0].partial_response_strategy" and "does not match" in message


def test_kubeconform_template_variables() -> None:
    location = SchemaLocation.parse("https://schemas.example.com/{{.NormalizedKubernetesVersion}}{{.StrictSuffix}}/"
                                    "{{ .Group }}/{{.ResourceKind}}{{.KindSuffix}}_{{.ResourceAPIVersion}}.json")
    assert location.resolve("karpenter.sh/v1", "NodePool", "1.33") == \
        "https://schemas.example.com/v1.33.0-strict/karpenter.sh/nodepool-karpenter-v1_v1.json"
    folder = SchemaLocation.parse("https://schemas.example.com/crds/")
    assert folder.resolve("keda.sh/v1alpha1", "ScaledObject", "1.33") == \
        "https://schemas.example.com/crds/keda.sh/scaledobject_v1alpha1.json"


def test_builtin_and_crd_kinds_are_told_apart(crd_schemas: Path) -> None:
    schemas = Schemas("1.33", [SchemaLocation.parse(str(crd_schemas))])
    assert schemas.is_builtin("apps/v1", "StatefulSet") and schemas.is_builtin("networking.k8s.io/v1", "NetworkPolicy")
    assert not schemas.is_builtin("monitoring.coreos.com/v1", "ServiceMonitor")
    assert schemas.version == "1.33"
    # A cluster newer than every schema set gets the newest set kubernetes-validate ships, read from its folder.
    import kubernetes_validate

    shipped = sorted(tuple(int(part) for part in entry.name[1:].split("-")[0].split(".")[:2])
                      for entry in (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema").iterdir()
                      if entry.name.endswith("-local-strict"))
    assert Schemas("9.99", []).version == "{}.{}".format(*shipped[-1])
    # Older than every set: the oldest one. Versions compare as numbers (1.9 < 1.33 < 1.100).
    assert Schemas("1.9", []).version == "{}.{}".format(*shipped[0])
    assert Schemas("1.100", []).version == "{}.{}".format(*shipped[-1])


def test_missing_validate_extra_is_a_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from helpers import run

    monkeypatch.setitem(sys.modules, "jsonschema_rs", None)  # as if nimgen[validate] were not installed
    for name in [m for m in sys.modules if m.startswith("nimgen.validation")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.chdir(tmp_path)
    result = run("validate", "environments/prod.yaml")  # the extra is looked for before any file is read
    assert result.exit_code == 1
    assert result.output == "error: nimgen validate needs jsonschema_rs\n  hint: pip install 'nimgen[validate]'\n"
