"""`nimgen init` writes its options into environment files: values the schema refuses are refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run


@pytest.mark.parametrize(("option", "value"), [
    ("--repo-url", "https://github.com/a/b.git\n  destinationServer: https://evil.example.com"),
    ("--repo-url", "https://github.com/a/b.git\n"),
    ("--repo-url", "https://github.com/*"),
    ("--region", "us-west-2\n"),
    ("--cluster-prefix", "nim\n    discoveryTag: '*'"),
    ("--cluster-prefix", "nim #"),
    ("--kubernetes-version", '1.33"\n  x: "'),
])
def test_init_refuses_options_that_would_inject_yaml(tmp_path: Path, option: str, value: str) -> None:
    url = [] if option == "--repo-url" else ["--repo-url", "https://github.com/example/nim-gitops.git"]
    result = run("init", tmp_path / "repo", *url, option, value)
    assert result.exit_code == 1, result.output
    assert f"{option} " in result.output and "is not usable in an environment file" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "repo" / "environments").exists()
