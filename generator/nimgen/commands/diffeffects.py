"""What a change does to running things, like `terraform plan`'s "forces replacement": rules over objects.

Each rule names a kind and a field path; the first rule that matches a changed field decides its effect:
the pods restart (a new pod template rolls every replica), the nodes are replaced (Karpenter drift, or a
NodePool deleted), or the object must be replaced (an immutable field: Argo CD's sync fails until the
object is deleted and created again). A rule without an effect marks a field that changes in place, so
that a later, broader rule does not claim it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nimgen.model import parse_quantity

if TYPE_CHECKING:
    from nimgen.commands.diff import ObjectChange, ObjectKey

Effect = Literal["restarts pods", "replaces nodes", "replaces the object"]
SEVERITY: dict[Effect, int] = {"replaces the object": 0, "replaces nodes": 1, "restarts pods": 2}
WORKLOADS = ("Deployment", "StatefulSet")
# Argo CD runs hooks (its own, and Helm's) as new objects on every sync: changing one replaces nothing.
HOOK_ANNOTATIONS = ("argocd.argoproj.io/hook", "helm.sh/hook")


@dataclass(frozen=True)
class Rule:
    """Kinds + field path (`[*]` for any list index; "" for the whole object) -> effect, and why."""

    kinds: tuple[str, ...]
    paths: tuple[str, ...]
    effect: Effect | None
    reason: str
    when: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None  # (before, after) objects
    change: Literal["changed", "removed"] = "changed"
    partial: bool = False  # only some nodes: another rule's reason with the same effect tells more


@dataclass(frozen=True)
class Replacement:
    """One warning: an object, the fields that cause it (empty: the object itself), the effect and why."""

    key: ObjectKey
    effect: Effect
    reason: str
    fields: tuple[str, ...]


def _get(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _grows(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """A claim's storage request grows (expanded in place); False when it shrinks or cannot be read."""
    sizes = [_get(obj, "spec.resources.requests.storage") for obj in (before, after)]
    try:
        old, new = (parse_quantity(str(size)) for size in sizes)
    except ValueError:
        return False
    return new >= old


def _requirements(obj: dict[str, Any]) -> dict[str, tuple[str, frozenset[str]]] | None:
    """key -> (operator, values) of a NodePool's requirements; None when a key repeats."""
    items = [item for item in _get(obj, "spec.template.spec.requirements") or [] if isinstance(item, dict)]
    found = {str(item.get("key")): (str(item.get("operator")), frozenset(map(str, item.get("values") or ())))
             for item in items}
    return found if len(found) == len(items) else None


def _widens(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Every node the old requirements admit still meets the new ones (so Karpenter finds no drift)."""
    old, new = _requirements(before), _requirements(after)
    if old is None or new is None:
        return False
    for key, (operator, values) in new.items():
        if key not in old:
            return False
        was, had = old[key]
        if not ((operator, values) == (was, had) or (operator == was == "In" and values >= had)
                or (operator == was == "NotIn" and values <= had)
                or (operator == "Exists" and was in ("In", "Exists"))):
            return False
    return True


_TEMPLATE = "spec.template.spec"
_ROLL = "a rolling restart of every replica"
_IMMUTABLE = "Argo CD's sync fails until the object is deleted and created again"
_DRIFT = "Karpenter drift"

RULES: tuple[Rule, ...] = (
    # Pods: any change to the pod template rolls every replica; some say more about why.
    Rule(WORKLOADS, (f"{_TEMPLATE}.containers[*].image", f"{_TEMPLATE}.initContainers[*].image"),
         "restarts pods", f"new image: {_ROLL}"),
    Rule(WORKLOADS, (f"{_TEMPLATE}.nodeSelector", f"{_TEMPLATE}.tolerations", f"{_TEMPLATE}.affinity"),
         "restarts pods", f"new node placement (another node pool): {_ROLL}, on other nodes"),
    Rule(WORKLOADS, ("spec.template",), "restarts pods", f"pod template changed: {_ROLL}"),
    Rule(("Deployment",), ("spec.selector",), "replaces the object",
         f"spec.selector is immutable: {_IMMUTABLE}"),
    # StatefulSet: only these spec fields may change; any other (selector, serviceName, podManagementPolicy,
    # volumeClaimTemplates) is forbidden by the API server.
    Rule(("StatefulSet",), ("spec.replicas", "spec.ordinals", "spec.updateStrategy",
                            "spec.revisionHistoryLimit", "spec.persistentVolumeClaimRetentionPolicy",
                            "spec.minReadySeconds"), None, "changes in place"),
    Rule(("StatefulSet",), ("spec",), "replaces the object",
         f"immutable StatefulSet field: {_IMMUTABLE}, which restarts every replica"),
    Rule(("Job",), ("spec.template", "spec.selector", "spec.completionMode"), "replaces the object",
         f"immutable Job field: {_IMMUTABLE}"),
    # Claims: the size may grow; nothing else changes once the claim exists.
    Rule(("PersistentVolumeClaim",), ("spec.resources.requests.storage",), None,
         "the volume expands in place", when=_grows),
    Rule(("PersistentVolumeClaim",), ("spec.volumeAttributesClassName",), None, "changes in place"),
    Rule(("PersistentVolumeClaim",), ("spec.storageClassName",), "replaces the object",
         f"a claim's storage class is immutable: {_IMMUTABLE}, with a new, empty volume"),
    Rule(("PersistentVolumeClaim",), ("spec",), "replaces the object",
         f"immutable claim field (a claim cannot shrink): {_IMMUTABLE}, with a new, empty volume"),
    Rule(("Service",), ("spec.clusterIP", "spec.clusterIPs"), "replaces the object",
         f"clusterIP is immutable (headless or not): {_IMMUTABLE}"),
    Rule(("StorageClass",), ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"),
         "replaces the object",
         f"immutable StorageClass field: {_IMMUTABLE}; existing volumes keep the old one"),
    # Karpenter: behavioural NodePool fields never drift nodes; the node template and the node class do.
    Rule(("NodePool",), ("spec.weight", "spec.limits", "spec.disruption", "spec.replicas"), None,
         "behavioural: Karpenter changes no node for it"),
    Rule(("NodePool",), ("spec.template.spec.requirements",), None,
         "wider requirements: every node still fits", when=_widens),
    Rule(("NodePool",), ("spec.template.spec.requirements",), "replaces nodes",
         f"{_DRIFT}: nodes that no longer meet the requirements are replaced, their pods restart elsewhere",
         partial=True),
    Rule(("NodePool",), ("spec.template",), "replaces nodes",
         f"{_DRIFT}: every node of the pool is replaced, its pods restart elsewhere"),
    Rule(("EC2NodeClass",), ("spec.ipPrefixCount",), None, "not part of Karpenter's drift hash"),
    Rule(("EC2NodeClass",), ("spec.amiSelectorTerms", "spec.amiFamily"), "replaces nodes",
         f"new AMI, {_DRIFT}: every node of its pools is replaced, their pods restart elsewhere"),
    Rule(("EC2NodeClass",), ("spec.subnetSelectorTerms", "spec.securityGroupSelectorTerms",
                             "spec.capacityReservationSelectorTerms"), "replaces nodes",
         f"{_DRIFT}: nodes outside the newly selected subnets, security groups or reservations are replaced",
         partial=True),
    Rule(("EC2NodeClass",), ("spec",), "replaces nodes",
         f"new launch settings, {_DRIFT}: every node of its pools is replaced, their pods restart elsewhere"),
    Rule(("NodePool",), ("",), "replaces nodes",
         "NodePool deleted: Karpenter drains and terminates all its nodes (a renamed pool starts new ones)",
         change="removed"),
)


def _pattern(path: str) -> re.Pattern[str]:
    """The rule path as a regex on diff's field paths: the field itself or anything inside it."""
    return re.compile(re.escape(path).replace(r"\[\*\]", r"\[[0-9]+\]") + r"(?=$|[.\[])")


_PATTERNS = {path: _pattern(path) for rule in RULES for path in rule.paths}


def _is_hook(obj: dict[str, Any] | None) -> bool:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return any(name in annotations for name in HOOK_ANNOTATIONS)


def _rule_for(item: ObjectChange, path: str) -> tuple[int, Rule] | None:
    """The first rule that matches a field of a changed object (or a removed object when path is "")."""
    for index, rule in enumerate(RULES):
        if item.key.kind not in rule.kinds or rule.change != item.change:
            continue
        if not any(_PATTERNS[pattern].match(path) for pattern in rule.paths):
            continue
        if rule.when is not None and not rule.when(item.before or {}, item.after or {}):
            continue
        return index, rule
    return None


def object_effects(item: ObjectChange) -> list[Replacement]:
    """The warnings for one added, removed or changed object: one per effect, with the reason of the
    first rule that matched (a rule about every node before one about some), its fields first."""
    if _is_hook(item.before) or _is_hook(item.after):
        return []
    paths = [change.path for change in item.fields] if item.change == "changed" else [""]
    found: dict[Effect, list[tuple[bool, int, str, str]]] = {}
    for path in paths:
        index, rule = _rule_for(item, path) or (0, None)
        if rule is not None and rule.effect is not None:
            found.setdefault(rule.effect, []).append((rule.partial, index, path, rule.reason))
    return [Replacement(item.key, effect, min(hits)[3], tuple(hit[2] for hit in sorted(hits) if hit[2]))
            for effect, hits in sorted(found.items(), key=lambda pair: SEVERITY[pair[0]])]


def _kind_swaps(objects: Sequence[ObjectChange]) -> list[Replacement]:
    """A workload whose kind changes (StatefulSet <-> Deployment): its old pods go, new ones start."""
    removed = {(item.key.namespace, item.key.name): item.key.kind for item in objects
               if item.change == "removed" and item.key.kind in WORKLOADS}
    return [Replacement(item.key, "replaces the object",
                        f"workload kind {removed[item.key.namespace, item.key.name]} → {item.key.kind}: "
                        "the old pods are deleted and new ones start", ("kind",))
            for item in objects if item.change == "added" and item.key.kind in WORKLOADS
            and removed.get((item.key.namespace, item.key.name), item.key.kind) != item.key.kind]


def replacements(objects: Iterable[ObjectChange]) -> tuple[Replacement, ...]:
    """Every warning of a diff, in the objects' order, the most severe effect of an object first."""
    items = list(objects)
    found = [warning for item in items for warning in object_effects(item)] + _kind_swaps(items)
    return tuple(sorted(found, key=lambda warning: (warning.key, SEVERITY[warning.effect])))
