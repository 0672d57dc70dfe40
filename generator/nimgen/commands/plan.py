"""Capacity plan of an environment: where each model lands, GPUs and GPU memory at min and max replicas.

The max figures count a surge rollout's spare replicas: while a rollout runs at full scale, they hold GPUs
and cost like any other replica. A model with an On-Demand floor (Spot with a floor) prices its Spot
figures with the spread's worst case, ceil(replicas / (spotPerOnDemand + 1)) replicas On-Demand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nimgen import capacity
from nimgen.components import spotfloor
from nimgen.jsonreport import dumps
from nimgen.model import Environment, Model, NodePool, parse_quantity

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
    # List-price estimates in $/hour at min and at max replicas plus the rollout surge (one node per replica); None when unknown,
    # spot None also when the pool does not buy Spot.
    on_demand_usd_min: float | None
    on_demand_usd_max: float | None
    spot_usd_min: float | None
    spot_usd_max: float | None
    surge: int = 0  # spare replicas while a rollout runs, counted in the max figures
    # Replicas on the pool's reserved instances (priced at its reservedHourlyUsd), at min and at full scale.
    reserved_min: int = 0
    reserved_max: int = 0
    # Spot with a floor: replicas kept On-Demand (onDemandReplicas), and those the Spot figures price On-Demand
    # at min and at full scale (the spread's worst case); all 0 without a floor.
    on_demand_floor: int = 0
    on_demand_min: int = 0
    on_demand_max: int = 0
    # Scale to zero: the minimum figures are those of no replica, and the first request waits up to this long.
    cold_start_minutes: int = 0


@dataclass(frozen=True)
class PoolPlan:
    """One pool's totals."""

    pool: str
    gpus_min: int
    gpus_max: int
    gpu_limit: int | None
    on_demand_usd_min: float | None
    on_demand_usd_max: float | None
    reserved_instances: int = 0  # instances its capacity reservations hold
    reserved_hourly_usd: float = 0.0  # what plan charges per reserved instance-hour (0: already paid)
    on_demand_gpu_limit: int = 0  # Spot with a floor: the <pool>-on-demand NodePool's share of gpu_limit


@dataclass(frozen=True)
class RoutePlan:
    """A model as callers of the gateway see it."""

    model: str
    names: tuple[str, ...]  # what callers send as `model`: the public name, then its aliases
    public: bool  # served without authentication


@dataclass(frozen=True)
class EndpointPlan:
    """The gateway's endpoint: where it answers, who may call it, and which models it serves."""

    url: str
    scheme: str  # internal | internet-facing
    authentication: str  # "API keys (N clients)", "OIDC (issuer)" or "none"
    routes: tuple[RoutePlan, ...]


@dataclass(frozen=True)
class Plan:
    """The environment's plan."""

    environment: str
    region: str
    models: tuple[ModelPlan, ...]
    pools: tuple[PoolPlan, ...]
    endpoint: EndpointPlan | None = None  # None: no gateway

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


def _likely_instance(model: Model, candidates: list[capacity.Instance], reserved: set[str]) -> capacity.Instance | None:
    """Smallest instance whose GPUs, CPUs and memory take one replica: a reserved type first (Karpenter prefers
    reserved capacity), else the cheapest fit."""
    cpu = float(parse_quantity(model.cpu))
    memory_gib = float(parse_quantity(model.memory)) / capacity.GIB
    fitting = [
        i for i in candidates
        if i.gpus >= model.gpus and cpu <= i.vcpu - RESERVED_VCPU and memory_gib <= i.memory_gib * (1 - RESERVED_MEMORY_SHARE)
    ]
    return min(fitting, key=lambda i: (i.name not in reserved, i.gpus, i.vcpu, i.memory_gib, i.name), default=None)


def _reserved_slots(pool: NodePool | None) -> dict[str, int]:
    """Instances the pool's reservations hold, by type."""
    slots: dict[str, int] = {}
    for reservation in pool.reservations if pool else ():
        slots[reservation.instance_type] = slots.get(reservation.instance_type, 0) + reservation.instances
    return slots


def _priced(replicas: int, instance: capacity.Instance | None, pool: NodePool | None, slots: dict[str, int],
            price: float | None) -> tuple[int, float | None]:
    """(replicas on reserved instances, $/h): reserved ones at the pool's rate, the rest at `price`.

    Takes the reserved instances it uses from `slots`, so the models of a pool share its reservations
    in the environment's order.
    """
    reserved = min(replicas, slots.get(instance.name, 0)) if instance and pool else 0
    if reserved:
        slots[instance.name] -= reserved  # type: ignore[union-attr]
    rest = replicas - reserved
    if rest and price is None:
        return reserved, None
    rate = pool.reserved_hourly_usd if pool else 0.0
    return reserved, round(reserved * rate + rest * (price or 0.0), 2)


def _floor_priced(replicas: int, on_demand_replicas: int, on_demand: float | None, spot: float) -> float | None:
    """$/h of `replicas` with `on_demand_replicas` of them On-Demand and the rest on Spot."""
    if on_demand is None:
        return None
    return round(on_demand_replicas * on_demand + (replicas - on_demand_replicas) * spot, 2)


def plan(env: Environment) -> Plan:
    """Compute the plan (pure)."""
    pools = {pool.name: pool for pool in env.node_pools}
    # Reserved instances left at min replicas and at full scale, per pool (shared in environment order).
    at_min = {pool.name: _reserved_slots(pool) for pool in env.node_pools}
    at_peak = {pool.name: _reserved_slots(pool) for pool in env.node_pools}
    rows = []
    for model in env.models:
        pool = pools.get(model.node_pool)
        candidates = capacity.pool_instances(
            list(pool.instance_families), list(pool.instance_types), pool.min_gpu_memory_mib) if pool else []
        instance = _likely_instance(model, candidates, set(_reserved_slots(pool)))
        spec = capacity.model_spec(model.image.repository)
        parameters = model.parameters or (spec.parameters if spec else None)
        on_demand = instance.hourly(env.region) if instance else None
        spot = instance.spot_hourly(env.region) if instance and pool and "spot" in pool.capacity_types else None
        if pool and "on-demand" not in pool.capacity_types and "spot" not in pool.capacity_types:
            on_demand = None  # a reserved-only pool has no overflow to price
        min_slots, peak_slots = at_min.get(model.node_pool, {}), at_peak.get(model.node_pool, {})
        lowest = 0 if model.scale_to_zero else model.min_replicas
        reserved_min, on_demand_min = _priced(lowest, instance, pool, dict(min_slots), on_demand)
        reserved_max, on_demand_max = _priced(model.peak_replicas, instance, pool, dict(peak_slots), on_demand)
        _, spot_min = _priced(lowest, instance, pool, dict(min_slots), spot)
        _, spot_max = _priced(model.peak_replicas, instance, pool, dict(peak_slots), spot)
        _priced(lowest, instance, pool, min_slots, None)  # the model takes its reserved instances
        _priced(model.peak_replicas, instance, pool, peak_slots, None)
        split = pool.spot_per_on_demand if pool and model.on_demand_replicas else 0
        floor_min = spotfloor.most_on_demand(lowest, split) if split else 0
        floor_max = spotfloor.most_on_demand(model.peak_replicas, split) if split else 0
        if split and spot is not None:
            # A floor pool holds no reservations (refused), so only Spot and On-Demand replicas remain.
            spot_min = _floor_priced(lowest, floor_min, on_demand, spot)
            spot_max = _floor_priced(model.peak_replicas, floor_max, on_demand, spot)
        rows.append(ModelPlan(
            model=model.name,
            pool=model.node_pool,
            instance=instance.name if instance else "",
            gpu=instance.gpu.name if instance else "",
            gpus_per_replica=model.gpus,
            replicas_min=lowest,
            replicas_max=model.max_replicas,
            gpu_memory_needed_gib=round(capacity.needed_gib(parameters, model.precision, model.gpus), 1)
            if parameters else None,
            gpu_memory_available_gib=float(model.gpus * instance.gpu.memory_gib) if instance else None,
            gpus_min=model.gpus * lowest,
            gpus_max=model.gpus * model.peak_replicas,
            on_demand_usd_min=on_demand_min,
            on_demand_usd_max=on_demand_max,
            spot_usd_min=spot_min if spot is not None else None,
            spot_usd_max=spot_max if spot is not None else None,
            surge=model.surge,
            reserved_min=reserved_min,
            reserved_max=reserved_max,
            on_demand_floor=model.on_demand_replicas if split else 0,
            on_demand_min=floor_min,
            on_demand_max=floor_max,
            cold_start_minutes=model.startup_timeout_minutes if model.scale_to_zero else 0,
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
            reserved_instances=sum(_reserved_slots(pools.get(name)).values()),
            reserved_hourly_usd=pools[name].reserved_hourly_usd if name in pools else 0.0,
            on_demand_gpu_limit=spotfloor.pool_values(pools[name]).get("onDemandGpuLimit", 0) if name in pools else 0,
        )
        for name in pool_names
    )
    return Plan(env.name, env.region, tuple(rows), pool_rows, endpoint(env))


def endpoint(env: Environment) -> EndpointPlan | None:
    """The gateway's endpoint and the models behind it, or None without a gateway."""
    gateway = env.gateway
    if gateway is None:
        return None
    if gateway.api_key_clients:
        clients = len(gateway.api_key_clients)
        authentication = f"API keys ({clients} client{'s' if clients != 1 else ''}: {', '.join(gateway.api_key_clients)})"
    elif gateway.oidc_issuer:
        authentication = f"OIDC ({gateway.oidc_issuer})"
    else:
        authentication = "none"
    routes = tuple(RoutePlan(model.name, model.route.names, model.route.public)
                   for model in env.models if model.route is not None)
    return EndpointPlan(f"https://{gateway.hostname}/v1", gateway.scheme, authentication, routes)


def as_json(result: Plan) -> str:
    """Machine-readable plan (stable key order)."""
    data: dict[str, Any] = {
        "environment": result.environment,
        "region": result.region,
        "models": [asdict(row) for row in result.models],
        "pools": [asdict(row) for row in result.pools],
        "totals": {"gpus_min": result.gpus_min, "gpus_max": result.gpus_max,
                   "on_demand_usd_min": result.on_demand_usd_min, "on_demand_usd_max": result.on_demand_usd_max},
        "endpoint": asdict(result.endpoint) if result.endpoint else None,
    }
    return dumps(data)


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
                           str(row.gpus_per_replica),
                           f"{row.replicas_min}-{row.replicas_max}" + (f" +{row.surge} surge" if row.surge else "")
                           + (f" ({row.on_demand_floor} on-demand)" if row.on_demand_floor else "")
                           + (f" (to zero; cold start up to {row.cold_start_minutes} min)"
                              if row.cold_start_minutes else ""),
                           memory(row),
                           f"{row.gpus_min}-{row.gpus_max}", _usd(row.on_demand_usd_min, row.on_demand_usd_max),
                           _usd(row.spot_usd_min, row.spot_usd_max)])
    pool_rows = [["POOL", "GPUS", "GPU LIMIT", "RESERVED", "ON-DEMAND $/H"]]
    for pool in result.pools:
        reserved = (f"{pool.reserved_instances} at {pool.reserved_hourly_usd:.2f} $/h" if pool.reserved_instances
                    else "-")
        limit = str(pool.gpu_limit) if pool.gpu_limit else "-"
        if pool.on_demand_gpu_limit:
            limit += f" ({pool.on_demand_gpu_limit} on-demand)"
        pool_rows.append([pool.pool, f"{pool.gpus_min}-{pool.gpus_max}", limit,
                          reserved, _usd(pool.on_demand_usd_min, pool.on_demand_usd_max)])
    total = (f"environment {result.environment}: {result.gpus_min}-{result.gpus_max} GPUs, "
             f"{_usd(result.on_demand_usd_min, result.on_demand_usd_max)} $/h On-Demand in {result.region}\n"
             "prices: list-price estimates from nimgen's catalog (one node per replica, no discounts); "
             "Spot is an assumed share of On-Demand; reserved instances count at the pool's reservedHourlyUsd "
             "(0: already paid), first")
    if any(row.on_demand_floor for row in result.models):
        total += ("\nspot with a floor: the Spot column prices ceil(replicas / (spotPerOnDemand + 1)) replicas "
                  "On-Demand (the spread's worst case) and the rest at Spot")
    return f"{_table(model_rows)}\n{_table(pool_rows)}\n{_endpoint_text(result.endpoint)}{total}\n"


def _endpoint_text(found: EndpointPlan | None) -> str:
    """The gateway's lines: its URL, who may call it, and each model's public names."""
    if found is None:
        return ""
    rows = [["MODEL", "CALLED AS", "ACCESS"]]
    rows += [[route.model, ", ".join(route.names), "public" if route.public else "authenticated"]
             for route in found.routes]
    return (f"endpoint {found.url} ({found.scheme} load balancer), authentication: {found.authentication}\n"
            f"{_table(rows)}\n")


def _usd(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows) + "\n"
