"""Cross-object checks: links between manifests that no schema can see.

Services select pods, pods mount claims that exist, autoscalers target workloads that exist,
ServiceMonitors select Services and ports, AppProjects admit what their Applications deploy, GPU
pods land on a NodePool, and sync waves create storage and pools before the models that need them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

from nimgen.model import Environment
from nimgen.validation import gatewayrules, runtime
from nimgen.validation.findings import Finding, guarded, object_ref
from nimgen.validation.manifests import Applied
from nimgen.validation.sources import CLUSTER_SCOPED, AppResult, wave

POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
GPU = "nvidia.com/gpu"
# Labels Karpenter sets on every node whether or not a NodePool names them.
WELL_KNOWN_LABELS = {"kubernetes.io/arch", "kubernetes.io/os", "node.kubernetes.io/instance-type",
                     "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "karpenter.sh/capacity-type",
                     "karpenter.sh/nodepool", "kubernetes.io/hostname"}


@dataclass(frozen=True)
class Pod:
    """A pod template and the object that owns it."""

    owner: Applied
    labels: dict[str, str]
    spec: dict[str, Any]
    prefix: str  # field path of the pod spec inside the owner

    @property
    def namespace(self) -> str:
        return str(self.owner.obj["metadata"].get("namespace", ""))


def pods(objects: list[Applied]) -> list[Pod]:
    """Every pod template among the objects."""
    found = []
    for applied in objects:
        obj, kind = applied.obj, applied.obj.get("kind")
        if kind in POD_OWNERS:
            template = (obj.get("spec") or {}).get("template") or {}
            prefix = "spec.template.spec"
        elif kind == "CronJob":
            template = (((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
            prefix = "spec.jobTemplate.spec.template.spec"
        elif kind == "Pod":
            template, prefix = obj, "spec"
        else:
            continue
        labels = (template.get("metadata") or {}).get("labels") or {}
        found.append(Pod(applied, dict(labels), template.get("spec") or {}, prefix))
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _fewest(by_label: dict[tuple[object, object], list[Any]], labels: Any, everything: list[Any]) -> list[Any]:
    """The objects that carry the rarest of `labels` (a superset of those that carry them all); `everything` when
    a label cannot be looked up."""
    pairs = _label_keys(labels)
    if not pairs or len(pairs) != len(labels):
        return everything
    return min((by_label.get(pair, []) for pair in pairs), key=len)


def _label_keys(labels: Any) -> list[tuple[object, object]]:
    """The (key, value) pairs a selector can be looked up by (hashable ones: a malformed manifest may hold others)."""
    if not isinstance(labels, dict):
        return []
    return [(key, value) for key, value in labels.items() if isinstance(value, (str, int, float, bool, type(None)))]


class _Index:
    """The environment's objects, looked up by kind, place and label: a thousand models' objects are matched in
    one pass each, not each against all."""

    def __init__(self, env: Environment, manifests: list[Applied], results: list[AppResult]) -> None:
        self.env = env
        self.rendered = [obj for result in results for obj in result.objects]
        self.everything = manifests + self.rendered
        self.pods = pods(self.everything)
        # What the cluster adds (an operator's pods, Kubernetes' own Service): selectors may match it, no other
        # rule checks it.
        made = runtime.stand_ins(self.everything)
        self.selectable = self.pods + pods(made)
        self.apps = {str(m.obj["metadata"]["name"]): m for m in manifests
                     if m.obj.get("kind") == "Application" and m.obj.get("apiVersion") == "argoproj.io/v1alpha1"}
        self.results = results
        self._kinds: dict[object, list[Applied]] = {}
        self._places: dict[tuple[str, object, object, object], Applied] = {}
        for applied in self.everything + made:
            obj, meta = applied.obj, applied.obj["metadata"]
            self._kinds.setdefault(obj.get("kind"), []).append(applied)
            place = (_group(str(obj.get("apiVersion", ""))), obj.get("kind"), meta.get("namespace", ""), meta.get("name"))
            if all(isinstance(part, str) for part in place):
                self._places.setdefault(place, applied)
        self.pods_by_label: dict[tuple[object, object], list[Pod]] = {}
        for pod in self.selectable:
            for pair in _label_keys(pod.labels):
                self.pods_by_label.setdefault(pair, []).append(pod)

    def of_kind(self, kind: str) -> Iterator[Applied]:
        return iter(self._kinds.get(kind, []))

    def find(self, group: str, kind: str, namespace: str, name: str) -> Applied | None:
        return self._places.get((group, kind, namespace, name))

    def pods_with(self, selector: dict[str, Any]) -> list[Pod]:
        """Pods that may carry every label of `selector`: those with its rarest label (all when it has none)."""
        return _fewest(self.pods_by_label, selector, self.selectable)

    def finding(self, applied: Applied, check: str, message: str, path: str = "", hint: str = "") -> Finding:
        return Finding("error", check, message, environment=self.env.name, application=applied.application,
                       obj=object_ref(applied.obj), path=path, hint=hint)


def _services(index: _Index) -> Iterator[Finding]:
    for service in index.of_kind("Service"):
        selector = (service.obj.get("spec") or {}).get("selector")
        if not selector:
            continue
        namespace = service.obj["metadata"].get("namespace", "")
        chosen = [p for p in index.pods_with(selector)
                  if p.namespace == namespace and selector.items() <= p.labels.items()]
        if not chosen:
            yield index.finding(service, "service-selector",
                                f"selects no pod: no pod template in namespace {namespace} has labels {selector}",
                                "spec.selector", "make the selector match the workload's pod template labels")
            continue
        named = {port.get("name") for p in chosen for c in p.spec.get("containers") or [] for port in c.get("ports") or []}
        for i, port in enumerate(service.obj["spec"].get("ports") or []):
            target = port.get("targetPort")
            if isinstance(target, str) and target not in named:
                yield index.finding(service, "service-selector", f"targetPort {target!r} is no container port of "
                                    "the pods it selects", f"spec.ports[{i}].targetPort")


def _claims(index: _Index) -> Iterator[Finding]:
    claims = {(c.obj["metadata"].get("namespace", ""), c.obj["metadata"].get("name")): c
              for c in index.of_kind("PersistentVolumeClaim")}
    for pod in index.pods:
        templates = {t["metadata"]["name"] for t in (pod.owner.obj.get("spec") or {}).get("volumeClaimTemplates") or []}
        volumes = {v.get("name") for v in pod.spec.get("volumes") or []}
        for i, volume in enumerate(pod.spec.get("volumes") or []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and (pod.namespace, claim) not in claims:
                yield index.finding(pod.owner, "claim", f"mounts claim {claim!r}, which no manifest of the environment "
                                    f"creates in namespace {pod.namespace}",
                                    f"{pod.prefix}.volumes[{i}].persistentVolumeClaim.claimName",
                                    "let nimgen create it (storage.modelCache) or point cache.claimName at a claim "
                                    "in the model's namespace")
        for c, container in enumerate(pod.spec.get("containers") or []):
            for m, mount in enumerate(container.get("volumeMounts") or []):
                if mount.get("name") not in volumes | templates:
                    yield index.finding(pod.owner, "claim", f"mounts volume {mount.get('name')!r}, which is neither a "
                                        "volume of the pod nor a claim template",
                                        f"{pod.prefix}.containers[{c}].volumeMounts[{m}].name")


def _scale_targets(index: _Index) -> Iterator[Finding]:
    for kind, group_default in (("HorizontalPodAutoscaler", None), ("ScaledObject", "apps/v1")):
        for scaler in index.of_kind(kind):
            ref = (scaler.obj.get("spec") or {}).get("scaleTargetRef") or {}
            api_version = ref.get("apiVersion") or group_default or ""
            target_kind = ref.get("kind") or "Deployment"
            namespace = scaler.obj["metadata"].get("namespace", "")
            if index.find(_group(api_version), target_kind, namespace, str(ref.get("name", ""))) is None:
                yield index.finding(scaler, "scale-target", f"scales {target_kind} {namespace}/{ref.get('name')}, which "
                                    "the environment does not create", "spec.scaleTargetRef")


def _service_monitors(index: _Index) -> Iterator[Finding]:
    services = list(index.of_kind("Service"))
    by_label: dict[tuple[object, object], list[Applied]] = {}
    for service in services:
        for pair in _label_keys(service.obj["metadata"].get("labels")):
            by_label.setdefault(pair, []).append(service)
    for monitor in index.of_kind("ServiceMonitor"):
        spec = monitor.obj.get("spec") or {}
        scope = spec.get("namespaceSelector") or {}
        own = monitor.obj["metadata"].get("namespace", "")
        namespaces = None if scope.get("any") else set(scope.get("matchNames") or [own])
        selector = spec.get("selector") or {}
        match_labels = selector.get("matchLabels") or {} if isinstance(selector, dict) else {}
        # Only Services with the selector's rarest label can match it; without matchLabels, any can.
        candidates = _fewest(by_label, match_labels, services)
        chosen = [s for s in candidates if (namespaces is None or s.obj["metadata"].get("namespace") in namespaces)
                  and selects(selector, s.obj["metadata"].get("labels") or {})]
        if not chosen:
            yield index.finding(monitor, "servicemonitor", "selects no Service", "spec.selector",
                                "match the labels of the Service that exposes the metrics port")
            continue
        for i, endpoint in enumerate(spec.get("endpoints") or []):
            port = endpoint.get("port")
            if port and not any(p.get("name") == port for s in chosen for p in s.obj["spec"].get("ports") or []):
                yield index.finding(monitor, "servicemonitor", f"port {port!r} is not a named port of the Services "
                                    "it selects", f"spec.endpoints[{i}].port")


def _denied(value: str, patterns: list[str]) -> bool:
    """Argo CD's project globs: allowed when a pattern matches and no `!` pattern does."""
    allowed = any(fnmatchcase(value, p) for p in patterns if not p.startswith("!"))
    return not allowed or any(fnmatchcase(value, p[1:]) for p in patterns if p.startswith("!"))


def _kind_allowed(group: str, kind: str, rules: list[dict[str, str]]) -> bool:
    return any(fnmatchcase(group, r.get("group", "")) and fnmatchcase(kind, r.get("kind", "")) for r in rules)


def _projects(index: _Index) -> Iterator[Finding]:
    projects = {str(p.obj["metadata"]["name"]): p.obj for p in index.of_kind("AppProject")}
    by_app = {result.name: result for result in index.results}
    for name, app in index.apps.items():
        spec = app.obj.get("spec") or {}
        project = projects.get(spec.get("project", ""))
        if project is None:
            continue  # a project created outside this tree (the root's) is not nimgen's to check
        rules = project.get("spec") or {}
        destinations = [d.get("namespace", "") for d in rules.get("destinations") or []]
        target = (spec.get("destination") or {}).get("namespace", "")
        if _denied(target, destinations):
            yield index.finding(app, "project", f"deploys to namespace {target!r}, which AppProject "
                                f"{spec['project']} does not admit", "spec.destination.namespace",
                                "add the namespace to the project's destinations")
        repo = (spec.get("source") or {}).get("repoURL", "")
        if repo and _denied(repo, list(rules.get("sourceRepos") or [])):
            yield index.finding(app, "project", f"source {repo} is not in AppProject {spec['project']}'s sourceRepos",
                                "spec.source.repoURL")
        result = by_app.get(name)
        for applied in result.objects if result else []:
            yield from _admitted(index, applied, rules, destinations, spec["project"])


def _admitted(index: _Index, applied: Applied, rules: dict[str, Any], destinations: list[str],
              project: str) -> Iterator[Finding]:
    obj = applied.obj
    group, kind = _group(str(obj.get("apiVersion", ""))), str(obj.get("kind", ""))
    if kind in CLUSTER_SCOPED:
        if not _kind_allowed(group, kind, rules.get("clusterResourceWhitelist") or []):
            yield index.finding(applied, "project", f"cluster-scoped {group or 'core'}/{kind} is not in AppProject "
                                f"{project}'s clusterResourceWhitelist: Argo CD refuses to sync it")
        return
    allowed = rules.get("namespaceResourceWhitelist")
    if allowed is not None and not _kind_allowed(group, kind, allowed):
        yield index.finding(applied, "project", f"{group or 'core'}/{kind} is not in AppProject {project}'s "
                            "namespaceResourceWhitelist: Argo CD refuses to sync it")
    namespace = obj["metadata"].get("namespace", "")
    if _denied(namespace, destinations):
        yield index.finding(applied, "project", f"lands in namespace {namespace!r}, which AppProject {project} "
                            "does not admit", "metadata.namespace")


def _pool_admits(pool: dict[str, Any], key: str, operator: str, values: list[str]) -> bool:
    template = pool.get("spec", {}).get("template", {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    requirements = {r["key"]: r for r in (template.get("spec") or {}).get("requirements") or []}
    if key in labels:
        offered = {labels[key]}
    elif key in requirements and requirements[key]["operator"] == "In":
        offered = set(requirements[key].get("values") or [])
    elif key in WELL_KNOWN_LABELS or key in requirements:
        return operator != "DoesNotExist"  # Karpenter may pick any value the pool does not rule out
    else:
        return operator == "DoesNotExist"
    if operator == "In":
        return bool(offered & set(values))
    if operator == "NotIn":
        return not offered <= set(values)
    return operator == "Exists"


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists" and (not toleration.get("key") or toleration["key"] == taint["key"]):
            return True
        if toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _unspread_keys(pod: Pod, pool: dict[str, Any]) -> list[str]:
    """Keys of the pod's DoNotSchedule spreads the pool's nodes lack: kube-scheduler never places it on them."""
    return [c.get("topologyKey", "") for c in pod.spec.get("topologySpreadConstraints") or []
            if c.get("whenUnsatisfiable") == "DoNotSchedule" and not _pool_admits(pool, c.get("topologyKey", ""),
                                                                                 "Exists", [])]


def lands_on(pod: Pod, pool: dict[str, Any], *, spread: bool = True) -> bool:
    """Whether Karpenter could launch a node of the pool for the pod (labels, affinity, required spread, taints)."""
    for key, value in (pod.spec.get("nodeSelector") or {}).items():
        if not _pool_admits(pool, key, "In", [value]):
            return False
    affinity = ((pod.spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = affinity.get("nodeSelectorTerms") or []
    if terms and not any(all(_pool_admits(pool, e["key"], e["operator"], e.get("values") or [])
                             for e in term.get("matchExpressions") or []) for term in terms):
        return False
    if spread and _unspread_keys(pod, pool):
        return False
    taints = (pool.get("spec", {}).get("template", {}).get("spec") or {}).get("taints") or []
    return all(_tolerated(t, pod.spec.get("tolerations") or []) for t in taints
               if t.get("effect") in ("NoSchedule", "NoExecute"))


def _wants_gpu(pod: Pod) -> bool:
    return any(GPU in ((c.get("resources") or {}).get("limits") or {}) for c in pod.spec.get("containers") or [])


def _node_pools(index: _Index) -> Iterator[Finding]:
    pools = list(index.of_kind("NodePool"))
    if not pools:
        return
    pool_keys = {k for p in pools for k in ((p.obj["spec"]["template"].get("metadata") or {}).get("labels") or {})}
    for pod in index.pods:
        if not (_wants_gpu(pod) or pool_keys & set(pod.spec.get("nodeSelector") or {})):
            continue
        matched = [p for p in pools if lands_on(pod, p.obj)]
        placed = [p for p in pools if not matched and lands_on(pod, p.obj, spread=False)]
        if placed:
            keys = ", ".join(sorted({k for p in placed for k in _unspread_keys(pod, p.obj)}))
            names = ", ".join(sorted(p.obj["metadata"]["name"] for p in placed))
            yield index.finding(pod.owner, "nodepool", f"its pods spread (DoNotSchedule) over {keys}, a label "
                                f"the nodes of the NodePools they fit ({names}) do not carry: kube-scheduler never "
                                "places them", pod.prefix, "spread over a label the pool sets (nimgen.io/capacity-spread "
                                "needs a pool with spotPerOnDemand), or make the spread ScheduleAnyway")
            continue
        if not matched:
            names = ", ".join(sorted(p.obj["metadata"]["name"] for p in pools))
            yield index.finding(pod.owner, "nodepool", f"its pods fit no NodePool ({names}): node selector, "
                                "required node affinity or the pools' taints rule every one out", pod.prefix,
                                "give the pod the pool's nimgen.io/node-pool selector and the nvidia.com/gpu toleration")
            continue
        yield from _waves(index, pod, matched, "NodePool")


def _waves(index: _Index, pod: Pod, providers: list[Applied], what: str) -> Iterator[Finding]:
    """The providers of what a pod needs must sync in an earlier wave than the pod's Application."""
    consumer = index.apps.get(pod.owner.application)
    if consumer is None:
        return
    earlier = [p for p in providers if p.application == pod.owner.application
               or (p.application in index.apps and wave(index.apps[p.application].obj) < wave(consumer.obj))]
    if not earlier:
        names = ", ".join(sorted({f"{p.application} (wave {wave(index.apps[p.application].obj)})"
                                  for p in providers if p.application in index.apps})) or "no Application of the tree"
        yield index.finding(pod.owner, "sync-wave", f"Application {pod.owner.application} (wave "
                            f"{wave(consumer.obj)}) needs a {what} from {names}, which does not sync before it",
                            hint="give the provider a lower argocd.argoproj.io/sync-wave")


def _claim_waves(index: _Index) -> Iterator[Finding]:
    claims = {(c.obj["metadata"].get("namespace", ""), c.obj["metadata"].get("name")): c
              for c in index.rendered if c.obj.get("kind") == "PersistentVolumeClaim"}
    for pod in index.pods:
        for volume in pod.spec.get("volumes") or []:
            claim = claims.get((pod.namespace, (volume.get("persistentVolumeClaim") or {}).get("claimName")))
            if claim is not None:
                yield from _waves(index, pod, [claim], "PersistentVolumeClaim")


def check(env: Environment, manifests: list[Applied], results: list[AppResult]) -> list[Finding]:
    """Every cross-object finding of one environment."""
    index = _Index(env, manifests, results)
    found: list[Finding] = []
    for rule in (_services, _claims, _scale_targets, _service_monitors, _projects, _node_pools, _claim_waves,
                 *gatewayrules.RULES):
        found.extend(guarded(rule.__name__.strip("_").replace("_", "-"), env.name, partial(rule, index)))
    return found
