"""The NVIDIA device plugin: what makes a node advertise `nvidia.com/gpu`.

AL2023 accelerated AMIs ship the driver but not the plugin; Bottlerocket's NVIDIA variants run it
themselves. nimgen installs the upstream chart, pinned, on the nodes of its AL2023 GPU pools only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components.base import AppSpec, Chart, Component, Grants, Kind
from nimgen.model import Environment, Ref, Waiver

# Upstream chart, pinned (NVIDIA/k8s-device-plugin, deployments/helm/nvidia-device-plugin).
CHART = Chart("nvidia-device-plugin", repo="https://nvidia.github.io/k8s-device-plugin", version="0.18.2")
RELEASE_NAME = "nvidia-device-plugin"
NAMESPACE = "nvidia-device-plugin"
# With the node pools: a node's GPUs are schedulable only once the plugin runs there.
WAVE = -10
# Kinds the chart renders with its default (no ConfigMap, no GPU feature discovery) settings.
NAMESPACED_KINDS: tuple[Kind, ...] = (("apps", "DaemonSet"), ("", "ServiceAccount"), ("", "ConfigMap"))


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
        # For the plugin and the MPS control daemon alike: a Go program that lists the GPUs and answers the kubelet.
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }


# The plugin writes its socket into the kubelet's root-owned device-plugins folder; the MPS control daemon
# (scheduled only on nodes labelled for MPS sharing, which nimgen never sets up) starts NVIDIA's root-owned MPS.
_ROOT = "it writes into the kubelet's root-owned device-plugin folder on the host"
_NO_HEALTH = "the plugin serves no health endpoint and the chart offers no probe"
_WAIVED: tuple[tuple[str, str, str, str], ...] = (
    ("non-root", "", "nvidia-device-plugin-ctr", _ROOT),
    ("probes", "", "nvidia-device-plugin-ctr", _NO_HEALTH),
    ("non-root", "-mps-control-daemon", "mps-control-daemon-ctr", _ROOT),
    ("probes", "-mps-control-daemon", "mps-control-daemon-ctr", _NO_HEALTH),
    ("non-root", "-mps-control-daemon", "mps-control-daemon-mounts", _ROOT),
)


class DevicePlugin(Component):
    """The upstream chart on the AL2023 pools (off with cluster.devicePlugin: none)."""

    application_names: ClassVar[tuple[str, ...]] = (RELEASE_NAME,)

    def enabled(self, env: Environment) -> bool:
        return bool(plugin_pools(env))

    def applications(self, env: Environment) -> list[AppSpec]:
        return [AppSpec(RELEASE_NAME, CHART, plugin_values(env), NAMESPACE, WAVE,
                        (("Node pools", ", ".join(plugin_pools(env))),))]

    def grants(self, env: Environment) -> Grants:
        return Grants(namespaced_kinds=NAMESPACED_KINDS)

    def policy_waivers(self, env: Environment) -> dict[str, tuple[Waiver, ...]]:
        return {RELEASE_NAME: tuple(Waiver(rule, Ref("DaemonSet", NAMESPACE, RELEASE_NAME + suffix), container, why)
                                    for rule, suffix, container, why in _WAIVED)}
