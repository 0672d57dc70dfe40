"""Custom objects checked against the CRD their own Application renders, when no schema location has their kind.

Each Application here installs a chart from the chart cache that renders the CRDs and objects its values list,
through the real Helm engine, the worker's checks (checkpool) and the schema locations of the shared strict
schemas (which hold no example.com kind).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT, example_environment
from nimgen import helm
from nimgen.validation import checkpool
from nimgen.validation.checker import Checker, Options
from nimgen.validation.crdschemas import RenderedCrds, strict_schema
from nimgen.validation.findings import Finding
from nimgen.validation.manifests import Applied
from nimgen.validation.schemas import MissingSchema, SchemaLocation, Schemas
from nimgen.validation.sources import UPSTREAM_CHARTS
from nimgen.validation.yamldocs import documents

BUNDLE = """\
{{- range .Values.crds }}
---
{{ toYaml . }}
{{- end }}
{{- range .Values.objects }}
---
{{ toYaml . }}
{{- end }}
"""


def widget_crd(*versions: dict[str, Any], kind: str = "Widget") -> dict[str, Any]:
    """A CRD of example.com; by default one served version, v1, of widget_schema()."""
    plural = f"{kind.lower()}s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": list(versions) or [version("v1")]}}


def version(name: str, served: bool = True, **spec: Any) -> dict[str, Any]:
    """A CRD version whose objects have a spec of `spec` (by default a size and a colour)."""
    properties = spec or {"size": {"type": "integer", "minimum": 1},
                          "color": {"type": "string", "enum": ["red", "blue"]}}
    schema = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": properties}}}
    return {"name": name, "served": served, "storage": served, "schema": {"openAPIV3Schema": schema}}


def widget(name: str = "w", api_version: str = "example.com/v1", kind: str = "Widget", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec}


def application(name: str, crds: list[dict[str, Any]], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """An Application installing the bundle chart with CRDs and objects to render."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": "prod-platform", "destination": {"server": "https://kubernetes.default.svc",
                                                                 "namespace": "widgets"},
                     "source": {"repoURL": "https://charts.example.com", "chart": "bundle", "targetRevision": "1.0.0",
                                "helm": {"releaseName": name, "valuesObject": {"crds": crds, "objects": objects}}}}}


def check(tmp_path: Path, locations: list[Path], engine: helm.Engine, *apps: dict[str, Any]) -> list[Finding]:
    """The schema and CEL findings of the Applications and what they render, as validate's workers give them."""
    chart = tmp_path / "cache" / "bundle-1.0.0"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bundle\nversion: 1.0.0\n")
    (chart / "templates" / "bundle.yaml").write_text(BUNDLE)
    checker = Checker(Options(tuple(SchemaLocation.parse(str(location)) for location in locations)))
    with checkpool.CheckingRenderer(tmp_path, example_environment("prod"), engine, tmp_path / "cache", checker,
                                    len(apps)) as renderer:
        for app in apps:
            renderer.submit(Applied(app, str(app["metadata"]["name"]), "argocd/prod/apps/platform/app.yaml"))
        outcomes = list(renderer.results())
    assert all(not outcome.result.error and not outcome.result.issues for outcome in outcomes)
    return sorted((f for outcome in outcomes for f in outcome.findings), key=lambda f: (f.obj, f.path, f.message))


def said(findings: list[Finding]) -> list[tuple[str, str, str, str, str]]:
    return [(f.application, f.obj, f.check, f.path, f.message) for f in findings]


def test_a_custom_object_meets_the_crd_its_application_renders(tmp_path: Path, crd_schemas: Path,
                                                               helm_engine: helm.Engine) -> None:
    wrong = [widget("loud", size=0, colour="red"), widget("blank", size="3")]
    right = [widget("fine", size=3, color="blue")]
    found = check(tmp_path, [crd_schemas], helm_engine, application("widgets", [widget_crd()], wrong + right))
    assert said(found) == [
        ("widgets", "Widget widgets/blank", "schema", "spec.size", '"3" is not of type "integer"'),
        ("widgets", "Widget widgets/loud", "schema", "spec",
         "Additional properties are not allowed ('colour' was unexpected)"),
        ("widgets", "Widget widgets/loud", "schema", "spec.size", "0 is less than the minimum of 1")]
    # The same findings, word for word, as with the CRD's schema in a schema location.
    location = tmp_path / "location"
    (location / "example.com").mkdir(parents=True)
    converted = strict_schema(widget_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    (location / "example.com" / "widget_v1.json").write_text(json.dumps(converted))
    assert said(check(tmp_path / "again", [crd_schemas, location], helm_engine,
                      application("widgets", [], wrong + right))) == said(found)


def test_a_crd_of_another_application_is_not_used(tmp_path: Path, crd_schemas: Path,
                                                  helm_engine: helm.Engine) -> None:
    # Two releases of the operator, each with its own Widget CRD: size is an integer in one and a string in the
    # other; a third Application renders a Widget and no CRD.
    older = widget_crd(version("v1", size={"type": "string"}))
    found = check(tmp_path, [crd_schemas], helm_engine,
                  application("operator", [widget_crd()], [widget("a", size="3")]),
                  application("operator-old", [older], [widget("b", size="3")]),
                  application("user", [], [widget("c", size=3)]))
    looked_in = crd_schemas / "example.com" / "widget_v1.json"
    assert said(found) == [
        ("operator", "Widget widgets/a", "schema", "spec.size", '"3" is not of type "integer"'),
        ("user", "Widget widgets/c", "schema", "",
         f"no schema for Widget (example.com/v1); looked in: {looked_in}; Application user renders no CRD for Widget")]
    assert found[1].severity == "error"


def test_a_version_the_crd_does_not_serve_has_no_schema(tmp_path: Path, crd_schemas: Path,
                                                       helm_engine: helm.Engine) -> None:
    crd = widget_crd(version("v1"), version("v1beta1", served=False))
    found = check(tmp_path, [crd_schemas], helm_engine, application("widgets", [crd], [
        widget("old", "example.com/v1beta1", size=1), widget("next", "example.com/v2", size=1),
        widget("gadget", kind="Gadget")]))
    place = crd_schemas / "example.com"
    assert [f.message for f in found] == [
        (f"no schema for Gadget (example.com/v1); looked in: {place / 'gadget_v1.json'}; Application widgets renders "
         "no CRD for Gadget"),
        (f"no schema for Widget (example.com/v2); looked in: {place / 'widget_v2.json'}; the CRD widgets.example.com "
         "that Application widgets renders does not serve v2 (it serves v1)"),
        (f"no schema for Widget (example.com/v1beta1); looked in: {place / 'widget_v1beta1.json'}; the CRD "
         "widgets.example.com that Application widgets renders does not serve v1beta1 (it serves v1)")]


def test_a_cel_rule_of_the_rendered_crd_is_enforced(tmp_path: Path, crd_schemas: Path,
                                                     helm_engine: helm.Engine) -> None:
    crd = widget_crd(version("v1", min={"type": "integer"}, max={"type": "integer"}))
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.min <= self.max", "message": "min must not exceed max"}]
    found = check(tmp_path, [crd_schemas], helm_engine,
                  application("widgets", [crd], [widget("inverted", min=5, max=1), widget("ordered", min=1, max=5)]))
    assert said(found) == [("widgets", "Widget widgets/inverted", "cel", "spec", "min must not exceed max")]
    assert found[0].hint == "CRD rule: self.min <= self.max"


def test_worker_processes_use_the_rendered_crds_too(tmp_path: Path, crd_schemas: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpool, "PROCESSES_FROM", 1)
    found = check(tmp_path, [crd_schemas], helm.InProcessEngine(),
                  application("widgets", [widget_crd()], [widget("blank", size="3"), widget("fine", size=3)]),
                  application("user", [], [widget("c", size=3)]))
    assert [(f.application, f.obj, f.path, f.message.split(";")[-1]) for f in found] == [
        ("widgets", "Widget widgets/blank", "spec.size", '"3" is not of type "integer"'),
        ("user", "Widget widgets/c", "", " Application user renders no CRD for Widget")]


def test_a_rendered_schema_that_does_not_compile_is_said(crd_schemas: Path) -> None:
    crd = widget_crd(version("v1", label={"type": "string", "pattern": "(?<"}))
    schemas = Schemas("1.33", [SchemaLocation.parse(str(crd_schemas))])
    crds = RenderedCrds.of("widgets", [Applied(crd, "widgets", "crd.yaml")])
    with pytest.raises(MissingSchema, match=r"^no schema for Widget \(example.com/v1\): the CRD widgets.example.com that "
                                        r"Application widgets renders has a v1 schema that does not compile: "):
        schemas.errors(widget(label="x"), crds)


# ---------------------------------------------------------------- the conversion: kubeconform's strict schemas


def test_conversion_closes_objects_as_kubeconform_strict_does() -> None:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            # A field named `properties`: its own schema is closed, the properties map is left alone.
            "properties": {"type": "object", "properties": {"a": {"type": "string"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"b": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "object",
                                                                  "properties": {"c": {"type": "string"}}}},
            "ports": {"type": "array", "items": {"type": "object", "properties": {"d": {"type": "integer"}}}},
            "port": {"type": "string", "format": "int-or-string"},
            "either": {"anyOf": [{"type": "object", "properties": {"e": {"type": "string"}}}]}}}}}
    original = json.dumps(schema)
    converted = strict_schema(schema)
    assert json.dumps(schema) == original  # the CRD itself is left as rendered
    spec = converted["properties"]["spec"]
    assert converted["additionalProperties"] is False and spec["additionalProperties"] is False
    assert spec["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]["properties"]["properties"]
    assert "additionalProperties" not in spec["properties"]["free"]  # the API server keeps unknown fields there
    assert spec["properties"]["labels"]["additionalProperties"]["additionalProperties"] is False
    assert spec["properties"]["ports"]["items"]["additionalProperties"] is False
    assert spec["properties"]["port"] == {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    assert "additionalProperties" not in spec["properties"]["either"]["anyOf"][0]  # branches stay as written


def _upstream_archives() -> Path | None:
    configured = os.environ.get("NIMGEN_UPSTREAM_CHARTS")
    for candidate in (PROJECT / UPSTREAM_CHARTS, Path(configured) if configured else None,
                      PROJECT.parent / "shared" / "upstream-charts"):
        if candidate is not None and (candidate / "ai-gateway-crds-helm-v1.1.0.tgz").is_file():
            return candidate
    return None


def test_conversion_equals_the_shared_strict_schemas(crd_schemas: Path, helm_engine: helm.Engine) -> None:
    # Envoy AI Gateway v1.1.0: the release whose CRDs the shared strict schemas were converted from (with
    # kubeconform's openapi2jsonschema, DENY_ROOT_ADDITIONAL_PROPERTIES set); its CRD chart renders them.
    archives = _upstream_archives()
    if archives is None:
        if os.environ.get("NIMGEN_REQUIRE_UPSTREAM_CHARTS") == "1":
            pytest.fail("no ai-gateway-crds-helm-v1.1.0.tgz among the upstream chart archives")
        pytest.skip("no ai-gateway-crds-helm-v1.1.0.tgz in charts/upstream/, $NIMGEN_UPSTREAM_CHARTS or "
                    "../shared/upstream-charts/")
    rendered = helm_engine.template(archives / "ai-gateway-crds-helm-v1.1.0.tgz", {}, release="ai-gateway-crds",
                                    namespace="envoy-ai-gateway-system", kube_version="1.33")
    objects = [Applied(doc, "ai-gateway-crds", path) for path, text in rendered.items() for doc in documents(text)
               if doc]
    crds = RenderedCrds.of("ai-gateway-crds", objects)
    schemas = Schemas("1.33", [])  # no location: every kind's schema is the rendered CRD's
    compared = []
    for (group, kind), versions in sorted(crds.kinds.items()):
        for entry in versions:
            shipped = crd_schemas / group / f"{kind.lower()}_{entry.version}.json"
            _, converted = schemas.crd_source(f"{group}/{entry.version}", kind, crds)
            assert json.dumps(converted, indent=2) + "\n" == shipped.read_text(encoding="utf-8"), shipped
            compared.append(shipped.name)
    assert len(compared) == 11  # six kinds, five of them in v1alpha1 and v1beta1
