"""Whole rendered trees of the example environments, reviewed as snapshots (pytest --snapshot-update)."""

from __future__ import annotations

import pytest
from conftest import EXAMPLE_NAMES, example_environment
from nimgen.gitops.tree import render_environment
from syrupy.assertion import SnapshotAssertion


@pytest.mark.parametrize("env_name", EXAMPLE_NAMES)
def test_rendered_tree(env_name: str, snapshot: SnapshotAssertion) -> None:
    tree = render_environment(example_environment(env_name))
    assert {path.as_posix(): text for path, text in tree.items()} == snapshot


def test_error_report(snapshot: SnapshotAssertion, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from helpers import VALID, run, write_env

    text = VALID.replace("region: us-west-2", "regoin: us-west-2").replace(":1.0.3", ":latest") + "    gpus: 0\n"
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1
    assert result.output == snapshot
