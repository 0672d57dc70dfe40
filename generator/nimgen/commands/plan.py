"""Capacity plan of an environment: where each model lands, GPUs and GPU memory at min and max replicas."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from nimgen import capacity
from nimgen.model import Environment, Model, parse_quantity

# What a node keeps for the kubelet, system daemons and eviction threshold (rough, for "likely").
RESERVED_VCPU = 1
RESERVED_MEMORY_SHARE = 0.1


@dataclass(frozen=True)
class ModelPlan:
    """One model's line of the plan."""

    model: str
    pool: str
    instance: str  # the smallest catalog instance that takes one replica, or "" when unknown
    gpu: str
    gpus_per_replica: int
    replicas_min: int
    replicas_max: int
    gpu_memory_needed_gib: float | None  # None when the model's size is unknown
    gpu_memory_available_gib: float | None
    gpus_min: int
    gpus_max: int
    # List-price estimates in $/hour at min and max replicas (one node per replica); None when unknown,
    # spot None also when the pool does not buy Spot.
    on_demand_usd_min: float | None
    on_demand_usd_max: float | None
    spot_usd_min: float | None
    spot_usd_max: float | None


@dataclass(frozen=True)
class PoolPlan:
    """One pool's totals."""

    pool: str
    gpus_min: int
    gpus_max: int
    gpu_limit: int | None
    on_demand_usd_min: float | None
    on_demand_usd_max: float | None


@dataclass(frozen=True)
class Plan:
    """The environment's plan."""

    environment: str
    region: str
    models: tuple[ModelPlan, ...]
    pools: tuple[PoolPlan, ...]

    @property
    def on_demand_usd_min(self) -> float | None:
        """On-Demand $/hour at min replicas, all models (None when a price is unknown)."""
        return _total([m.on_demand_usd_min for m in self.models])

    @property
    def on_demand_usd_max(self) -> float | None:
        """On-Demand $/hour at max replicas, all models (None when a price is unknown)."""
        return _total([m.on_demand_usd_max for m in self.models])

    @property
    def gpus_min(self) -> int:
        """GPUs at min replicas, all models."""
        return sum(m.gpus_min for m in self.models)

    @property
    def gpus_max(self) -> int:
        """GPUs at max replicas, all models."""
        return sum(m.gpus_max for m in self.models)


def _total(prices: list[float | None]) -> float | None:
    """Sum of prices, None when any is unknown (a partial sum would read as the whole)."""
    return None if any(price is None for price in prices) else round(sum(p for p in prices if p is not None), 2)


def _times(price: float | None, count: int) -> float | None:
    return None if price is None else round(price * count, 2)


def _likely_instance(model: Model, candidates: list[capacity.Instance]) -> capacity.Instance | None:
    """Smallest instance whose GPUs, CPUs and memory take one replica (Karpenter picks the cheapest fit)."""
    cpu = float(parse_quantity(model.cpu))
    memory_gib = float(parse_quantity(model.memory)) / capacity.GIB
    fitting = [
        i for i in candidates
        if i.gpus >= model.gpus and cpu <= i.vcpu - RESERVED_VCPU and memory_gib <= i.memory_gib * (1 - RESERVED_MEMORY_SHARE)
    ]
    return min(fitting, key=lambda i: (i.gpus, i.vcpu, i.memory_gib, i.name), default=None)


def plan(env: Environment) -> Plan:
    """Compute the plan (pure)."""
    pools = {pool.name: pool for pool in env.node_pools}
    rows = []
    for model in env.models:
        pool = pools.get(model.node_pool)
        candidates = capacity.pool_instances(
            list(pool.instance_families), list(pool.instance_types), pool.min_gpu_memory_mib) if pool else []
        instance = _likely_instance(model, candidates)
        spec = capacity.model_spec(model.image.repository)
        parameters = model.parameters or (spec.parameters if spec else None)
        on_demand = instance.hourly(env.region) if instance else None
        spot = instance.spot_hourly(env.region) if instance and pool and "spot" in pool.capacity_types else None
        rows.append(ModelPlan(
            model=model.name,
            pool=model.node_pool,
            instance=instance.name if instance else "",
            gpu=instance.gpu.name if instance else "",
            gpus_per_replica=model.gpus,
            replicas_min=model.min_replicas,
            replicas_max=model.max_replicas,
            gpu_memory_needed_gib=round(capacity.needed_gib(parameters, model.precision, model.gpus), 1)
            if parameters else None,
            gpu_memory_available_gib=float(model.gpus * instance.gpu.memory_gib) if instance else None,
            gpus_min=model.gpus * model.min_replicas,
            gpus_max=model.gpus * model.max_replicas,
            on_demand_usd_min=_times(on_demand, model.min_replicas),
            on_demand_usd_max=_times(on_demand, model.max_replicas),
            spot_usd_min=_times(spot, model.min_replicas),
            spot_usd_max=_times(spot, model.max_replicas),
        ))
    pool_names = sorted({row.pool for row in rows} | set(pools))
    pool_rows = tuple(
        PoolPlan(
            pool=name,
            gpus_min=sum(r.gpus_min for r in rows if r.pool == name),
            gpus_max=sum(r.gpus_max for r in rows if r.pool == name),
            gpu_limit=pools[name].gpu_limit if name in pools else None,
            on_demand_usd_min=_total([r.on_demand_usd_min for r in rows if r.pool == name]),
            on_demand_usd_max=_total([r.on_demand_usd_max for r in rows if r.pool == name]),
        )
        for name in pool_names
    )
    return Plan(env.name, env.region, tuple(rows), pool_rows)


def as_json(result: Plan) -> str:
    """Machine-readable plan (stable key order)."""
    data: dict[str, Any] = {
        "environment": result.environment,
        "region": result.region,
        "models": [asdict(row) for row in result.models],
        "pools": [asdict(row) for row in result.pools],
        "totals": {"gpus_min": result.gpus_min, "gpus_max": result.gpus_max,
                   "on_demand_usd_min": result.on_demand_usd_min, "on_demand_usd_max": result.on_demand_usd_max},
    }
    return json.dumps(data, indent=2) + "\n"


def as_text(result: Plan) -> str:
    """Aligned tables for people."""
    def memory(row: ModelPlan) -> str:
        if row.gpu_memory_needed_gib is None or row.gpu_memory_available_gib is None:
            return "unknown"
        return f"{row.gpu_memory_needed_gib:.0f}/{row.gpu_memory_available_gib:.0f} GiB"

    model_rows = [["MODEL", "POOL", "LIKELY INSTANCE", "GPUS/REPLICA", "REPLICAS", "GPU MEMORY", "GPUS",
                   "ON-DEMAND $/H", "SPOT $/H (EST.)"]]
    for row in result.models:
        model_rows.append([row.model, row.pool, f"{row.instance} ({row.gpu})" if row.instance else "unknown",
                           str(row.gpus_per_replica), f"{row.replicas_min}-{row.replicas_max}", memory(row),
                           f"{row.gpus_min}-{row.gpus_max}", _usd(row.on_demand_usd_min, row.on_demand_usd_max),
                           _usd(row.spot_usd_min, row.spot_usd_max)])
    pool_rows = [["POOL", "GPUS", "GPU LIMIT", "ON-DEMAND $/H"]]
    for pool in result.pools:
        pool_rows.append([pool.pool, f"{pool.gpus_min}-{pool.gpus_max}", str(pool.gpu_limit) if pool.gpu_limit else "-",
                          _usd(pool.on_demand_usd_min, pool.on_demand_usd_max)])
    total = (f"environment {result.environment}: {result.gpus_min}-{result.gpus_max} GPUs, "
             f"{_usd(result.on_demand_usd_min, result.on_demand_usd_max)} $/h On-Demand in {result.region}\n"
             "prices: list-price estimates from nimgen's catalog (one node per replica, no discounts); "
             "Spot is an assumed share of On-Demand")
    return f"{_table(model_rows)}\n{_table(pool_rows)}\n{total}\n"


def _usd(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows) + "\n"
