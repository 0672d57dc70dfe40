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


@dataclass(frozen=True)
class PoolPlan:
    """One pool's totals."""

    pool: str
    gpus_min: int
    gpus_max: int
    gpu_limit: int | None


@dataclass(frozen=True)
class Plan:
    """The environment's plan."""

    environment: str
    models: tuple[ModelPlan, ...]
    pools: tuple[PoolPlan, ...]

    @property
    def gpus_min(self) -> int:
        """GPUs at min replicas, all models."""
        return sum(m.gpus_min for m in self.models)

    @property
    def gpus_max(self) -> int:
        """GPUs at max replicas, all models."""
        return sum(m.gpus_max for m in self.models)


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
        candidates = capacity.pool_instances(list(pool.instance_families), list(pool.instance_types)) if pool else []
        instance = _likely_instance(model, candidates)
        spec = capacity.model_spec(model.image.repository)
        parameters = model.parameters or (spec.parameters if spec else None)
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
        ))
    pool_names = sorted({row.pool for row in rows} | set(pools))
    pool_rows = tuple(
        PoolPlan(
            pool=name,
            gpus_min=sum(r.gpus_min for r in rows if r.pool == name),
            gpus_max=sum(r.gpus_max for r in rows if r.pool == name),
            gpu_limit=pools[name].gpu_limit if name in pools else None,
        )
        for name in pool_names
    )
    return Plan(env.name, tuple(rows), pool_rows)


def as_json(result: Plan) -> str:
    """Machine-readable plan (stable key order)."""
    data: dict[str, Any] = {
        "environment": result.environment,
        "models": [asdict(row) for row in result.models],
        "pools": [asdict(row) for row in result.pools],
        "totals": {"gpus_min": result.gpus_min, "gpus_max": result.gpus_max},
    }
    return json.dumps(data, indent=2) + "\n"


def as_text(result: Plan) -> str:
    """Aligned tables for people."""
    def memory(row: ModelPlan) -> str:
        if row.gpu_memory_needed_gib is None or row.gpu_memory_available_gib is None:
            return "unknown"
        return f"{row.gpu_memory_needed_gib:.0f}/{row.gpu_memory_available_gib:.0f} GiB"

    model_rows = [["MODEL", "POOL", "LIKELY INSTANCE", "GPUS/REPLICA", "REPLICAS", "GPU MEMORY", "GPUS"]]
    for row in result.models:
        model_rows.append([row.model, row.pool, f"{row.instance} ({row.gpu})" if row.instance else "unknown",
                           str(row.gpus_per_replica), f"{row.replicas_min}-{row.replicas_max}", memory(row),
                           f"{row.gpus_min}-{row.gpus_max}"])
    pool_rows = [["POOL", "GPUS", "GPU LIMIT"]]
    for pool in result.pools:
        pool_rows.append([pool.pool, f"{pool.gpus_min}-{pool.gpus_max}", str(pool.gpu_limit) if pool.gpu_limit else "-"])
    total = f"environment {result.environment}: {result.gpus_min}-{result.gpus_max} GPUs"
    return f"{_table(model_rows)}\n{_table(pool_rows)}\n{total}\n"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows) + "\n"
