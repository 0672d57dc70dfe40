"""The YAML reader keeps positions and refuses dangerous YAML; the writer is deterministic."""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from nimgen import yamldump, yamlio
from nimgen.errors import ConfigError
from nimgen.yamlio import dump, load_located, load_plain


def test_positions_of_keys_and_values() -> None:
    data = load_located("a:\n  b: [1, 2]\n  c: x\n", "f.yaml")
    assert str(data.key_locs["a"]) == "f.yaml:1:1"
    assert str(data["a"].value_locs["c"]) == "f.yaml:3:6"
    assert str(data["a"]["b"].item_locs[1]) == "f.yaml:2:10"


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    with pytest.raises(ConfigError) as caught:
        load_located("a: 1\nb: 2\na: 3\n", "f.yaml")
    [problem] = caught.value.problems
    assert problem.render() == (
        "f.yaml:3:1: $.a: duplicate key 'a' (first defined at line 1)\n"
        "    hint: YAML keeps only the last value of a repeated key; keep one of them"
    )


def test_merge_keys_work_and_explicit_keys_win() -> None:
    data = load_located("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert data["other"] == {"y": 3, "x": 1}


def test_dump_is_deterministic_block_yaml() -> None:
    data = {"b": "1.33", "a": ["x", {"k": "multi\nline\n"}], "on": "yes"}
    text = dump(data)
    assert text == "b: '1.33'\na:\n  - x\n  - k: |\n      multi\n      line\n'on': 'yes'\n"
    assert load_plain(text) == data
    assert dump(data) == text


def test_exponent_floats_read_as_numbers() -> None:
    assert load_located("a: 8e9\nb: 1.5E+3\nc: '8e9'\n", "f.yaml") == {"a": 8e9, "b": 1500.0, "c": "8e9"}


@pytest.mark.parametrize(("key", "kind", "path"), [
    ("yes", "a boolean (true)", "$.env.yes"), ("on", "a boolean (true)", "$.env.on"),
    ("No", "a boolean (false)", "$.env.No"), ("1", "a number (1)", "$.env.1"), ("1.5", "a number (1.5)", "$.env['1.5']"),
    ("null", "null (null)", "$.env.null"), ("~", "null (null)", "$.env['~']"), ("0x10", "a number (16)", "$.env.0x10"),
])
def test_keys_yaml_reads_as_other_types_are_refused_where_they_are(key: str, kind: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_located(f"env:\n  A: x\n  {key}: '1'\n", "f.yaml")
    [problem] = caught.value.problems
    assert str(problem.location) == "f.yaml:3:3"
    assert problem.path == path
    assert f'key "{key}" is read as {kind}, not as a string' in problem.message
    assert f"quote the key: '{key}'" in problem.hint


def test_quoted_keys_stay_strings() -> None:
    assert load_located("env: {'yes': a, '1': b, 'null': c}\n", "f.yaml") == {"env": {"yes": "a", "1": "b", "null": "c"}}


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1e400\n", "number 1e400 is not finite"),
    ("a: .inf\n", "number .inf is not finite"),
    ("a: -.Inf\n", "number -.Inf is not finite"),
    ("a: .nan\n", "number .nan is not finite"),
    ("a: [1, 99999999999999999999]\n", "number 99999999999999999999 is out of range"),
])
def test_non_finite_and_out_of_range_numbers_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_located(text, "f.yaml")
    [problem] = caught.value.problems
    assert message in problem.message
    assert problem.location.line == 1


def test_int64_bounds_are_numbers() -> None:
    assert load_located("a: 9223372036854775807\nb: -9223372036854775807\n", "f.yaml") == {
        "a": 2**63 - 1, "b": -(2**63 - 1)}


def test_long_keys_are_shortened_in_messages() -> None:
    key = "k" * 100_000
    with pytest.raises(ConfigError) as caught:
        load_located(f"? {key}\n: 1\n? {key}\n: 2\n", "f.yaml")
    assert len(str(caught.value)) < 1000
    assert "(100000 characters)" in str(caught.value)


# The fast path of dump: byte-identical to PyYAML's emitter with the same settings, for any data.
_KEYS = st.one_of(st.sampled_from(["apiVersion", "kind", "a b", "a: b", "yes", "on", "-x", "x" * 130, "", "1",
                                   "é", "a:b", "ns/name", "#c", "k" * 122, "k" * 123, "k" * 127]),
                  st.text(max_size=8), st.text(alphabet="ab :-_./#'\"\n", max_size=8))
_STRINGS = st.one_of(
    st.sampled_from(["", " ", "yes", "No", "null", "~", "y", "1.0", "1e3", "0x1F", "2026-12-01", "a: b", "a #b",
                     "- x", "x\n", "\nx", "x\n\n", " lead\nx", "trail \nx", "a\tb", "{{ .Values.x }}", "*a", "&a",
                     "!t", "%x", "@x", "`x", "|", ">", "'", '"', "x" * 1100, ("word " * 300).strip(),
                     "line\n" * 50, "é\nü", "\u2028", "\x85", "a\r\nb", "  \n", "x\n  y\n", "=", "<<"]),
    st.text(max_size=20),
    st.text(alphabet="aZ09 :-_./#'\"\n\t{}[],&*!|>%@`", max_size=30),
)
_LEAVES = st.one_of(_STRINGS, st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.none(),
                    st.floats(allow_nan=True, allow_infinity=True))
_DATA = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=30)


@settings(derandomize=True, deadline=None, max_examples=int(os.environ.get("NIMGEN_DUMP_EXAMPLES", "1500")))
@given(st.one_of(st.dictionaries(_KEYS, _DATA, min_size=1, max_size=5), st.lists(_DATA, min_size=1, max_size=5)))
def test_fast_dump_writes_what_pyyaml_writes(data: Any) -> None:
    assert yamlio.dump(data) == yamldump.pyyaml_dump(data)


def test_fast_dump_takes_the_fast_path_for_kubernetes_objects() -> None:
    """The shapes nimgen builds never fall back: the speed of render rests on it."""
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m", "labels": {"app": "m"}},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [
               {"name": "nim", "image": "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3", "args": ["--port", "8000"],
                "env": [{"name": "NIM_MAX_MODEL_LEN", "value": "8192"}],
                "command": ["python3", "-c", "import time\nprint('drain')\n"]}], "tolerations": [],
               "nodeSelector": {}}}}}
    assert yamldump.fast_dump(doc) == yamldump.pyyaml_dump(doc)


def test_fast_dump_tells_negative_zero_from_zero() -> None:
    """Equal, with one hash, so one cache entry would serve both: -0.0 must stay -0.0 whichever comes first."""
    for data in ([0.0, -0.0], [-0.0, 0.0], {"a": -0.0, "b": 0.0, "c": 0}):
        assert yamldump.fast_dump(data) == yamldump.pyyaml_dump(data)


def test_fast_dump_leaves_what_pyyaml_aliases_to_pyyaml() -> None:
    shared = {"a": 1}
    doc = {"x": shared, "y": shared}
    assert yamldump.fast_dump(doc) is None
    assert yamlio.dump(doc) == yamldump.pyyaml_dump(doc) and "&id001" in yamlio.dump(doc)


def test_dump_all_separates_documents_as_pyyaml_does() -> None:
    documents = [{"a": 1}, [1, "x\n"], {"b": {"c": []}}]
    expected = yaml.dump_all(documents, Dumper=yamldump._Dumper, sort_keys=False, default_flow_style=False,
                             allow_unicode=True, width=4096)
    assert yamlio.dump_all(documents) == expected
    assert yamlio.dump_all([{"a": 1}, "scalar"]) == yaml.dump_all(
        [{"a": 1}, "scalar"], Dumper=yamldump._Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
        width=4096)
