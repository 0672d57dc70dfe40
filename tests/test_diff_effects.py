"""diff's "forces replacement" rules, each on a before/after pair of the objects nimgen renders.

The effects are the cluster's: Kubernetes rolls pods on a pod template change and refuses an update to an
immutable field (Argo CD's sync fails until the object is replaced); Karpenter replaces drifted nodes, but
not for its behavioural NodePool fields (weight, limits, disruption).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from nimgen.commands.diff import ObjectChange, ObjectKey, field_changes
from nimgen.commands.diffeffects import RULES, _pattern, object_effects, replacements

POD = "restarts pods"
NODES = "replaces nodes"
OBJECT = "replaces the object"

STATEFULSET: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": {"name": "m", "namespace": "nim", "labels": {"app.kubernetes.io/version": "1.0.3"}},
    "spec": {
        "replicas": 2, "revisionHistoryLimit": 5, "serviceName": "m-headless", "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": {"app.kubernetes.io/instance": "m"}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/instance": "m", "app.kubernetes.io/version": "1.0.3"},
                         "annotations": {"karpenter.sh/do-not-disrupt": "true"}},
            "spec": {
                "nodeSelector": {"nimgen.io/node-pool": "a10g"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "nim", "image": "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3",
                                "env": [{"name": "NIM_MAX_MODEL_LEN", "value": "8192"}]}],
            },
        },
    },
}
DEPLOYMENT: dict[str, Any] = {**copy.deepcopy(STATEFULSET), "kind": "Deployment",
                              "spec": {**copy.deepcopy(STATEFULSET["spec"]), "strategy": {"type": "RollingUpdate"}}}
for _key in ("serviceName", "podManagementPolicy", "updateStrategy"):
    del DEPLOYMENT["spec"][_key]
JOB: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m-cache-warmup"},
                       "spec": {"backoffLimit": 2, "template": copy.deepcopy(STATEFULSET["spec"]["template"])}}
CLAIM: dict[str, Any] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "cache"},
                         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "nimgen-efs",
                                  "volumeMode": "Filesystem", "resources": {"requests": {"storage": "500Gi"}}}}
SERVICE: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m-headless"},
                           "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/instance": "m"},
                                    "ports": [{"name": "http-openai", "port": 8000}]}}
STORAGE_CLASS: dict[str, Any] = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                 "metadata": {"name": "nimgen-gp3"}, "provisioner": "ebs.csi.aws.com",
                                 "parameters": {"type": "gp3", "encrypted": "true"}, "reclaimPolicy": "Delete",
                                 "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True}
NODEPOOL: dict[str, Any] = {
    "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "a10g", "labels": {"a": "b"}},
    "spec": {
        "weight": 1,
        "template": {
            "metadata": {"labels": {"nimgen.io/node-pool": "a10g"}},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "a10g"},
                "requirements": [
                    {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
                    {"key": "karpenter.k8s.aws/instance-size", "operator": "NotIn", "values": ["metal", "nano"]},
                ],
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                "expireAfter": "720h", "terminationGracePeriod": "2h",
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30m", "budgets": [{"nodes": "10%"}]},
        "limits": {"nvidia.com/gpu": "8"},
    },
}
NODECLASS: dict[str, Any] = {
    "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "a10g"},
    "spec": {"role": "KarpenterNodeRole-nim-prod", "amiSelectorTerms": [{"alias": "al2023@v20251112"}],
             "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "nim-prod"}}],
             "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "nim-prod"}}],
             "blockDeviceMappings": [{"deviceName": "/dev/xvda", "rootVolume": True,
                                      "ebs": {"volumeSize": "300Gi", "volumeType": "gp3"}}],
             "metadataOptions": {"httpTokens": "required"}, "tags": {"nimgen.io/node-pool": "a10g"}},
}

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    """An edit that sets a path ("a.b[key.with/dots].0") to value (appends at a list's end), or deletes it (...)."""
    parts = [key or name for key, name in re.findall(r"\[([^\]]+)\]|([^.\[\]]+)", path)]

    def edit(obj: dict[str, Any]) -> None:
        target: Any = obj
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        last: Any = int(parts[-1]) if isinstance(target, list) else parts[-1]
        if value is ...:
            del target[last]
        elif isinstance(target, list) and last == len(target):
            target.append(value)
        else:
            target[last] = value
    return edit


def changed(before: dict[str, Any], *edits: Edit) -> ObjectChange:
    after = copy.deepcopy(before)
    for edit in edits:
        edit(after)
    meta = before.get("metadata", {})
    key = ObjectKey(before["kind"], meta.get("namespace", ""), meta["name"], "")
    return ObjectChange(key, "changed", "app", before, after, tuple(field_changes(before, after)))


def effects(before: dict[str, Any], *edits: Edit) -> list[tuple[str, str, tuple[str, ...]]]:
    """(effect, reason, fields) of each warning for `before` changed by `edits`."""
    return [(found.effect, found.reason, found.fields) for found in object_effects(changed(before, *edits))]


def effect(before: dict[str, Any], *edits: Edit) -> str | None:
    """The one effect of a change, None when it has none."""
    found = effects(before, *edits)
    assert len(found) <= 1, found
    return found[0][0] if found else None


IMAGE = "spec.template.spec.containers[0].image"
NEW_IMAGE = _set(IMAGE.replace("[0]", ".0"), "nvcr.io/nim/meta/llama3-8b-instruct:1.0.4")


@pytest.mark.parametrize("workload", [STATEFULSET, DEPLOYMENT], ids=["StatefulSet", "Deployment"])
def test_a_pod_template_change_restarts_the_pods(workload: dict[str, Any]) -> None:
    [(found, reason, fields)] = effects(workload, NEW_IMAGE)
    assert (found, reason, fields) == (POD, "new image: a rolling restart of every replica", (IMAGE,))
    init = _set("spec.template.spec.initContainers", [{"name": "init", "image": "busybox:1"}])
    assert effect(workload, init) == POD
    # Another pool: the pods' node selector and tolerations.
    for edit in (_set("spec.template.spec.nodeSelector[nimgen.io/node-pool]", "h100"),
                 _set("spec.template.spec.tolerations", []),
                 _set("spec.template.spec.affinity", {"nodeAffinity": {}})):
        [(found, reason, _)] = effects(workload, edit)
        assert found == POD and reason.startswith("new node placement (another node pool)")
    for edit in (_set("spec.template.spec.containers.0.env.0.value", "4096"),
                 _set("spec.template.metadata.annotations[karpenter.sh/do-not-disrupt]", "false"),
                 _set("spec.template.metadata.labels.extra", "x")):
        [(found, reason, _)] = effects(workload, edit)
        assert (found, reason) == (POD, "pod template changed: a rolling restart of every replica")
    # An image with its version label: one warning, the image's reason, the image first.
    [(found, reason, fields)] = effects(workload, NEW_IMAGE,
                                       _set("spec.template.metadata.labels[app.kubernetes.io/version]", "1.0.4"))
    assert reason.startswith("new image")
    assert fields == (IMAGE, 'spec.template.metadata.labels["app.kubernetes.io/version"]')
    # The workload's own labels, replicas and rollout settings change in place.
    for edit in (_set("metadata.labels[app.kubernetes.io/version]", "1.0.4"), _set("spec.replicas", 3),
                 _set("spec.revisionHistoryLimit", 3)):
        assert effect(workload, edit) is None


@pytest.mark.parametrize(("edit", "expected"), [
    (_set("spec.updateStrategy.rollingUpdate.partition", 1), None),
    (_set("spec.minReadySeconds", 10), None),
    (_set("spec.ordinals", {"start": 1}), None),
    (_set("spec.persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Delete"}), None),
    (_set("spec.serviceName", "m-peers"), OBJECT),
    (_set("spec.podManagementPolicy", "OrderedReady"), OBJECT),
    (_set("spec.selector.matchLabels[app.kubernetes.io/name]", "nim-llm"), OBJECT),
    (_set("spec.volumeClaimTemplates", [{"metadata": {"name": "cache"}, "spec": {"storageClassName": "gp3"}}]),
     OBJECT),
], ids=lambda value: value if isinstance(value, str) or value is None else "")
def test_statefulset_fields_other_than_the_mutable_ones_force_a_replacement(edit: Edit, expected: str | None) -> None:
    found = effects(STATEFULSET, edit)
    assert [item[0] for item in found] == ([expected] if expected else [])
    if expected:
        assert found[0][1].startswith("immutable StatefulSet field: Argo CD's sync fails until the object is deleted")


def test_a_replacement_comes_before_a_restart_of_the_same_object() -> None:
    found = effects(STATEFULSET, NEW_IMAGE, _set("spec.serviceName", "m-peers"))
    assert [(item[0], item[2]) for item in found] == [(OBJECT, ("spec.serviceName",)), (POD, (IMAGE,))]


def test_deployment_selector_is_immutable_its_strategy_is_not() -> None:
    [(found, reason, fields)] = effects(DEPLOYMENT, _set("spec.selector.matchLabels.tier", "gpu"))
    assert (found, fields) == (OBJECT, ('spec.selector.matchLabels.tier',))
    assert reason == "spec.selector is immutable: Argo CD's sync fails until the object is deleted and created again"
    assert effect(DEPLOYMENT, _set("spec.strategy", {"type": "Recreate"})) is None
    assert effect(DEPLOYMENT, _set("spec.serviceName", "x")) is None  # StatefulSet-only rule


def test_job_template_is_immutable_unless_argo_cd_runs_it_as_a_hook() -> None:
    assert effect(JOB, NEW_IMAGE) == OBJECT
    assert effect(JOB, _set("spec.backoffLimit", 3)) is None
    for hook in ("argocd.argoproj.io/hook", "helm.sh/hook"):
        hooked = {**JOB, "metadata": {**JOB["metadata"], "annotations": {hook: "PreSync"}}}
        assert effect(hooked, NEW_IMAGE) is None  # a hook is created anew on every sync
    assert effect(STATEFULSET, _set("metadata.annotations", {"helm.sh/hook": "pre-install"}), NEW_IMAGE) is None


@pytest.mark.parametrize(("edit", "expected"), [
    (_set("spec.resources.requests.storage", "1Ti"), None),  # grows in place
    (_set("spec.resources.requests.storage", "500Gi"), None),
    (_set("spec.resources.requests.storage", "512000Mi"), None),  # the same size, spelt otherwise: no shrink
    (_set("spec.resources.requests.storage", "100Gi"), OBJECT),  # a claim cannot shrink
    (_set("spec.resources.requests.storage", "lots"), OBJECT),  # unreadable: assume the worst
    (_set("spec.storageClassName", "nimgen-gp3"), OBJECT),
    (_set("spec.accessModes", ["ReadWriteOnce"]), OBJECT),
    (_set("spec.volumeMode", "Block"), OBJECT),
    (_set("spec.volumeAttributesClassName", "fast"), None),
    (_set("metadata.annotations", {"argocd.argoproj.io/sync-options": "Delete=false"}), None),
], ids=lambda value: value if isinstance(value, str) or value is None else "")
def test_claims_grow_in_place_and_are_otherwise_immutable(edit: Edit, expected: str | None) -> None:
    assert effect(CLAIM, edit) == expected


def test_claim_storage_class_reason_warns_of_an_empty_volume() -> None:
    [(_, reason, fields)] = effects(CLAIM, _set("spec.storageClassName", "nimgen-gp3"))
    assert fields == ("spec.storageClassName",) and reason.endswith("with a new, empty volume")
    assert reason.startswith("a claim's storage class is immutable")


def test_service_cluster_ip_and_storage_class_fields_are_immutable() -> None:
    assert effect(SERVICE, _set("spec.clusterIP", ...)) == OBJECT  # headless no more
    assert effect(SERVICE, _set("spec.clusterIPs", ["10.0.0.1"])) == OBJECT
    assert effect(SERVICE, _set("spec.ports.0.port", 8080)) is None
    for edit in (_set("parameters.type", "io2"), _set("provisioner", "efs.csi.aws.com"),
                 _set("reclaimPolicy", "Retain"), _set("volumeBindingMode", "Immediate")):
        assert effect(STORAGE_CLASS, edit) == OBJECT
    assert effect(STORAGE_CLASS, _set("allowVolumeExpansion", False)) is None


@pytest.mark.parametrize(("edit", "expected"), [
    # Behavioural fields: Karpenter's docs list them as never drifting nodes.
    (_set("spec.weight", 10), None),
    (_set("spec.limits[nvidia.com/gpu]", "16"), None),
    (_set("spec.disruption.consolidateAfter", "1h"), None),
    (_set("spec.disruption.budgets", [{"nodes": "0"}]), None),
    (_set("metadata.labels.a", "c"), None),
    # The node template: drift.
    (_set("spec.template.metadata.labels[nimgen.io/node-pool]", "a10x"), NODES),
    (_set("spec.template.spec.taints", []), NODES),
    (_set("spec.template.spec.expireAfter", "336h"), NODES),
    (_set("spec.template.spec.terminationGracePeriod", "1h"), NODES),
    (_set("spec.template.spec.nodeClassRef.name", "a10x"), NODES),
    # Requirements drift only nodes that no longer meet them.
    (_set("spec.template.spec.requirements.0.values", ["g5", "g6"]), None),  # wider
    (_set("spec.template.spec.requirements.1.values", ["on-demand", "spot"]), None),  # same set
    (_set("spec.template.spec.requirements.0", {"key": "karpenter.k8s.aws/instance-family", "operator": "Exists"}),
     None),
    (_set("spec.template.spec.requirements.2.values", ["metal"]), None),  # NotIn fewer: wider
    (_set("spec.template.spec.requirements.2", ...), None),  # a constraint less
    (_set("spec.template.spec.requirements.0.minValues", 1), None),
    (_set("spec.template.spec.requirements.1.values", ["on-demand"]), NODES),  # Spot nodes go
    (_set("spec.template.spec.requirements.2.values", ["metal", "nano", "micro"]), NODES),
    (_set("spec.template.spec.requirements.0.operator", "NotIn"), NODES),
    (_set("spec.template.spec.requirements.3", {"key": "nimgen.io/capacity-spread", "operator": "In",
                                                "values": ["2"]}), NODES),  # a new key
    (_set("spec.template.spec.requirements.3", {"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                                                "values": ["g5"]}), NODES),  # a repeated key: not provably wider
], ids=lambda value: value if isinstance(value, str) or value is None else "")
def test_nodepool_drift(edit: Edit, expected: str | None) -> None:
    assert effect(NODEPOOL, edit) == expected


def test_nodepool_reasons() -> None:
    [(_, reason, fields)] = effects(NODEPOOL, _set("spec.template.spec.requirements.1.values", ["on-demand"]))
    assert fields == ("spec.template.spec.requirements[1].values[0]", "spec.template.spec.requirements[1].values[1]")
    assert reason.startswith("Karpenter drift: nodes that no longer meet the requirements are replaced")
    [(_, reason, _)] = effects(NODEPOOL, _set("spec.template.spec.taints", []))
    assert reason == "Karpenter drift: every node of the pool is replaced, its pods restart elsewhere"
    # Some nodes and every node: every node tells more, whatever the rules' order.
    [(_, reason, fields)] = effects(NODEPOOL, _set("spec.template.spec.requirements.1.values", ["on-demand"]),
                                    _set("spec.template.spec.taints.0.value", "yes"))
    assert reason.startswith("Karpenter drift: every node of the pool is replaced")
    assert fields[0] == "spec.template.spec.taints[0].value" and len(fields) == 3
    [(_, reason, fields)] = effects(NODECLASS, _set("spec.subnetSelectorTerms", [{"id": "subnet-1"}]),
                                    _set("spec.tags.team", "ml"))
    assert reason.startswith("new launch settings") and fields[0] == "spec.tags.team"


@pytest.mark.parametrize(("edit", "expected", "reason"), [
    (_set("spec.amiSelectorTerms.0.alias", "al2023@v20260714"), NODES, "new AMI"),
    (_set("spec.amiFamily", "AL2023"), NODES, "new AMI"),
    (_set("spec.blockDeviceMappings.0.ebs.volumeSize", "500Gi"), NODES, "new launch settings"),
    (_set("spec.tags.team", "ml"), NODES, "new launch settings"),
    (_set("spec.role", "OtherRole"), NODES, "new launch settings"),
    (_set("spec.metadataOptions.httpPutResponseHopLimit", 2), NODES, "new launch settings"),
    (_set("spec.subnetSelectorTerms.0.tags[karpenter.sh/discovery]", "other"), NODES, "Karpenter drift: nodes outside"),
    (_set("spec.securityGroupSelectorTerms", [{"id": "sg-1"}]), NODES, "Karpenter drift: nodes outside"),
    (_set("spec.capacityReservationSelectorTerms", [{"id": "cr-1"}]), NODES, "Karpenter drift: nodes outside"),
    (_set("spec.ipPrefixCount", 1), None, ""),  # not in Karpenter's drift hash
    (_set("metadata.labels", {"a": "b"}), None, ""),
], ids=lambda value: value if isinstance(value, str) or value is None else "")
def test_ec2nodeclass_drift(edit: Edit, expected: str | None, reason: str) -> None:
    found = effects(NODECLASS, edit)
    assert [item[0] for item in found] == ([expected] if expected else [])
    assert not found or found[0][1].startswith(reason)


def _key(obj: dict[str, Any], namespace: str = "") -> ObjectKey:
    return ObjectKey(obj["kind"], namespace, obj["metadata"]["name"], "")


def test_a_deleted_nodepool_drains_its_nodes_other_deletions_and_additions_replace_nothing() -> None:
    gone = ObjectChange(_key(NODEPOOL), "removed", "pools", NODEPOOL, None)
    [warning] = object_effects(gone)
    assert (warning.effect, warning.fields) == (NODES, ())
    assert warning.reason.startswith("NodePool deleted: Karpenter drains and terminates all its nodes")
    assert object_effects(ObjectChange(_key(NODEPOOL), "added", "pools", None, NODEPOOL)) == []
    for obj in (NODECLASS, STATEFULSET, CLAIM):
        assert object_effects(ObjectChange(_key(obj), "removed", "app", obj, None)) == []


def test_a_workload_changing_kind_is_replaced() -> None:
    def pair(old: dict[str, Any], new: dict[str, Any], new_name: str = "m") -> list[ObjectChange]:
        return [ObjectChange(_key(old, "nim"), "removed", "m", old, None),
                ObjectChange(ObjectKey(new["kind"], "nim", new_name, ""), "added", "m", None, new)]

    [warning] = replacements(pair(STATEFULSET, DEPLOYMENT))
    assert (warning.key, warning.effect, warning.fields) == (ObjectKey("Deployment", "nim", "m", ""), OBJECT, ("kind",))
    assert warning.reason == "workload kind StatefulSet → Deployment: the old pods are deleted and new ones start"
    [warning] = replacements(pair(DEPLOYMENT, STATEFULSET))
    assert warning.key.kind == "StatefulSet" and "Deployment → StatefulSet" in warning.reason
    assert replacements(pair(STATEFULSET, DEPLOYMENT, new_name="other")) == ()  # another workload, not a swap
    assert replacements(pair(NODECLASS, DEPLOYMENT)) == ()


def test_replacements_follow_the_objects_order() -> None:
    items = [changed(STATEFULSET, NEW_IMAGE), ObjectChange(_key(NODEPOOL), "removed", "pools", NODEPOOL, None),
             changed(NODECLASS, _set("spec.amiSelectorTerms.0.alias", "al2023@v20260714")), changed(CLAIM)]
    assert [(w.key.kind, w.effect) for w in replacements(items)] == [
        ("EC2NodeClass", NODES), ("NodePool", NODES), ("StatefulSet", POD)]


def test_rule_paths_match_the_field_or_anything_inside_it() -> None:
    template, image = _pattern("spec.template"), _pattern("spec.template.spec.containers[*].image")
    assert template.match("spec.template") and template.match("spec.template.spec.x")
    assert not template.match("spec.templateHash") and not template.match("xspec.template")
    assert image.match("spec.template.spec.containers[12].image")
    assert not image.match("spec.template.spec.containers[x].image")
    assert not image.match("spec.template.spec.containers[0].imagePullPolicy")
    assert _pattern("").match("") and _pattern("spec.limits").match('spec.limits["nvidia.com/gpu"]')


def test_every_rule_is_well_formed() -> None:
    for rule in RULES:
        assert rule.kinds and rule.paths and rule.reason, rule
        assert rule.change == "changed" or rule.paths == ("",), rule
        assert rule.effect in (None, POD, NODES, OBJECT), rule


def test_a_nodepool_gaining_its_node_template_drifts_its_nodes() -> None:
    bare = {key: value for key, value in NODEPOOL.items() if key != "spec"} | {"spec": {"weight": 1}}
    assert effect(bare, _set("spec.template", copy.deepcopy(NODEPOOL["spec"]["template"]))) == NODES
