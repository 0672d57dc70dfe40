"""The in-process engine checks a chart's values schema once compiled, and has Helm render the chart without it.

What must hold: Helm's verdict on the values is unchanged (the same values pass and fail, checked against the
real Helm engine), what renders is byte-identical, a failure carries Helm's own message, and a chart whose
schema nimgen cannot check exactly as Helm does is left entirely to Helm.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from nimgen import helm

PROJECT = Path(__file__).resolve().parents[1]
CHARTS = PROJECT / "generator" / "nimgen" / "charts"
NIM_LLM = CHARTS / "nim-llm"
SCHEMA_FAILURE = "values don't meet the specifications of the schema"
ENGINE = helm.InProcessEngine()
FULL = helm_python.Chart.load(str(NIM_LLM))  # the chart as it is, schema included: Helm's own verdict
OPTIONS = {"release": "llm", "namespace": "nim", "kube_version": "1.33"}
CI_VALUES = {path.name: yaml.safe_load(path.read_text()) for path in sorted((NIM_LLM / "ci").glob("*-values.yaml"))}


def _helm_full(values: dict[str, Any]) -> dict[str, str]:
    """`helm template` of the chart with its schema, by Helm alone."""
    options = {"name": "llm", "namespace": "nim", "kube_version": "v1.33.0", "api_versions": []}
    return json.loads(helm_python._native.call_string("helm_render", FULL._raw(), json.dumps(values),
                                                      json.dumps(options)))


def _helm_rejects(values: dict[str, Any]) -> bool:
    try:
        _helm_full(values)
    except helm_python.HelmError as error:
        return SCHEMA_FAILURE in str(error)
    return False


@pytest.mark.parametrize("chart", sorted(p.name for p in CHARTS.iterdir() if (p / "values.schema.json").is_file()))
def test_every_shipped_chart_is_checked_once_compiled(chart: str) -> None:
    loaded = ENGINE._chart(CHARTS / chart)
    assert loaded.validator is not None and loaded.templates_only is not None
    assert loaded.templates_only.schema is None and loaded.full.schema is not None


@pytest.mark.parametrize("name", sorted(CI_VALUES))
def test_what_renders_is_what_helm_renders_with_the_schema(name: str) -> None:
    values = CI_VALUES[name]
    assert ENGINE.template(NIM_LLM, values, **OPTIONS) == _helm_full(values)


def test_values_the_schema_rejects_fail_with_helms_own_message() -> None:
    values = {**CI_VALUES["digest-values.yaml"], "replicaCount": "two"}
    with pytest.raises(helm.HelmError) as caught:
        ENGINE.template(NIM_LLM, values, **OPTIONS)
    assert SCHEMA_FAILURE in str(caught.value) and "replicaCount" in str(caught.value)
    with pytest.raises(helm_python.HelmError) as by_helm:
        _helm_full(values)
    assert str(caught.value) == str(by_helm.value)


def test_the_schema_is_checked_against_the_values_helm_coalesces() -> None:
    validator = ENGINE._chart(NIM_LLM).validator
    # No values at all: the chart's defaults fill every required key, so Helm's schema check passes...
    assert not validator.is_valid({}) and not _helm_rejects({})
    with pytest.raises(helm.HelmError) as caught:
        ENGINE.template(NIM_LLM, {}, **OPTIONS)
    assert SCHEMA_FAILURE not in str(caught.value)  # (the template then insists on a pinned image)
    # ...and a null removes a default (Helm's coalescing), so a required key goes missing.
    assert _helm_rejects({**CI_VALUES["digest-values.yaml"], "replicaCount": None})
    with pytest.raises(helm.HelmError, match=SCHEMA_FAILURE):
        ENGINE.template(NIM_LLM, {**CI_VALUES["digest-values.yaml"], "replicaCount": None}, **OPTIONS)


# Values in JSON, as Helm receives them.
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.floats(-2, 2, allow_nan=False),
                     st.sampled_from(["", "x", "0", "Always", "IfNotPresent", "gpu-l4", "10Gi", "sha256:ab",
                                      "Deployment", "StatefulSet", "emptyDir", "claimTemplate", "-1"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(st.sampled_from(["a", "enabled", "size"]),
                                                                          inner, max_size=2)), max_leaves=4)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _put(values: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    target: Any = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return changed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_check_agrees_with_helm_on_any_change(data: st.DataObject) -> None:
    # A valid set of values with one place (a default's path or a new key) set to anything JSON holds.
    base = data.draw(st.sampled_from(sorted(CI_VALUES)))
    merged = FULL.merge_values(CI_VALUES[base])
    path = data.draw(st.sampled_from([p for p in _paths(merged) if p]))
    if data.draw(st.booleans()) and isinstance(merged_at(merged, path[:-1]), dict):
        path = (*path[:-1], data.draw(st.sampled_from(["extra", "enabled", "size"])))
    values = _put(merged, path, data.draw(_VALUES))
    compiled_rejects = not ENGINE._chart(NIM_LLM).validator.is_valid(FULL.merge_values(values))
    event("the schema rejects" if compiled_rejects else "the schema admits")
    assert compiled_rejects == _helm_rejects(values), (path, values)
    if not compiled_rejects:
        try:
            expected = _helm_full(values)
        except helm_python.HelmError as error:  # a template that fails on the value: the same failure
            with pytest.raises(helm.HelmError) as caught:
                ENGINE.template(NIM_LLM, values, **OPTIONS)
            assert str(error).split(": ", 1)[-1] in str(caught.value)
        else:
            assert ENGINE.template(NIM_LLM, values, **OPTIONS) == expected


def merged_at(values: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        values = values[part]
    return values


def _chart_copy(tmp_path: Path) -> Path:
    chart = Path(shutil.copytree(NIM_LLM, tmp_path / "nim-llm"))
    return chart


def test_a_schema_without_a_declared_draft_is_left_to_helm(tmp_path: Path) -> None:
    chart = _chart_copy(tmp_path)
    schema = json.loads((chart / "values.schema.json").read_text())
    del schema["$schema"]
    (chart / "values.schema.json").write_text(json.dumps(schema))
    engine = helm.InProcessEngine()
    assert engine._chart(chart).validator is None
    with pytest.raises(helm.HelmError, match=SCHEMA_FAILURE):
        engine.template(chart, {**CI_VALUES["digest-values.yaml"], "replicaCount": "two"}, **OPTIONS)


def test_a_chart_with_subcharts_is_left_to_helm(tmp_path: Path) -> None:
    chart = _chart_copy(tmp_path)
    sub = chart / "charts" / "helper"
    sub.mkdir(parents=True)
    (sub / "Chart.yaml").write_text("apiVersion: v2\nname: helper\nversion: 0.1.0\n")
    (sub / "values.schema.json").write_text(json.dumps({"type": "object", "required": ["needed"]}))
    engine = helm.InProcessEngine()
    assert engine._chart(chart).validator is None
    # The subchart's own schema is Helm's to check: nimgen's compiled check of the parent would miss it.
    with pytest.raises(helm.HelmError, match="needed"):
        engine.template(chart, CI_VALUES["digest-values.yaml"], **OPTIONS)


def test_a_schema_the_compiled_validator_cannot_take_is_left_to_helm(tmp_path: Path) -> None:
    chart = _chart_copy(tmp_path)
    schema = json.loads((chart / "values.schema.json").read_text())
    schema["properties"]["replicaCount"] = {"type": "integer", "minimum": "zero"}  # not a schema at all
    (chart / "values.schema.json").write_text(json.dumps(schema))
    engine = helm.InProcessEngine()
    assert engine._chart(chart).validator is None
    with pytest.raises(helm.HelmError):
        engine.template(chart, CI_VALUES["digest-values.yaml"], **OPTIONS)
