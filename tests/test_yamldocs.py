"""validate reads YAML as Argo CD does (JSON-compatible data) through a direct node walk: the same data as PyYAML's
constructor with the same rules, for every input."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import PROJECT
from hypothesis import given, settings
from hypothesis import strategies as st
from nimgen.validation import yamldocs

SAMPLES = [
    "a: 1\nb: [1, 2, {c: yes}]\n", "---\n- &x {a: 1}\n- *x\n- <<: *x\n  b: 2\n", "", "---\n---\na: 2001-12-14\n",
    "a: !!binary aGVsbG8=\n", "1: 2\nyes: no\n~: x\n3.5: y\n", "a: !custom x\n", "a: !!omap [{a: 1}]\n", "&a [*a]\n",
    "a: 0x1F\nb: 1_000\nc: 1:30\nd: .inf\ne: =\nf: -.5\ng: 0o17\nh: 0b101\ni: +12\n", "a: !!set {x, y}\n",
    "a: &m {x: 1}\nb:\n  <<: [*m, {y: 2}]\n  z: 3\n", "? [a]\n: 1\n", "? {a: 1}\n: 2\n", "a: !!str 1\nb: !!int '7'\n",
    "a: |\n  text\n  more\nb: >\n  folded\n", "- !!null ''\n- !!bool 'true'\n", "a: !!python/name:os.system\n",
    "a: [1, 2\n", "a: b: c\n", "%YAML 1.1\n---\na: 1\n", "a: !!float '1e3'\n", "&r {self: *r}\n",
]


def _both(text: str) -> tuple[Any, Any]:
    """(PyYAML's constructor, the direct walk), each a value or the error's type and message."""
    def attempt(load: Any) -> Any:
        try:
            return ("ok", repr(load(text)))
        except yaml.YAMLError as error:
            return ("error", type(error).__name__, str(error))
    return attempt(lambda t: list(yaml.load_all(t, Loader=yamldocs._JSONLoader))), attempt(yamldocs._load_all)


@pytest.mark.parametrize("text", SAMPLES)
def test_the_direct_walk_gives_what_pyyaml_gives(text: str) -> None:
    old, new = _both(text)
    assert new == old


def test_aliases_stay_shared_so_a_bomb_is_measured_not_expanded() -> None:
    bomb = "a: &a [x, x]\n" + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n"
                                       for i in range(20))
    [doc] = yamldocs._load_all(bomb)
    assert doc["b"][0] is doc["b"][1] is doc["a"]
    with pytest.raises(yamldocs.AliasBombError):
        yamldocs.documents(bomb)


def test_every_committed_manifest_reads_the_same() -> None:
    files = sorted((PROJECT / "argocd").rglob("*.yaml")) + sorted((PROJECT / "charts").glob("*/values.yaml"))
    assert len(files) > 20
    for path in files:
        old, new = _both(path.read_text())
        assert new == old, path


_SCALARS = st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                     st.sampled_from(["yes", "on", "0x10", "1:20", "2001-12-14", "=", "<<", "~", ".nan", "-.inf"]))
_DATA = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                     max_leaves=20)


@settings(derandomize=True, deadline=None, max_examples=300)
@given(st.lists(_DATA, min_size=1, max_size=3), st.booleans())
def test_generated_streams_read_the_same(documents: list[Any], share: bool) -> None:
    if share and isinstance(documents[0], (dict, list)):
        documents = [*documents, {"again": documents[0], "twice": documents[0]}]  # anchors and aliases
    text = yaml.dump_all(documents, Dumper=yaml.SafeDumper)
    old, new = _both(text)
    assert new == old
    flow = yaml.dump_all(documents, Dumper=yaml.SafeDumper, default_flow_style=True)
    assert _both(flow)[1] == _both(flow)[0]


def test_the_walk_is_used_for_rendered_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a dead path: the documents validate reads come from it (PyYAML's constructor only for unusual tags)."""
    calls = []
    original = yamldocs._convert

    def counting(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(yamldocs, "_convert", counting)
    assert yamldocs.documents("a: {b: [1]}\n") == [{"a": {"b": [1]}}]
    assert len(calls) == 6  # the document, key a, the inner mapping, key b, the list, 1
