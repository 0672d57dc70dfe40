"""The NVIDIA device plugin: what makes a node advertise `nvidia.com/gpu`.

AL2023 accelerated AMIs ship the driver but not the plugin; Bottlerocket's NVIDIA variants run it
themselves. nimgen installs the upstream chart, pinned, on the nodes of its AL2023 GPU pools only.
"""

from __future__ import annotations

from typing import Any

from nimgen.environment.model import Environment

# Upstream chart, pinned (NVIDIA/k8s-device-plugin, deployments/helm/nvidia-device-plugin).
REPO_URL = "https://nvidia.github.io/k8s-device-plugin"
CHART = "nvidia-device-plugin"
VERSION = "0.18.2"
RELEASE_NAME = "nvidia-device-plugin"
NAMESPACE = "nvidia-device-plugin"
# Kinds the chart renders with its default (no ConfigMap, no GPU feature discovery) settings.
NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (("apps", "DaemonSet"), ("", "ServiceAccount"), ("", "ConfigMap"))


def plugin_pools(env: Environment) -> tuple[str, ...]:
    """Pools whose nodes need nimgen's device plugin."""
    if env.device_plugin == "none":
        return ()
    return tuple(pool.name for pool in env.node_pools if pool.ami_family == "al2023")


def plugin_values(env: Environment) -> dict[str, Any]:
    """Upstream chart values: run only on nimgen's AL2023 GPU nodes, tolerating their taint."""
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [
                            {"key": "nimgen.io/node-pool", "operator": "In", "values": list(plugin_pools(env))}
                        ]}
                    ]
                }
            }
        },
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-node-critical",
    }
