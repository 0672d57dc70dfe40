"""Serving-safety policy: pinned images, resources, probes, non-root, and no secret value anywhere.

Applied to every pod template Argo CD will create and to every manifest and Helm value in the tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import Any

from nimgen.components import registry
from nimgen.errors import field_path
from nimgen.model import Environment, Ref
from nimgen.secrets import find_secrets, may_hold_secrets
from nimgen.validation.crossref import Pod, pods
from nimgen.validation.findings import Finding, guarded, object_ref
from nimgen.validation.manifests import Applied

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
# A finding's path inside its pod spec: containers[0] or initContainers[0], then any field.
_CONTAINER_PATH = re.compile(r"(initContainers|containers)\[([0-9]+)\]")
# (Application, rule, workload, container) -> why the components waive it.
Waivers = dict[tuple[str, str, Ref, str], str]


def _finding(env: Environment, applied: Applied, check: str, message: str, path: str, hint: str) -> Finding:
    return Finding("error", f"policy/{check}", message, environment=env.name, application=applied.application,
                   obj=object_ref(applied.obj), path=path, hint=hint)


def _containers(pod: Pod) -> Iterator[tuple[str, dict[str, Any]]]:
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod.spec.get(group) or []):
            yield f"{pod.prefix}.{group}[{i}]", container


def _pinned(env: Environment, pod: Pod) -> Iterator[Finding]:
    for path, container in _containers(pod):
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if tag in ("", "latest"):
            yield _finding(env, pod.owner, "pinned-image", f"image {image!r} is not pinned to a version",
                           f"{path}.image", "use an exact tag (e.g. :1.0.3) or a digest (@sha256:...)")


def _resources(env: Environment, pod: Pod) -> Iterator[Finding]:
    for path, container in _containers(pod):
        resources = container.get("resources") or {}
        missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in (resources.get("requests") or {})]
        missing += ["limits.memory"] if "memory" not in (resources.get("limits") or {}) else []
        if missing:
            yield _finding(env, pod.owner, "resources", f"container {container.get('name')!r} sets no "
                           f"{', '.join(missing)}", f"{path}.resources",
                           "set CPU and memory requests and a memory limit (the scheduler and the OOM killer rely on them)")


def _probes(env: Environment, pod: Pod) -> Iterator[Finding]:
    if pod.owner.obj.get("kind") not in LONG_RUNNING:
        return
    for path, container in _containers(pod):
        if path.split(".")[-1].startswith("initContainers"):
            continue
        missing = [p for p in ("readinessProbe", "livenessProbe") if p not in container]
        if missing:
            yield _finding(env, pod.owner, "probes", f"container {container.get('name')!r} has no "
                           f"{' or '.join(missing)}", path,
                           "a server without probes gets traffic before it is ready and is never restarted when stuck")


def _non_root(env: Environment, pod: Pod) -> Iterator[Finding]:
    pod_context = pod.spec.get("securityContext") or {}
    pod_ok = pod_context.get("runAsNonRoot") is True or (pod_context.get("runAsUser") or 0) > 0
    for path, container in _containers(pod):
        context = container.get("securityContext") or {}
        if context.get("runAsNonRoot") is False or context.get("runAsUser") == 0:
            ok = False
        else:
            ok = pod_ok or context.get("runAsNonRoot") is True or (context.get("runAsUser") or 0) > 0
        if not ok:
            yield _finding(env, pod.owner, "non-root", f"container {container.get('name')!r} may run as root",
                           f"{path}.securityContext", "set runAsNonRoot: true (and a runAsUser) in the pod's "
                           "securityContext")


def _plaintext(env: Environment, applied: Applied, generated: frozenset[tuple[str, str, str]] = frozenset()
               ) -> Iterator[Finding]:
    obj = applied.obj
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1" and (obj.get("data") or obj.get("stringData")):
        meta = obj.get("metadata") or {}
        if (applied.application, str(meta.get("namespace", "")), str(meta.get("name", ""))) in generated:
            return  # a value the chart makes when it renders (a self-signed certificate): nothing of it is in Git
        yield _finding(env, applied, "no-plaintext-secret", "a Secret with its values would be committed to Git",
                       "data", "reference secrets (an existing Secret, an ExternalSecret); never render their values")
        return
    if not may_hold_secrets(obj):
        return
    for path, what in find_secrets(obj):
        yield _finding(env, applied, "no-plaintext-secret", f"{what} is in the manifest", field_path(path),
                       "move it to a Secret created outside Git and reference it (secretKeyRef, existingSecret)")


def _container(pod: Pod, path: str) -> str:
    """The name of the container a finding's path points into ("" when it points at none)."""
    match = _CONTAINER_PATH.match(path.removeprefix(f"{pod.prefix}."))
    if match is None:
        return ""
    containers = pod.spec.get(match.group(1)) or []
    index = int(match.group(2))
    return str(containers[index].get("name")) if index < len(containers) else ""


def _waived(finding: Finding, pod: Pod, waived: Waivers) -> Finding:
    """A finding a component waives, as a notice with its reason; any other as it is."""
    # A pod's owner passed its shape check: it has a kind and metadata (a name, or only a generateName).
    owner = Ref(str(pod.owner.obj["kind"]), pod.namespace, str(pod.owner.obj["metadata"].get("name")))
    reason = waived.get((pod.owner.application, finding.check.removeprefix("policy/"), owner,
                         _container(pod, finding.path)))
    if reason is None:
        return finding
    return replace(finding, severity="notice", message=f"{finding.message} (waived: {reason})")


def _pod_findings(env: Environment, objects: list[Applied], waived: Waivers) -> Iterator[Finding]:
    for pod in pods(objects):
        for rule in (_pinned, _resources, _probes, _non_root):
            for finding in guarded(f"policy/{rule.__name__.strip('_').replace('_', '-')}", env.name,
                                   partial(rule, env, pod)):
                yield _waived(finding, pod, waived)


def waivers(env: Environment) -> Waivers:
    """(Application, rule, workload, container) -> why, of every rule the environment's components waive."""
    return {(app, waiver.rule, waiver.workload, waiver.container): waiver.reason
            for component in registry.enabled(env) for app, listed in component.policy_waivers(env).items()
            for waiver in listed}


def generated_secrets(env: Environment) -> frozenset[tuple[str, str, str]]:
    """(Application, namespace, name) of the Secrets the environment's upstream charts generate as they render."""
    return frozenset((app, ref.namespace, ref.name) for component in registry.enabled(env)
                     for app, refs in component.generated_secrets(env).items() for ref in refs)


def check(env: Environment, valid: list[Applied], everything: list[Applied],
          generated: frozenset[tuple[str, str, str]] = frozenset(), waived: Waivers | None = None) -> list[Finding]:
    """Every policy finding of one environment: pod rules on the objects that passed their schema (those the
    components waive as notices), the secret rule on every object (a secret in a malformed manifest is committed
    all the same) but the Secrets charts generate (`generated_secrets`)."""
    found = guarded("policy", env.name, partial(_pod_findings, env, valid, waived or {}))
    # Helm values are checked where they are written (the Applications), manifests where they land.
    for applied in everything:
        found.extend(guarded("policy/no-plaintext-secret", env.name, partial(_plaintext, env, applied, generated)))
    return found
