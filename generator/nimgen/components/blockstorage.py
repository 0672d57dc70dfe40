"""nimgen's encrypted gp3 EBS StorageClass: nimgen's block-storage chart, for the block claims it renders.

EKS clusters created on Kubernetes 1.30 or later have no default StorageClass, so a claim without a class
stays Pending. Every block claim nimgen renders (Prometheus' and Alertmanager's data, Open WebUI's, a model's
`claimTemplate` cache) names a class: its own, or this one, which is rendered whenever some claim uses it. The
EBS CSI driver that provisions it is an EKS add-on installed by terraform/.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nimgen.components.base import AppSpec, Chart, Component, Grants, Kind
from nimgen.model import Environment

CHART = Chart("block-storage")
RELEASE_NAME = "block-storage"
# Cluster-scoped only: the Application targets a namespace that always exists, and creates none.
NAMESPACE = "kube-system"
# Before everything whose claims use it: kube-prometheus-stack (wave -15, Prometheus' and Alertmanager's volumes),
# the models and add-ons.
WAVE = -16
CLUSTER_KINDS: tuple[Kind, ...] = (("storage.k8s.io", "StorageClass"),)


def claims_using(env: Environment) -> list[str]:
    """What uses nimgen's class: "Prometheus and Alertmanager", "model <name>" and "Open WebUI", in sync order."""
    name = env.block_storage.storage_class
    obs = env.observability
    users = ["Prometheus and Alertmanager"] if obs and obs.storage and obs.storage.storage_class == name else []
    users += [f"model {model.name}" for model in env.models
              if model.cache_type == "claimTemplate" and model.cache_storage_class == name]
    if env.open_webui is not None and env.open_webui.storage_class == name:
        users.append("Open WebUI")
    return users


def values(env: Environment) -> dict[str, Any]:
    """Values for charts/block-storage."""
    block = env.block_storage
    return {
        "commonLabels": {"nimgen.io/environment": env.name},
        "storageClass": {"name": block.storage_class, "type": "gp3", "kmsKeyId": block.kms_key_id,
                         "fsType": "ext4", "reclaimPolicy": block.reclaim_policy},
    }


class BlockStorage(Component):
    """storage.blockStorage: rendered when a block claim uses it."""

    application_names: ClassVar[tuple[str, ...]] = (RELEASE_NAME,)
    readme: ClassVar[dict[str, str]] = {"platform": "readme/blockstorage-platform.md.j2"}

    def enabled(self, env: Environment) -> bool:
        return bool(claims_using(env))

    def applications(self, env: Environment) -> list[AppSpec]:
        return [AppSpec(RELEASE_NAME, CHART, values(env), NAMESPACE, WAVE,
                        (("StorageClass", env.block_storage.storage_class),
                         ("Used by", ", ".join(claims_using(env)))),
                        create_namespace=False)]

    def grants(self, env: Environment) -> Grants:
        return Grants(cluster_kinds=CLUSTER_KINDS)
