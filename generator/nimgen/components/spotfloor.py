"""Spot with a floor: a pool whose models keep some replicas On-Demand while the rest run on Spot.

Karpenter's documented On-Demand/Spot ratio split (karpenter-provider-aws, docs/concepts/scheduling.md,
"On-Demand/Spot Ratio Split"): two NodePools give disjoint values of one node label, and the workload
spreads over that label with maxSkew 1 and DoNotSchedule. A pool with `spotPerOnDemand: k` renders
`<pool>` (values "2".."k+1", Spot preferred, On-Demand when Spot is short) and `<pool>-on-demand`
(value "1", On-Demand only); a model with `onDemandReplicas: N` spreads over the k + 1 values, so at
least floor(replicas / (k + 1)) of its replicas run On-Demand and at most ceil(replicas / (k + 1)).
"""

from __future__ import annotations

import itertools
from typing import Any

from nimgen.errors import shorten as _s
from nimgen.model import Environment, Model, NodePool

SPREAD_LABEL = "nimgen.io/capacity-spread"
ON_DEMAND_SUFFIX = "-on-demand"
ON_DEMAND_VALUE = "1"
# Karpenter writes the NodePool name into every node's karpenter.sh/nodepool label (63 characters at most).
MAX_NODEPOOL_NAME = 63


def domains(spot_per_on_demand: int) -> int:
    """Values of the spread label: one On-Demand, `spot_per_on_demand` Spot-preferring."""
    return spot_per_on_demand + 1


def on_demand_name(pool: str) -> str:
    """Name of the pool's On-Demand NodePool."""
    return pool + ON_DEMAND_SUFFIX


def on_demand_gpu_limit(gpu_limit: int, spot_per_on_demand: int) -> int:
    """The On-Demand NodePool's share of the pool's gpuLimit (the rest stays with the pool's own NodePool)."""
    return -(-gpu_limit // domains(spot_per_on_demand))


def most_on_demand(replicas: int, spot_per_on_demand: int) -> int:
    """Replicas the spread may put on the On-Demand value: ceil(replicas / (k + 1)), its worst case for cost."""
    return -(-replicas // domains(spot_per_on_demand))


def least_on_demand(replicas: int, spot_per_on_demand: int) -> int:
    """Replicas the spread keeps on the On-Demand value: floor(replicas / (k + 1))."""
    return replicas // domains(spot_per_on_demand)


def pool_of(env: Environment, model: Model) -> NodePool | None:
    """The model's pool, when it exists."""
    return next((pool for pool in env.node_pools if pool.name == model.node_pool), None)


def chart_values(env: Environment, model: Model) -> dict[str, Any]:
    """The nim-llm `capacitySpread` block of a model with a floor (nothing for the others)."""
    pool = pool_of(env, model)
    if not model.on_demand_replicas or pool is None or not pool.spot_per_on_demand:
        return {}
    # minDomains: label values no node carries yet count as empty, so kube-scheduler never stacks replicas
    # on the values it happens to see (e.g. only Spot nodes after the On-Demand one was drained).
    return {"capacitySpread": {"enabled": True, "topologyKey": SPREAD_LABEL,
                               "minDomains": domains(pool.spot_per_on_demand)}}


def pool_values(pool: NodePool) -> dict[str, Any]:
    """The gpu-nodepools values that make the pool a NodePool pair."""
    if not pool.spot_per_on_demand:
        return {}
    return {"spotPerOnDemand": pool.spot_per_on_demand,
            "onDemandGpuLimit": on_demand_gpu_limit(pool.gpu_limit, pool.spot_per_on_demand)}


def check(document: Any, models: list[Any], add: Any) -> None:
    """Pairs only on Spot-and-On-Demand pools with a free, short name; floors only on such pools, at reach of
    replicas.min; each NodePool of the pair holds its share."""
    pools = [pool for pool in document.get("nodePools") or [] if isinstance(pool, dict)]
    names = {pool.get("name"): index for index, pool in enumerate(document.get("nodePools") or [])
             if isinstance(pool, dict)}
    for index, pool in enumerate(document.get("nodePools") or []):
        if isinstance(pool, dict) and isinstance(pool.get("spotPerOnDemand"), int):
            _pair(pool, ["nodePools", index], names, add)
    # Below one Spot node per On-Demand node is the schema's error: no split to hold a floor or a share.
    unsplit = {pool.get("name") for pool in pools if isinstance(pool.get("spotPerOnDemand"), int)
               and pool["spotPerOnDemand"] < 1}
    by_name = {pool.get("name"): pool for pool in pools if pool.get("name") not in unsplit}
    for index, model in enumerate(models):
        if isinstance(model, dict) and isinstance(model.get("onDemandReplicas"), int):
            _floor(model, ["models", index], by_name.get(model.get("nodePool")), add)
    for index, pool in enumerate(document.get("nodePools") or []):
        if isinstance(pool, dict) and isinstance(pool.get("spotPerOnDemand"), int) and pool.get("name") not in unsplit:
            _split_holds(pool, ["nodePools", index], models, add)


def _pair(pool: dict[str, Any], base: list[Any], names: dict[Any, int], add: Any) -> None:
    name = str(pool.get("name"))
    types = pool.get("capacityTypes") or ["on-demand"]
    path = [*base, "spotPerOnDemand"]
    if "reserved" in types:
        add(path, f"node pool '{_s(name)}' sets spotPerOnDemand, which splits Spot from On-Demand, but also buys "
            "reserved capacity, which that split does not place",
            "keep the reservations in a pool of their own, or drop spotPerOnDemand")
    elif not {"spot", "on-demand"} <= set(types):
        add(path, f"node pool '{_s(name)}' sets spotPerOnDemand but buys only {_s(', '.join(map(str, types)))}: the "
            "floor runs On-Demand and the other replicas prefer Spot",
            "set capacityTypes: [spot, on-demand], or drop spotPerOnDemand")
    limit = pool.get("gpuLimit")
    if isinstance(limit, int) and limit < 2:
        add([*base, "gpuLimit"], f"node pool '{_s(name)}' sets spotPerOnDemand, which splits its gpuLimit between "
            f"two NodePools, but a gpuLimit of {limit} leaves '{_s(name)}' none", "raise gpuLimit to at least 2")
    pair = on_demand_name(name)
    if pair in names:
        add(path, f"node pool '{_s(name)}' sets spotPerOnDemand, so it renders a second NodePool '{_s(pair)}', "
            f"which is also the name of nodePools[{names[pair]}]", "rename one of the two pools")
    elif len(pair) > MAX_NODEPOOL_NAME:
        add(path, f"node pool '{_s(name)}' sets spotPerOnDemand, so it renders a second NodePool '{_s(pair)}' of "
            f"{len(pair)} characters; Karpenter labels its nodes karpenter.sh/nodepool with that name, and a "
            f"label value holds at most {MAX_NODEPOOL_NAME}",
            f"shorten the pool name to at most {MAX_NODEPOOL_NAME - len(ON_DEMAND_SUFFIX)} characters")


def _floor(model: dict[str, Any], base: list[Any], pool: dict[str, Any] | None, add: Any) -> None:
    if pool is None:
        return  # an undefined pool is reported on its own
    wanted = model["onDemandReplicas"]
    name, pool_name = _s(str(model.get("name"))), _s(str(pool.get("name")))
    k = pool.get("spotPerOnDemand")
    if not isinstance(k, int):
        add([*base, "onDemandReplicas"], f"model '{name}' keeps {wanted} replicas On-Demand, but its node pool "
            f"'{pool_name}' sets no spotPerOnDemand: nothing splits the pool's nodes between On-Demand and Spot",
            f"set spotPerOnDemand on node pool '{pool_name}' (with capacityTypes [spot, on-demand]), "
            "or drop onDemandReplicas")
        return
    minimum = (model.get("replicas") or {}).get("min", 1)
    if not isinstance(minimum, int) or least_on_demand(minimum, k) >= wanted:
        return
    fixes = [f"raise replicas.min to {wanted * domains(k)}"]
    if minimum // wanted - 1 >= 1:
        fixes.append(f"lower spotPerOnDemand of node pool '{pool_name}' to {minimum // wanted - 1}")
    if least_on_demand(minimum, k) >= 1:
        fixes.append(f"lower onDemandReplicas to {least_on_demand(minimum, k)}")
    add([*base, "onDemandReplicas"], f"model '{name}' keeps {wanted} replicas On-Demand, but at replicas.min "
        f"{minimum} the spread over node pool '{pool_name}' (spotPerOnDemand {k}: one On-Demand value of "
        f"{domains(k)}) guarantees only {least_on_demand(minimum, k)}", ", or ".join(fixes))


def _split_holds(pool: dict[str, Any], base: list[Any], models: list[Any], add: Any) -> None:
    """The On-Demand NodePool takes ceil(gpuLimit / (k + 1)); each half must hold its worst case at full scale.

    A floor model may put ceil(peak / (k + 1)) replicas On-Demand and peak - floor(peak / (k + 1)) on the
    rest; the pool's other models prefer the pool's own NodePool (it has the higher weight).
    """
    limit, k = pool.get("gpuLimit"), pool["spotPerOnDemand"]
    if not isinstance(limit, int):
        return
    on_demand = rest = total = 0
    for model in models:
        if not isinstance(model, dict) or model.get("nodePool") != pool.get("name"):
            continue
        gpus = int(model.get("gpus", 1))
        peak = (model.get("replicas") or {}).get("max", 1) + (model.get("rollout") or {}).get("surge", 0)
        total += peak * gpus
        if isinstance(model.get("onDemandReplicas"), int):
            on_demand += most_on_demand(peak, k) * gpus
            rest += (peak - least_on_demand(peak, k)) * gpus
        else:
            rest += peak * gpus
    if total > limit:
        return  # the pool's own capacity check reports it
    if on_demand <= on_demand_gpu_limit(limit, k) and rest <= limit - on_demand_gpu_limit(limit, k):
        return
    # Both halves only grow with n, and (on_demand + rest) * (k + 1) holds both: the search ends.
    enough = next(n for n in itertools.count(limit)
                  if on_demand <= on_demand_gpu_limit(n, k) and rest <= n - on_demand_gpu_limit(n, k))
    name = _s(str(pool.get("name")))
    add([*base, "gpuLimit"], f"node pool '{name}' gives {on_demand_gpu_limit(limit, k)} of its gpuLimit {limit} to "
        f"NodePool '{_s(on_demand_name(name))}' and {limit - on_demand_gpu_limit(limit, k)} to '{name}', but at "
        f"replicas.max plus rollout surge its models may need {on_demand} On-Demand and {rest} on the rest "
        f"(the spread puts up to 1 in {domains(k)} replicas, rounded up, On-Demand)",
        f"raise gpuLimit to at least {enough}")
