"""The YAML reader keeps positions and refuses dangerous YAML; the writer is deterministic."""

from __future__ import annotations

import pytest
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
