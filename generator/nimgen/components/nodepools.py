"""The environment's Karpenter GPU node pools: nimgen's gpu-nodepools chart, synced before the models."""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen import capacity
from nimgen.components import reservations, spotfloor
from nimgen.components.base import Add, AppSpec, Chart, Component, Grants, Kind
from nimgen.model import Environment, NodePool

CHART = Chart("gpu-nodepools")
CHART_PATH = CHART.path
RELEASE_NAME = "gpu-nodepools"
# Cluster-scoped objects need no namespace; the Application targets Karpenter's own, where terraform/
# installs it (it exists before the first sync, so nothing creates a namespace).
NAMESPACE = "kube-system"
WAVE = -10
CLUSTER_KINDS: tuple[Kind, ...] = (("karpenter.sh", "NodePool"), ("karpenter.k8s.aws", "EC2NodeClass"))


class NodePools(Component):
    """NodePool and EC2NodeClass per pool; the device plugin and the models depend on them."""

    application_names: ClassVar[tuple[str, ...]] = (RELEASE_NAME,)
    readme: ClassVar[dict[str, str]] = {"before-models": "readme/nodepools.md.j2"}
    sync_label: ClassVar[str] = "node pools"

    def enabled(self, env: Environment) -> bool:
        return bool(env.node_pools)

    def applications(self, env: Environment) -> list[AppSpec]:
        return [AppSpec(RELEASE_NAME, CHART, nodepool_values(env), NAMESPACE, WAVE,
                        tuple(("GPU limit", f"{pool.name}: {pool.gpu_limit}") for pool in env.node_pools),
                        create_namespace=False)]

    def grants(self, env: Environment) -> Grants:
        return Grants(cluster_kinds=CLUSTER_KINDS)

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        reservations.check(document, models, add)
        spotfloor.check(document, models, add)


def nodepool_values(env: Environment) -> dict[str, Any]:
    """Values for charts/gpu-nodepools (every pool spelled out, keyed by name)."""
    assert env.karpenter is not None, "checked when the environment was loaded"
    pools: dict[str, Any] = {}
    for pool in env.node_pools:
        entry: dict[str, Any] = {}
        if pool.instance_families:
            entry["instanceFamilies"] = list(pool.instance_families)
        if pool.instance_types:
            entry["instanceTypes"] = list(pool.instance_types)
        entry.update(
            {
                "capacityTypes": list(pool.capacity_types),
                "architecture": pool.architecture,
                "gpuLimit": pool.gpu_limit,
                "amiAlias": pool.ami_alias,
                "diskSize": pool.disk_size,
                "consolidateAfter": pool.consolidate_after,
                "expireAfter": pool.expire_after,
                "terminationGracePeriod": pool.termination_grace_period,
                "budgets": [{"nodes": pool.disruption_budget}],
            }
        )
        if pool.reservations:
            entry["capacityReservations"] = [reservation.selector_term() for reservation in pool.reservations]
        entry.update(spotfloor.pool_values(pool))
        entry.update(_gpu_requirements(env, pool))
        pools[pool.name] = entry
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "karpenter": {"nodeRole": env.karpenter.node_role, "discoveryTag": env.karpenter.discovery_tag},
        "pools": pools,
    }


def _gpu_requirements(env: Environment, pool: NodePool) -> dict[str, Any]:
    """instance-gpu-count / instance-gpu-memory values, only where they narrow what the pool may launch.

    GPU counts below the smallest replica of the pool's models are left out (such a node could never
    take one of its pods). The memory floor comes from the pool's minGpuMemory, placed just above the
    largest GPU of the pool it excludes: EC2 reports GPU memory in MiB that can sit below the marketed size
    (an L4's 24 GB is 22888 MiB), so a floor of exactly 48Gi would also shut out the L40S it is meant for.
    """
    out: dict[str, Any] = {}
    if pool.min_gpu_memory_mib is not None:
        launchable = capacity.pool_instances(list(pool.instance_families), list(pool.instance_types))
        excluded = [i.gpu.memory_gib * 1024 for i in launchable if i.gpu.memory_gib * 1024 < pool.min_gpu_memory_mib]
        if excluded:
            out["minGpuMemoryMiB"] = int(max(excluded)) + 1
        elif not launchable:  # instances nimgen does not know: take the floor as written
            out["minGpuMemoryMiB"] = pool.min_gpu_memory_mib
    instances = capacity.pool_instances(list(pool.instance_families), list(pool.instance_types),
                                        pool.min_gpu_memory_mib)
    replica_gpus = [model.gpus for model in env.models if model.node_pool == pool.name]
    if instances and replica_gpus:
        counts = sorted({instance.gpus for instance in instances})
        useful = [count for count in counts if count >= min(replica_gpus)]
        if useful and useful != counts:
            out["gpuCounts"] = useful
    return out
