"""Bootstrap closure: everything a rendered object needs exists on an empty cluster, in time.

A pod's Secrets, ConfigMaps, claims, ServiceAccount and PriorityClass, a claim's StorageClass, every
object's namespace and the CRD of every custom kind must each be one of:

- created by the tree: by the same Application (Argo CD orders kinds within one sync), or by one in an
  earlier sync wave (two Applications of one wave sync in no particular order);
- created by terraform/ before Argo CD starts (`TERRAFORM`), or built into every cluster;
- a prerequisite: implied by a setting that names an existing object (ngc.apiKeySecret without
  ngc.externalSecret) or listed under `prerequisites` in the environment file.

Anything else can never become ready on a fresh cluster and is an error naming the reference, the object
that needs it and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nimgen.components import registry
from nimgen.model import Environment, Ref
from nimgen.validation.findings import Finding, object_ref
from nimgen.validation.manifests import Applied
from nimgen.validation.sources import CLUSTER_SCOPED, AppResult, wave

# API groups the API server serves itself: their kinds need no CRD.
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io", "apiregistration.k8s.io",
    "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io", "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io", "events.k8s.io", "resource.k8s.io",
})
# In every cluster from its start.
BUILTIN = frozenset({
    Ref("Namespace", "", "default"), Ref("Namespace", "", "kube-system"), Ref("Namespace", "", "kube-public"),
    Ref("Namespace", "", "kube-node-lease"),
    Ref("PriorityClass", "", "system-node-critical"), Ref("PriorityClass", "", "system-cluster-critical"),
})
# What terraform/ creates before Argo CD syncs anything (checked against terraform/ by tests/test_closure.py).
TERRAFORM = frozenset({
    Ref("Namespace", "", "argocd"),  # argocd.tf: the argo-cd release
    Ref("Namespace", "", "external-secrets"),  # secrets.tf: the external-secrets release
})
TERRAFORM_CRD_GROUPS = {
    "argoproj.io": "the argo-cd release (argocd.tf)",
    "karpenter.sh": "the karpenter-crd release (karpenter.tf)",
    "karpenter.k8s.aws": "the karpenter-crd release (karpenter.tf)",
    "external-secrets.io": "the external-secrets release (secrets.tf)",
}
# Every namespace has these from its creation.
PER_NAMESPACE = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}


@dataclass(frozen=True)
class _Provider:
    application: str  # "" for objects applied by hand (root)
    wave: int


class _Tree:
    """Who creates what: objects by reference, namespaces Applications create, CRD groups, prerequisites."""

    def __init__(self, env: Environment, manifests: list[Applied], results: list[AppResult]) -> None:
        self.env = env
        self.apps = {str(m.obj["metadata"]["name"]): m.obj for m in manifests
                     if m.obj.get("kind") == "Application" and m.obj.get("apiVersion") == "argoproj.io/v1alpha1"}
        self.providers: dict[Ref, list[_Provider]] = {}
        self.crd_groups: dict[str, list[_Provider]] = {}
        for applied in [*manifests, *(o for r in results for o in r.objects)]:
            self._provide(applied)
        for name, app in self.apps.items():
            spec = app.get("spec") or {}
            if "CreateNamespace=true" in ((spec.get("syncPolicy") or {}).get("syncOptions") or []):
                namespace = str((spec.get("destination") or {}).get("namespace") or "")
                self._add(Ref("Namespace", "", namespace), name)
        components = registry.enabled(env)
        for component in components:
            for app_name, groups in component.crds(env).items():
                for group in groups:
                    self.crd_groups.setdefault(group, []).append(self.at(app_name))
            for app_name, refs in component.run_time_objects(env).items():
                for ref in refs:
                    self._add(ref, app_name)
        self.needs = {name: refs for component in components for name, refs in component.needs(env).items()}
        self.prerequisites = {p.ref: p.why for component in components for p in component.prerequisites(env)}
        self.prerequisites.update({p.ref: p.why for p in env.prerequisites})
        self.late: set[tuple[str, str]] = set()  # (consumer, provider) Applications of late references

    def at(self, application: str) -> _Provider:
        app = self.apps.get(application)
        return _Provider(application, wave(app) if app is not None else 0)

    def _add(self, ref: Ref, application: str) -> None:
        self.providers.setdefault(ref, []).append(self.at(application))

    def _provide(self, applied: Applied) -> None:
        obj, kind = applied.obj, str(applied.obj.get("kind") or "")
        meta = obj.get("metadata") or {}
        namespace = "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or "")
        self._add(Ref(kind, namespace, str(meta.get("name") or "")), applied.application)
        if kind == "ExternalSecret":  # External Secrets Operator makes the target Secret
            target = ((obj.get("spec") or {}).get("target") or {}).get("name") or meta.get("name")
            self._add(Ref("Secret", namespace, str(target)), applied.application)
        if kind == "CustomResourceDefinition":
            self.crd_groups.setdefault(str((obj.get("spec") or {}).get("group") or ""), []).append(
                self.at(applied.application))

    def known(self, ref: Ref) -> str:
        """Why `ref` exists without the tree ("" when it does not)."""
        if ref in BUILTIN or (ref.kind, ref.name) in PER_NAMESPACE:
            return "built in"
        if ref in TERRAFORM:
            return "terraform/"
        return "prerequisite" if ref in self.prerequisites else ""

    def in_time(self, providers: list[_Provider], consumer: str) -> bool:
        """Some provider syncs with the consumer or in an earlier wave (or by hand, before the root)."""
        at = self.at(consumer).wave
        return any(p.application in ("", consumer) or (p.application in self.apps and p.wave < at)
                   for p in providers)


def _pod_refs(spec: dict[str, Any], namespace: str, prefix: str) -> Iterator[tuple[Ref | str, str]]:
    """(reference or "default StorageClass", field path) of everything a pod spec needs to start."""
    for i, secret in enumerate(spec.get("imagePullSecrets") or []):
        yield Ref("Secret", namespace, str(secret.get("name"))), f"{prefix}.imagePullSecrets[{i}].name"
    if spec.get("serviceAccountName"):
        yield Ref("ServiceAccount", namespace, str(spec["serviceAccountName"])), f"{prefix}.serviceAccountName"
    if spec.get("priorityClassName"):
        yield Ref("PriorityClass", "", str(spec["priorityClassName"])), f"{prefix}.priorityClassName"
    for i, volume in enumerate(spec.get("volumes") or []):
        for source, kind, key in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name"),
                                  ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName")):
            ref = volume.get(source) or {}
            if ref.get(key) and not ref.get("optional"):
                yield Ref(kind, namespace, str(ref[key])), f"{prefix}.volumes[{i}].{source}.{key}"
        ephemeral = ((volume.get("ephemeral") or {}).get("volumeClaimTemplate") or {}).get("spec")
        if ephemeral is not None:  # a generic ephemeral volume: a claim made with the pod
            name = ephemeral.get("storageClassName")
            yield ((Ref("StorageClass", "", str(name)) if name else "default StorageClass"),
                   f"{prefix}.volumes[{i}].ephemeral.volumeClaimTemplate.spec.storageClassName")
        for j, projected in enumerate((volume.get("projected") or {}).get("sources") or []):
            for source, kind in (("secret", "Secret"), ("configMap", "ConfigMap")):
                ref = projected.get(source) or {}
                if ref.get("name") and not ref.get("optional"):
                    yield (Ref(kind, namespace, str(ref["name"])),
                           f"{prefix}.volumes[{i}].projected.sources[{j}].{source}.name")
    for group in ("initContainers", "containers"):
        for c, container in enumerate(spec.get(group) or []):
            at = f"{prefix}.{group}[{c}]"
            for e, env in enumerate(container.get("env") or []):
                value_from = env.get("valueFrom") or {}
                for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    ref = value_from.get(field) or {}
                    if ref.get("name") and not ref.get("optional"):
                        yield Ref(kind, namespace, str(ref["name"])), f"{at}.env[{e}].valueFrom.{field}.name"
            for e, env_from in enumerate(container.get("envFrom") or []):
                for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                    ref = env_from.get(field) or {}
                    if ref.get("name") and not ref.get("optional"):
                        yield Ref(kind, namespace, str(ref["name"])), f"{at}.envFrom[{e}].{field}.name"


def _needs(applied: Applied) -> Iterator[tuple[Ref | str, str]]:
    """(reference or "default StorageClass", field path) of what one object needs; CRDs apart."""
    obj, kind = applied.obj, applied.obj.get("kind")
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    namespace = str(meta.get("namespace") or "")
    if namespace and kind not in CLUSTER_SCOPED:
        yield Ref("Namespace", "", namespace), "metadata.namespace"
    claims = [("spec", spec)] if kind == "PersistentVolumeClaim" else [
        (f"spec.volumeClaimTemplates[{i}].spec", t.get("spec") or {}) for i, t in enumerate(spec.get("volumeClaimTemplates") or [])]
    for path, claim in claims:
        if claim.get("volumeName"):
            continue  # bound to a given PersistentVolume
        name = claim.get("storageClassName")
        yield (Ref("StorageClass", "", str(name)) if name else "default StorageClass"), f"{path}.storageClassName"
    templates = {"Deployment": "spec.template", "StatefulSet": "spec.template", "DaemonSet": "spec.template",
                 "ReplicaSet": "spec.template", "Job": "spec.template", "CronJob": "spec.jobTemplate.spec.template"}
    if kind in templates:
        template: Any = obj
        for part in templates[kind].split("."):
            template = (template or {}).get(part) or {}
        yield from _pod_refs(template.get("spec") or {}, namespace, f"{templates[kind]}.spec")
    elif kind == "Pod":
        yield from _pod_refs(spec, namespace, "spec")


def _unresolved(tree: _Tree, consumer: str, ref: Ref) -> tuple[str, str] | None:
    """(message, hint) when `ref` will not exist by the time Application `consumer` syncs (a late provider is
    recorded in `tree.late`, to find Applications that wait for each other)."""
    if tree.known(ref):
        return None
    providers = tree.providers.get(ref, [])
    if not providers:
        return (f"needs {ref}, which nothing creates: not the tree, not terraform/, not a declared prerequisite",
                ("let nimgen render it (see the environment file's options), or list it under prerequisites with "
                "who provides it"))
    if tree.in_time(providers, consumer):
        return None
    tree.late.update((consumer, p.application) for p in providers if p.application)
    makers = ", ".join(sorted({f"{p.application} (wave {p.wave})" for p in providers}))
    return ((f"needs {ref}, which {makers} creates no earlier than Application {consumer} "
            f"(wave {tree.at(consumer).wave})"),
            "give the provider a lower argocd.argoproj.io/sync-wave, or create it in the same Application")


def check(env: Environment, manifests: list[Applied], results: list[AppResult]) -> list[Finding]:
    """Every reference of the environment's objects that would never resolve on an empty cluster."""
    return _check(_Tree(env, manifests, results), manifests, results)


def check_and_order(env: Environment, manifests: list[Applied],
                    results: list[AppResult]) -> tuple[list[Finding], list[dict[str, Any]]]:
    """check() and order() from one index of the tree (what validate reports)."""
    tree = _Tree(env, manifests, results)
    return _check(tree, manifests, results), _order(tree, results)


def _check(tree: _Tree, manifests: list[Applied], results: list[AppResult]) -> list[Finding]:
    env = tree.env
    found: list[Finding] = []

    def add(application: str, obj: dict[str, Any], message: str, path: str, hint: str) -> None:
        found.append(Finding("error", "closure", message, environment=env.name, application=application,
                             obj=object_ref(obj), path=path, hint=hint))

    for applied in [*manifests, *(o for r in results for o in r.objects)]:
        for ref, path in _needs(applied):
            if isinstance(ref, str):
                add(applied.application, applied.obj, "claims a volume of the cluster's default StorageClass, which "
                    "EKS clusters created on 1.30 or later do not have", path, "name a StorageClass: nimgen's block "
                    "storage (storage.blockStorage) or one listed under prerequisites")
            elif (problem := _unresolved(tree, applied.application, ref)) is not None:
                add(applied.application, applied.obj, problem[0], path, problem[1])
        if (problem := _crd(tree, applied)) is not None:
            add(applied.application, applied.obj, problem[0], "apiVersion", problem[1])
    found.extend(_empty_namespaces(env, results))
    # What nimgen passes to upstream charts by name (existingSecret-style values), rendered offline or not.
    for result in results:
        for ref in tree.needs.get(result.name, ()):
            if (problem := _unresolved(tree, result.name, ref)) is not None:
                add(result.name, result.app, problem[0], "spec.source.helm.valuesObject", problem[1])
    for consumer, provider in sorted(tree.late):
        if consumer < provider and (provider, consumer) in tree.late:
            add(consumer, tree.apps[consumer], f"Applications {consumer} and {provider} each wait for an object the "
                "other creates: a cycle no sync order resolves", "spec", "move one of the objects into an earlier "
                "Application (or the same one)")
    return found


def _empty_namespaces(env: Environment, results: list[AppResult]) -> Iterator[Finding]:
    """An Application that creates its destination namespace but puts nothing there leaves an empty namespace
    (its objects are all cluster-scoped, or live elsewhere): point it at a namespace that exists."""
    for result in results:
        if not result.objects or result.notice or result.error:
            continue  # not rendered offline: its objects are unknown
        spec = result.app.get("spec") or {}
        if "CreateNamespace=true" not in ((spec.get("syncPolicy") or {}).get("syncOptions") or []):
            continue
        namespace = str((spec.get("destination") or {}).get("namespace") or "")
        if not any(str((o.obj.get("metadata") or {}).get("namespace") or namespace) == namespace
                   for o in result.objects if o.obj.get("kind") not in CLUSTER_SCOPED):
            yield Finding("warning", "closure", f"creates namespace {namespace} (CreateNamespace=true) but puts none "
                          "of its objects there: an empty namespace on every cluster", environment=env.name,
                          application=result.name, obj=object_ref(result.app), path="spec.destination.namespace",
                          hint="target a namespace that exists (e.g. the controller's) and drop CreateNamespace")


def _crd(tree: _Tree, applied: Applied) -> tuple[str, str] | None:
    """(message, hint) when the CRD of a custom kind will not be installed by the time the object syncs."""
    api_version = str(applied.obj.get("apiVersion") or "")
    group, kind = api_version.rpartition("/")[0], applied.obj.get("kind")
    if group in BUILTIN_GROUPS or group in TERRAFORM_CRD_GROUPS:
        return None
    providers = tree.crd_groups.get(group, [])
    if not providers:
        return (f"is a {kind} ({api_version}), whose CRD nothing installs",
                "install the CRD's chart in an earlier wave, or have terraform/ install it")
    if tree.in_time(providers, applied.application):
        return None
    makers = ", ".join(sorted({f"{p.application} (wave {p.wave})" for p in providers}))
    return ((f"is a {kind} ({api_version}), whose CRD {makers} installs no earlier than Application "
            f"{applied.application} (wave {tree.at(applied.application).wave})"),
            "give the CRD's Application a lower argocd.argoproj.io/sync-wave")


def order(env: Environment, manifests: list[Applied], results: list[AppResult]) -> list[dict[str, Any]]:
    """How an empty cluster comes up: per wave, each Application, what it creates and what it waits for
    (objects of earlier waves, of terraform/ and declared prerequisites; its own are ordered by Argo CD)."""
    return _order(_Tree(env, manifests, results), results)


def _order(tree: _Tree, results: list[AppResult]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for result in sorted(results, key=lambda r: (tree.at(r.name).wave, r.name)):
        creates: dict[str, int] = {}
        own: set[Ref] = set()
        for applied in result.objects:
            kind = str(applied.obj.get("kind") or "")
            creates[kind] = creates.get(kind, 0) + 1
            meta = applied.obj.get("metadata") or {}
            own.add(Ref(kind, "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or ""),
                        str(meta.get("name") or "")))
        waits: set[str] = set()
        needed = [ref for applied in result.objects for ref, _ in _needs(applied) if isinstance(ref, Ref)]
        for ref in [*needed, *tree.needs.get(result.name, ())]:
            if ref in own or (ref.kind, ref.name) in PER_NAMESPACE or ref in BUILTIN:
                continue
            if ref.kind == "Namespace" and result.app.get("spec", {}).get("destination", {}).get("namespace") == ref.name:
                continue  # its own CreateNamespace
            known = tree.known(ref)
            makers = sorted({p.application for p in tree.providers.get(ref, []) if p.application != result.name})
            waits.add(f"{ref} ({known or ', '.join(makers) or 'nobody'})")
        groups = {str(a.obj.get("apiVersion") or "").rpartition("/")[0] for a in result.objects}
        for group in sorted(groups - BUILTIN_GROUPS):
            makers = sorted({p.application for p in tree.crd_groups.get(group, []) if p.application != result.name})
            if group in TERRAFORM_CRD_GROUPS:
                waits.add(f"CRDs {group} (terraform/)")
            elif makers:
                waits.add(f"CRDs {group} ({', '.join(makers)})")
        steps.append({"wave": tree.at(result.name).wave, "application": result.name,
                      "creates": dict(sorted(creates.items())), "waitsFor": sorted(waits)})
    return steps


def order_text(env_name: str, steps: list[dict[str, Any]]) -> list[str]:
    """The bootstrap order as lines for people."""
    lines = [f"bootstrap order of {env_name} on an empty cluster (after terraform/ and the root Application):"]
    for step in steps:
        made = ", ".join(f"{count} {kind}" for kind, count in step["creates"].items()) or "nothing rendered offline"
        lines.append(f"  wave {step['wave']:>4}  {step['application']}: creates {made}")
        if step["waitsFor"]:
            lines.append(f"             waits for {'; '.join(step['waitsFor'])}")
    return lines
