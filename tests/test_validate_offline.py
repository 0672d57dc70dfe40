"""`nimgen validate` without network: a schema location that cannot be reached is asked once and said once, up
front, with the fix and every kind it left unchecked; the text, JSON and JUnit reports say the same."""

from __future__ import annotations

import json
import urllib.error
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import run
from nimgen.validation import schemas as schemas_module
from nimgen.validation.report import FORMATS
from nimgen.validation.runner import Options
from nimgen.validation.runner import validate as run_validate
from nimgen.validation.schemas import MissingSchema, SchemaLocation, Schemas, UnreachableSchema

# Port 9 (discard) on 127.0.0.1 has no server here: connecting fails at once, the way it does offline.
UNREACHABLE = "http://127.0.0.1:9/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
FIX = ("hint: offline or air-gapped: give --schema-location DIR or set NIMGEN_SCHEMA_LOCATION=DIR, a folder of "
       "{group}/{kind}_{version}.json files (kubeconform's layout, e.g. a checkout of github.com/datreeio/CRDs-catalog)")


@pytest.fixture(autouse=True)
def empty_schema_cache(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _prod(root: Path) -> Path:
    return root / "environments" / "prod.yaml"


def test_an_unreachable_location_is_said_once_up_front(rendered_repo: Path) -> None:
    result = run("validate", _prod(rendered_repo), "--schema-location", UNREACHABLE)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"error: [schema-location] cannot reach the schema location {UNREACHABLE} (")
    assert "so " in lines[0] and " went unchecked against a CRD schema: AIGatewayRoute, AIServiceBackend " \
                                 "(aigateway.envoyproxy.io/v1beta1); AppProject, Application " \
                                 "(argoproj.io/v1alpha1); " in lines[0]
    assert "NodePool (karpenter.sh/v1)" in lines[0] and "ServiceMonitor (monitoring.coreos.com/v1)" in lines[0]
    assert lines[1] == f"    {FIX}; or pass --ignore-missing-schemas to make this a notice"
    # Said once: no finding per object or per kind, and nothing else failed.
    assert sum("127.0.0.1:9" in line for line in lines) == 1
    assert not [line for line in lines if "[schema]" in line]
    assert lines[-1].endswith(", 1 error, 7 notices"), lines[-1]  # the error, and 7 charts not rendered offline


def test_text_json_and_junit_say_the_same(rendered_repo: Path) -> None:
    report = run_validate([_prod(rendered_repo)], Options((SchemaLocation.parse(UNREACHABLE),)))
    document = json.loads(FORMATS["json"](report))
    [finding] = [f for f in document["findings"] if f["check"] == "schema-location"]
    assert (finding["severity"], finding["environment"], document["summary"]["errors"]) == ("error", "", 1)
    [location] = document["unreachableSchemaLocations"]
    assert location["location"] == UNREACHABLE and location["reason"] in finding["message"]
    unchecked = document["uncheckedKinds"]
    objects = sum(entry["objects"] for entry in unchecked)
    assert f"so {objects} objects of {len(unchecked)} kinds went unchecked" in finding["message"]
    for entry in unchecked:
        assert entry["kind"] in finding["message"] and entry["apiVersion"] in finding["message"]
    assert [(entry["apiVersion"], entry["kind"]) for entry in unchecked][:4] == [
        ("aigateway.envoyproxy.io/v1beta1", "AIGatewayRoute"), ("aigateway.envoyproxy.io/v1beta1", "AIServiceBackend"),
        ("argoproj.io/v1alpha1", "AppProject"), ("argoproj.io/v1alpha1", "Application")]

    text = FORMATS["text"](report)
    assert text.splitlines()[0] == f"error: [schema-location] {finding['message']}"

    suites = ET.fromstring(FORMATS["junit"](report))
    assert suites.get("failures") == "1"
    [run_suite] = [suite for suite in suites.iter("testsuite") if suite.get("name") == "(all environments)"]
    [case] = run_suite.iter("testcase")
    failure = case.find("failure")
    assert case.get("name") == "(run)" and failure is not None and run_suite.get("failures") == "1"
    assert finding["message"] in (failure.text or "") and FIX in (failure.text or "")
    assert suites.get("tests") == str(sum(int(suite.get("tests", "0")) for suite in suites.iter("testsuite")))


def test_ignore_missing_schemas_makes_it_a_notice(rendered_repo: Path) -> None:
    result = run("validate", _prod(rendered_repo), "--schema-location", UNREACHABLE, "--ignore-missing-schemas")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"notice: [schema-location] cannot reach the schema location {UNREACHABLE} (")
    assert lines[1] == f"    {FIX}"


def test_a_location_that_answers_fills_in(rendered_repo: Path, crd_schemas: Path) -> None:
    result = run("validate", _prod(rendered_repo), "--schema-location", UNREACHABLE, "--schema-location",
                 str(crd_schemas))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"notice: [schema-location] cannot reach the schema location {UNREACHABLE} (")
    assert "the other locations held every schema the run needed" in result.output.splitlines()[0]


def _refusing(calls: list[str], error: Exception) -> Any:
    def urlopen(url: str, timeout: float) -> Any:
        calls.append(url)
        raise error
    return urlopen


def _object(api_version: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}


def test_an_unreachable_location_is_asked_once_per_run(monkeypatch: Any) -> None:
    calls: list[str] = []
    monkeypatch.setattr(schemas_module.urllib.request, "urlopen",
                        _refusing(calls, urllib.error.URLError("Name or service not known")))
    unreachable: dict[str, str] = {}
    location = SchemaLocation.parse(UNREACHABLE)
    # Two Kubernetes versions share what the run learned (one Schemas each, as the runner builds them).
    for version in ("1.32", "1.33"):
        schemas = Schemas(version, [location], unreachable)
        for kind in ("NodePool", "NodePool", "EC2NodeClass"):
            with pytest.raises(UnreachableSchema, match=f"no schema for {kind} .*: .* cannot be reached"):
                schemas.errors(_object("karpenter.sh/v1", kind))
    assert len(calls) == 1 and unreachable == {UNREACHABLE: "Name or service not known"}


def test_http_errors_are_unreachable_but_404_is_missing(monkeypatch: Any) -> None:
    calls: list[str] = []
    server_error = urllib.error.HTTPError("http://x", 500, "Internal Server Error", {}, None)  # type: ignore[arg-type]
    monkeypatch.setattr(schemas_module.urllib.request, "urlopen", _refusing(calls, server_error))
    schemas = Schemas("1.33", [SchemaLocation.parse(UNREACHABLE)])
    with pytest.raises(UnreachableSchema):
        schemas.errors(_object("karpenter.sh/v1", "NodePool"))
    assert schemas.unreachable == {UNREACHABLE: "HTTP 500 for http://127.0.0.1:9/karpenter.sh/nodepool_v1.json"}

    not_found = urllib.error.HTTPError("http://x", 404, "Not Found", {}, None)  # type: ignore[arg-type]
    monkeypatch.setattr(schemas_module.urllib.request, "urlopen", _refusing(calls, not_found))
    schemas = Schemas("1.33", [SchemaLocation.parse(UNREACHABLE)])
    with pytest.raises(MissingSchema, match="looked in: http://127.0.0.1:9/karpenter.sh/nodepool_v1.json") as raised:
        schemas.errors(_object("karpenter.sh/v1", "NodePool"))
    assert not isinstance(raised.value, UnreachableSchema) and schemas.unreachable == {}
    calls.clear()
    with pytest.raises(MissingSchema):  # a kind found nowhere is looked for once
        schemas.errors(_object("karpenter.sh/v1", "NodePool"))
    assert calls == []
