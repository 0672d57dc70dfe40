"""Helm values of the gpu-nodepools chart: the environment's Karpenter GPU node pools."""

from __future__ import annotations

from typing import Any

from nimgen.model import Environment

CHART_NAME = "gpu-nodepools"
CHART_PATH = f"charts/{CHART_NAME}"
RELEASE_NAME = "gpu-nodepools"
# Cluster-scoped objects need no namespace; the Application targets Karpenter's own.
NAMESPACE = "karpenter"


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
        pools[pool.name] = entry
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "karpenter": {"nodeRole": env.karpenter.node_role, "discoveryTag": env.karpenter.discovery_tag},
        "pools": pools,
    }
