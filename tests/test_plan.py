"""`nimgen plan`: where models land, GPU memory and GPU totals, as text and JSON."""

from __future__ import annotations

import json

from conftest import EXAMPLE_ENVIRONMENTS, example_environment
from helpers import VALID, run, write_env
from nimgen.plan import plan


def test_prod_plan_figures() -> None:
    result = plan(example_environment("prod"))
    small, big = result.models
    assert (small.model, small.pool, small.instance, small.gpu) == ("llama3-8b-instruct", "a10g", "g5.2xlarge", "A10G")
    assert (small.gpus_min, small.gpus_max, small.gpu_memory_available_gib) == (1, 5, 24.0)
    assert small.gpu_memory_needed_gib is not None and small.gpu_memory_needed_gib <= 24
    assert (big.instance, big.gpus_per_replica, big.gpus_min, big.gpus_max) == ("p5.48xlarge", 8, 8, 16)
    assert [(p.pool, p.gpus_min, p.gpus_max, p.gpu_limit) for p in result.pools] == [
        ("a10g", 1, 5, 16), ("h100", 8, 16, 16)]
    assert (result.gpus_min, result.gpus_max) == (9, 21)


def test_cli_text_table() -> None:
    output = run("plan", EXAMPLE_ENVIRONMENTS / "prod.yaml").output
    assert output.splitlines()[0].split() == ["MODEL", "POOL", "LIKELY", "INSTANCE", "GPUS/REPLICA", "REPLICAS",
                                              "GPU", "MEMORY", "GPUS"]
    assert "llama3-8b-instruct      a10g  g5.2xlarge (A10G)   1             1-5       20/24 GiB    1-5" in output
    assert output.rstrip().endswith("environment prod: 9-21 GPUs")


def test_cli_json() -> None:
    result = run("plan", "--output", "json", EXAMPLE_ENVIRONMENTS / "dev.yaml")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["models"][0]["instance"] == "g5.2xlarge"
    assert data["pools"] == [{"pool": "a10g", "gpus_min": 1, "gpus_max": 1, "gpu_limit": 4}]
    assert data["totals"] == {"gpus_min": 1, "gpus_max": 1}


def test_pools_managed_elsewhere_plan_without_instances(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run("plan", write_env(tmp_path, VALID))
    assert result.exit_code == 0, result.output
    assert "llama3-8b-instruct  a10g  unknown" in result.output


def test_invalid_file_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run("plan", write_env(tmp_path, VALID.replace(":1.0.3", ":latest")))
    assert result.exit_code == 1
    assert "$.models[0].image" in result.output
