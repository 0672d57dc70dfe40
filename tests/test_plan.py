"""`nimgen plan`: where models land, GPU memory and GPU totals, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import EXAMPLE_ENVIRONMENTS, example_environment
from helpers import VALID, run, write_env
from nimgen.commands.plan import plan
from nimgen.environment.load import load_environment
from nimgen.model import Environment


def test_prod_plan_figures() -> None:
    result = plan(example_environment("prod"))
    small, big = result.models
    assert (small.model, small.pool, small.instance, small.gpu) == ("llama3-8b-instruct", "a10g", "g5.2xlarge", "A10G")
    assert (small.gpus_min, small.gpus_max, small.gpu_memory_available_gib) == (2, 5, 24.0)
    assert small.gpu_memory_needed_gib is not None and small.gpu_memory_needed_gib <= 24
    # The 70B model's surge replica (8 GPUs) counts at full scale: 2 replicas + 1 spare.
    assert (big.instance, big.gpus_per_replica, big.surge, big.gpus_min, big.gpus_max) == ("p5.48xlarge", 8, 1, 8, 24)
    assert small.surge == 0
    assert [(p.pool, p.gpus_min, p.gpus_max, p.gpu_limit) for p in result.pools] == [
        ("a10g", 2, 5, 16), ("h100", 8, 24, 24)]
    assert (result.gpus_min, result.gpus_max) == (10, 29)
    # g5.2xlarge 1.212 $/h and p5.48xlarge 55.04 $/h On-Demand in us-west-2, one node per replica.
    assert (small.on_demand_usd_min, small.on_demand_usd_max) == (2.42, 6.06)
    # The a10g pool buys Spot with a floor (spotPerOnDemand 1, onDemandReplicas 1): ceil(2/2) = 1 and ceil(5/2) = 3
    # replicas at On-Demand, the rest at Spot (0.485 $/h).
    assert (small.spot_usd_min, small.spot_usd_max) == (1.70, 4.61)
    assert (small.on_demand_floor, small.on_demand_min, small.on_demand_max) == (1, 1, 3)
    # Two p5.48xlarge are reserved (already paid): only the third replica at full scale is bought On-Demand.
    assert (big.reserved_min, big.reserved_max, small.reserved_max) == (1, 2, 0)
    assert (big.on_demand_usd_min, big.on_demand_usd_max) == (0.0, 55.04)
    assert (big.spot_usd_min, big.spot_usd_max) == (None, None)  # the h100 pool is On-Demand only
    assert [(p.on_demand_usd_min, p.on_demand_usd_max) for p in result.pools] == [(2.42, 6.06), (0.0, 55.04)]
    assert [(p.reserved_instances, p.reserved_hourly_usd) for p in result.pools] == [(0, 0.0), (2, 0.0)]
    assert (result.on_demand_usd_min, result.on_demand_usd_max) == (2.42, 61.10)


def _load(root: Path, text: str) -> Environment:
    """An example environment, edited, beside a copy of the examples' shared defaults."""
    write_env(root, (EXAMPLE_ENVIRONMENTS / "_defaults.yaml").read_text(), "_defaults.yaml", dedent=False)
    return load_environment(write_env(root, text, dedent=False), root)


def test_unknown_price_leaves_totals_unknown(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # p5en (H200) has no catalog price; the 70B model then runs the release's generic vLLM profile.
    text = (EXAMPLE_ENVIRONMENTS / "prod.yaml").read_text().replace("p5.48xlarge", "p5en.48xlarge").replace(
        "3195a1b385c57c3cae2113f63a37c6ad5aacfd17915922b6a3abf109aa210606",
        "802e0f92cfaee19de7da371e545529b2241dd321fdc95b60b21a3f8d19c220e4")
    result = plan(_load(tmp_path, text))
    big = result.models[1]
    # The reserved replica costs nothing, but the overflow's price is unknown.
    assert big.instance == "p5en.48xlarge" and big.on_demand_usd_min == 0.0 and big.on_demand_usd_max is None
    assert result.pools[1].on_demand_usd_max is None
    assert result.on_demand_usd_max is None  # never a partial sum that reads as the whole


def test_region_without_prices(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (EXAMPLE_ENVIRONMENTS / "dev.yaml").read_text().replace("us-west-2", "eu-west-1")
    result = plan(_load(tmp_path, text))
    assert result.models[0].instance == "g5.2xlarge" and result.models[0].on_demand_usd_min is None


def test_cli_text_table() -> None:
    output = run("plan", EXAMPLE_ENVIRONMENTS / "prod.yaml").output
    assert output.splitlines()[0].split() == ["MODEL", "POOL", "LIKELY", "INSTANCE", "GPUS/REPLICA", "REPLICAS",
                                              "GPU", "MEMORY", "GPUS", "ON-DEMAND", "$/H", "SPOT", "$/H", "(EST.)"]
    assert ("llama3-8b-instruct      a10g  g5.2xlarge (A10G)   1             2-5 (1 on-demand)  20/24 GiB    2-5   "
            "2.42-6.06      1.70-4.61") in output
    assert "p5.48xlarge (H100)  8             1-2 +1 surge       174/640 GiB  8-24  0.00-55.04     -" in output
    assert "a10g  2-5   16 (8 on-demand)  -              2.42-6.06" in output
    assert "h100  8-24  24                2 at 0.00 $/h  0.00-55.04" in output
    assert "environment prod: 10-29 GPUs, 2.42-61.10 $/h On-Demand in us-west-2" in output
    assert "list-price estimates" in output


def test_cli_json() -> None:
    result = run("plan", "-o", "json", EXAMPLE_ENVIRONMENTS / "dev.yaml")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["models"][0]["instance"] == "g5.2xlarge"
    assert data["region"] == "us-west-2"
    # camelCase keys, as in every command's JSON.
    assert data["pools"] == [{"pool": "a10g", "gpusMin": 1, "gpusMax": 1, "gpuLimit": 4,
                              "onDemandUsdMin": 1.21, "onDemandUsdMax": 1.21, "reservedInstances": 0,
                              "reservedHourlyUsd": 0.0, "onDemandGpuLimit": 0}]
    assert data["totals"] == {"gpusMin": 1, "gpusMax": 1, "onDemandUsdMin": 1.21, "onDemandUsdMax": 1.21}
    assert data["models"][0]["gpusPerReplica"] == 1 and "gpus_per_replica" not in data["models"][0]


def test_pools_managed_elsewhere_plan_without_instances(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run("plan", write_env(tmp_path, VALID))
    assert result.exit_code == 0, result.output
    assert "llama3-8b-instruct  a10g  unknown" in result.output


def test_invalid_file_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run("plan", write_env(tmp_path, VALID.replace(":1.0.3", ":latest")))
    assert result.exit_code == 1
    assert "$.models[0].image" in result.output
