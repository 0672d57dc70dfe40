"""Reserved capacity: On-Demand Capacity Reservations and Capacity Blocks for ML a node pool launches into.

Karpenter (v1.3 and later; the ReservedCapacity feature gate is on by default in the release terraform/
installs) launches `karpenter.sh/capacity-type: reserved` nodes only into the reservations its
EC2NodeClass selects, and prefers them over Spot and On-Demand. A pool names each reservation by id or
tags, and says what it holds (instance type and count), which EC2 knows but an offline generator does
not: the capacity checks and the plan count those instances.
"""

from __future__ import annotations

from typing import Any

from nimgen import capacity
from nimgen.errors import shorten as _s


def reserved_gpus(pool: dict[str, Any]) -> tuple[int, list[str]] | None:
    """GPUs the pool's reservations hold and how (e.g. '2 x p5.48xlarge'), None when an instance type is unknown."""
    total, parts = 0, []
    for item in pool.get("capacityReservations") or []:
        instance = capacity.instances().get(str(item.get("instanceType")))
        if instance is None or not isinstance(item.get("instances"), int):
            return None
        total += instance.gpus * item["instances"]
        parts.append(f"{item['instances']} x {instance.name}")
    return total, parts


def check(document: Any, models: list[Any], add: Any) -> None:
    """Reservations go with capacity type reserved, hold instances the pool may launch, and hold enough GPUs
    when the pool buys nothing else."""
    for index, pool in enumerate(document.get("nodePools") or []):
        if not isinstance(pool, dict):
            continue
        base = ["nodePools", index]
        name = _s(str(pool.get("name")))
        types = pool.get("capacityTypes") or ["on-demand"]
        reservations = pool.get("capacityReservations") or []
        if "reserved" in types and not reservations:
            add([*base, "capacityTypes"], f"node pool '{name}' buys capacity type reserved but names no "
                "capacityReservations: Karpenter launches reserved nodes only into reservations its EC2NodeClass selects",
                "add capacityReservations (by id or tags, with instanceType and instances), or drop reserved")
            continue
        if reservations and "reserved" not in types:
            add([*base, "capacityTypes"], f"node pool '{name}' names capacityReservations but does not buy capacity "
                "type reserved: Karpenter would never launch into them", "add reserved to capacityTypes")
            continue
        _instances_fit_pool(pool, base, reservations, add)
        if set(types) == {"reserved"}:
            _enough_reserved(pool, base, models, add)


def _instances_fit_pool(pool: dict[str, Any], base: list[Any], reservations: list[Any], add: Any) -> None:
    launchable = {instance.name for instance in capacity.pool_instances(
        list(pool.get("instanceFamilies") or []), list(pool.get("instanceTypes") or []))}
    for i, item in enumerate(reservations):
        kind = item.get("instanceType") if isinstance(item, dict) else None
        if not isinstance(kind, str):
            continue
        if kind not in capacity.instances():
            add([*base, "capacityReservations", i, "instanceType"], f"instance type '{_s(kind)}' is not in nimgen's "
                "GPU instance catalog", "name the GPU instance type the reservation holds, e.g. p5.48xlarge")
        elif launchable and kind not in launchable:
            add([*base, "capacityReservations", i, "instanceType"], f"the reservation holds {_s(kind)}, which node "
                f"pool '{_s(str(pool.get('name')))}' never launches ({', '.join(sorted(launchable))})",
                "add its type or family to the pool's instanceTypes or instanceFamilies")


def _enough_reserved(pool: dict[str, Any], base: list[Any], models: list[Any], add: Any) -> None:
    """A reserved-only pool holds at most its reservations' instances."""
    held = reserved_gpus(pool)
    if held is None:
        return
    gpus, parts = held
    users = [m for m in models if isinstance(m, dict) and m.get("nodePool") == pool.get("name")]
    needed = sum(((m.get("replicas") or {}).get("max", 1) + (m.get("rollout") or {}).get("surge", 0))
                 * int(m.get("gpus", 1)) for m in users)
    if needed > gpus:
        add([*base, "capacityReservations"], f"node pool '{_s(str(pool.get('name')))}' buys only reserved capacity, "
            f"whose reservations hold {gpus} GPUs ({', '.join(parts)}), but its models may need {needed} at "
            "replicas.max plus rollout surge",
            "add on-demand (or spot) to capacityTypes for the overflow, reserve more, or lower replicas.max")
