"""Render refuses generated chart values that the chart's own values.schema.json refuses (Helm would, in Argo CD).

The compiled validator decides; jsonschema gives the messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import example_environment
from nimgen.gitops import tree
from nimgen.gitops.tree import RenderError


def _values() -> dict[str, Any]:
    """The values nimgen generates for prod's first model."""
    from nimgen.gitops import applications

    env = example_environment("prod")
    [spec] = [spec for _, specs in applications.enabled_parts(env) for spec in specs
              if spec.chart.name == "nim-llm" and spec.name == env.models[0].name]
    return copy.deepcopy(dict(spec.values))


def test_generated_values_pass_the_charts_schema() -> None:
    tree._check_values("nim-llm", {"m": _values()})


@pytest.mark.parametrize(("path", "value", "message"), [
    (("image", "pullPolicy"), "Sometimes", "image.pullPolicy: 'Sometimes' is not one of"),
    (("image", "tag"), "latest tag with spaces", "image.tag: 'latest tag with spaces' does not match"),
    (("image", "extra"), "x", "image: Additional properties are not allowed ('extra' was unexpected)"),
])
def test_values_the_schema_refuses_are_named(path: tuple[str, ...], value: Any, message: str) -> None:
    values = _values()
    target = values
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RenderError) as refused:
        tree._check_values("nim-llm", {"llama": values, "other": _values()})
    text = str(refused.value)
    assert text.startswith("values for 'llama' do not match charts/nim-llm/values.schema.json: ")
    assert message in text


def test_a_pattern_python_passes_but_ecma_refuses_is_still_refused() -> None:
    """Python's `$` matches before a final newline; ECMA-262 (and Helm's Go validator) do not."""
    values = _values()
    values["image"]["tag"] = "1.0.3\n"
    with pytest.raises(RenderError) as refused:
        tree._check_values("nim-llm", {"llama": values})
    assert "image.tag" in str(refused.value)
