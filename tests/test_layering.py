"""Layering of _defaults.yaml under environment files, and modelDefaults under models."""

from __future__ import annotations

from pathlib import Path

from helpers import VALID, write_env
from nimgen.environment.layering import merge
from nimgen.environment.load import load_environment
from nimgen.yamlio import load_located


def _load(text: str) -> object:
    return load_located(text, "f.yaml")


def test_maps_deep_merge_and_upper_wins() -> None:
    lower = _load("a: {b: 1, c: {d: 2, e: 3}}\n")
    upper = _load("a: {c: {d: 20}, f: 4}\n")
    assert merge(lower, upper) == {"a": {"b": 1, "c": {"d": 20, "e": 3}, "f": 4}}


def test_null_removes_a_key() -> None:
    assert merge(_load("a: 1\nb: 2\n"), _load("b: null\n")) == {"a": 1}


def test_named_lists_merge_by_name_keeping_order() -> None:
    lower = _load("m: [{name: x, g: 1, k: a}, {name: y, g: 2}]\n")
    upper = _load("m: [{name: z, g: 9}, {name: x, g: 5}]\n")
    assert merge(lower, upper) == {"m": [{"name": "x", "g": 5, "k": "a"}, {"name": "y", "g": 2}, {"name": "z", "g": 9}]}


def test_patch_delete_removes_a_named_item() -> None:
    lower = _load("m: [{name: x}, {name: y}]\n")
    upper = _load("m: [{name: x, $patch: delete}]\n")
    assert merge(lower, upper) == {"m": [{"name": "y"}]}


def test_plain_lists_are_replaced() -> None:
    assert merge(_load("l: [1, 2]\n"), _load("l: [3]\n")) == {"l": [3]}


def test_merged_values_keep_their_source_location() -> None:
    lower = load_located("a:\n  b: 1\n", "lower.yaml")
    upper = load_located("a:\n  c: 2\n", "upper.yaml")
    merged = merge(lower, upper)
    assert str(merged["a"].value_locs["b"]) == "lower.yaml:2:6"
    assert str(merged["a"].value_locs["c"]) == "upper.yaml:2:6"


def test_defaults_file_applies_to_every_environment(tmp_path: Path) -> None:
    write_env(tmp_path, "gitops:\n  targetRevision: release\nmodelDefaults:\n  gpus: 2\n  namespace: serving\n",
              "_defaults.yaml")
    env = load_environment(write_env(tmp_path, VALID), tmp_path)
    assert env.defaults_source == "environments/_defaults.yaml"
    assert env.gitops.target_revision == "release"
    assert env.gitops.repo_url == "https://github.com/example/nim-gitops.git"
    assert (env.models[0].gpus, env.models[0].namespace) == (2, "serving")


def test_model_settings_win_over_model_defaults(tmp_path: Path) -> None:
    text = VALID.replace("models:\n", "modelDefaults:\n  gpus: 2\n  env: {A: '1', B: '2'}\nmodels:\n")
    text += "    gpus: 4\n    env: {B: '3'}\n"
    model = load_environment(write_env(tmp_path, text), tmp_path).models[0]
    assert model.gpus == 4
    assert model.env == (("A", "1"), ("B", "3"))


def test_defaults_can_remove_a_model_from_an_environment(tmp_path: Path) -> None:
    write_env(tmp_path, "models:\n  - name: shared\n    image: nvcr.io/nim/meta/x:1.0.0\n    nodePool: a10g\n",
              "_defaults.yaml")
    text = VALID + "  - name: shared\n    $patch: delete\n"
    env = load_environment(write_env(tmp_path, text), tmp_path)
    assert [m.name for m in env.models] == ["llama3-8b-instruct"]


def test_built_in_model_defaults(tmp_path: Path) -> None:
    model = load_environment(write_env(tmp_path, VALID), tmp_path).models[0]
    assert (model.gpus, model.min_replicas, model.max_replicas, model.namespace) == (1, 1, 1, "nim")
    assert (model.workload, model.cache_type, model.cpu, model.memory, model.shared_memory) == (
        "StatefulSet", "claimTemplate", "4", "24Gi", "2Gi")
    assert not model.autoscaled


def test_resources_scale_with_gpus(tmp_path: Path) -> None:
    model = load_environment(write_env(tmp_path, VALID + "    gpus: 4\n"), tmp_path).models[0]
    assert (model.cpu, model.memory, model.shared_memory) == ("16", "96Gi", "16Gi")


def test_deployment_defaults_to_an_emptydir_cache(tmp_path: Path) -> None:
    model = load_environment(write_env(tmp_path, VALID + "    workload: Deployment\n"), tmp_path).models[0]
    assert model.cache_type == "emptyDir"
