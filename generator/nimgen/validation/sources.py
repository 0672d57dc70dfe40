"""The committed tree as Argo CD reads it: an environment's Applications, and what each one applies.

An Application whose chart lives in this repository is rendered with `helm template` semantics
(release name, destination namespace, valueFiles < values < valuesObject < parameters, the cluster's
Kubernetes version and API versions). Charts from external repositories are rendered only from a
local chart cache; otherwise they are reported as not rendered offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nimgen import helm
from nimgen.model import Environment
from nimgen.yamlio import load_all_plain, load_plain

APPLICATION = ("argoproj.io/v1alpha1", "Application")
SYNC_WAVE = "argocd.argoproj.io/sync-wave"


@dataclass
class Applied:
    """One manifest and where it comes from."""

    obj: dict[str, Any]
    application: str  # the Application that applies it ("" for what is applied by hand: the root Application)
    file: str  # repository-relative file (for Argo CD manifests) or chart template path


@dataclass
class AppResult:
    """What rendering one Application gave."""

    app: dict[str, Any]
    file: str
    objects: list[Applied] = field(default_factory=list)
    notice: str = ""
    error: str = ""

    @property
    def name(self) -> str:
        return str(self.app["metadata"]["name"])


def wave(obj: dict[str, Any]) -> int:
    """An object's Argo CD sync wave (0 when unset or not a number)."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(SYNC_WAVE, "0")
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def argocd_manifests(root: Path, env: Environment) -> tuple[list[Applied], str]:
    """root.yaml and every manifest under argocd/<env>/apps/ (the root Application's recursive directory)."""
    folder = root / "argocd" / env.name
    if not folder.is_dir():
        return [], f"argocd/{env.name}/ does not exist"
    found: list[Applied] = []
    root_file = folder / "root.yaml"
    files = ([root_file] if root_file.is_file() else []) + sorted((folder / "apps").rglob("*.y*ml"))
    for path in files:
        relative = path.relative_to(root).as_posix()
        try:
            documents = load_all_plain(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            return found, f"{relative} is not valid YAML: {error}"
        application = "" if path == root_file else _root_name(found)
        found += [Applied(doc, application, relative) for doc in documents if isinstance(doc, dict)]
    return found, ""


def _root_name(found: list[Applied]) -> str:
    roots = [a.obj["metadata"]["name"] for a in found if a.file.endswith("/root.yaml")
             and (a.obj.get("apiVersion"), a.obj.get("kind")) == APPLICATION]
    return str(roots[0]) if roots else ""


def applications(manifests: list[Applied]) -> list[Applied]:
    """The Applications among the manifests the root Application syncs."""
    return [m for m in manifests if (m.obj.get("apiVersion"), m.obj.get("kind")) == APPLICATION and m.application]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of several values sources: maps merge, everything else is replaced by the later source."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    node = values
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def helm_values(source: dict[str, Any], chart: Path) -> dict[str, Any]:
    """The values Argo CD hands to `helm template`, in its order of precedence."""
    spec = source.get("helm") or {}
    values: dict[str, Any] = {}
    for name in spec.get("valueFiles") or []:
        path = chart / name
        if not path.is_file():
            if spec.get("ignoreMissingValueFiles"):
                continue
            raise helm.HelmError(f"value file {name} does not exist in {chart}")
        values = _merge(values, load_plain(path.read_text(encoding="utf-8")) or {})
    inline = spec.get("valuesObject")
    if inline is None and spec.get("values"):
        inline = load_plain(spec["values"]) if isinstance(spec["values"], str) else spec["values"]
    values = _merge(values, inline or {})
    for parameter in spec.get("parameters") or []:
        _set(values, parameter["name"], parameter.get("value", ""))
    return values


def cached_chart(cache: Path | None, chart: str, version: str) -> Path | None:
    """A chart in a local cache: `helm pull` archives (<chart>-<version>.tgz) or unpacked folders."""
    if cache is None:
        return None
    for candidate in (cache / f"{chart}-{version}.tgz", cache / f"{chart}-{version}", cache / chart):
        if candidate.is_file():
            return candidate
        metadata = candidate / "Chart.yaml"
        if metadata.is_file() and str((load_plain(metadata.read_text(encoding="utf-8")) or {}).get("version")) == version:
            return candidate
    return None


@dataclass(frozen=True)
class RenderJob:
    """One Application to render: where its chart is and with what."""

    applied: Applied
    chart: Path | None
    values: dict[str, Any]
    notice: str = ""
    error: str = ""


def _job(applied: Applied, root: Path, env: Environment, chart_cache: Path | None) -> RenderJob:
    spec = applied.obj.get("spec") or {}
    if "sources" in spec:
        return RenderJob(applied, None, {}, notice="multi-source Applications are not rendered offline")
    source = spec.get("source") or {}
    if source.get("chart"):
        chart = cached_chart(chart_cache, source["chart"], str(source.get("targetRevision", "")))
        if chart is None:
            where = f"chart {source['chart']} {source.get('targetRevision', '')} from {source.get('repoURL', '')}"
            hint = " (give --chart-cache DIR holding its `helm pull` archive to check it)" if chart_cache is None \
                else f" (not in the chart cache {chart_cache})"
            return RenderJob(applied, None, {}, notice=f"not rendered offline: {where}{hint}")
    elif source.get("repoURL") == env.gitops.repo_url and "path" in source:
        chart = root / source["path"]
        if not (chart / "Chart.yaml").is_file():
            # A plain directory; the root Application's folder is what validate reads anyway.
            return RenderJob(applied, None, {})
    else:
        return RenderJob(applied, None, {}, notice=f"source {source.get('repoURL', '')} is not this repository: "
                                                   "not rendered offline")
    try:
        return RenderJob(applied, chart, helm_values(source, chart))
    except (helm.HelmError, yaml.YAMLError) as error:
        return RenderJob(applied, None, {}, error=str(error))


def cluster_api_versions(env: Environment) -> tuple[str, ...]:
    """API versions beyond Kubernetes' own that the cluster serves: Argo CD's and the platform's CRDs."""
    versions = {"argoproj.io/v1alpha1"}
    if env.node_pools:
        versions |= {"karpenter.sh/v1", "karpenter.k8s.aws/v1"}
    if env.observability:
        versions.add("monitoring.coreos.com/v1")
    if env.uses_keda:
        versions.add("keda.sh/v1alpha1")
    return tuple(sorted(versions))


@contextmanager
def rendering(root: Path, env: Environment, apps: list[Applied], engine: helm.Engine,
              chart_cache: Path | None) -> Iterator[Iterator[AppResult]]:
    """Start rendering every Application's source on worker threads and give their results as they finish.

    Helm renders in Go with the GIL released, so the caller checks what is already there (and the
    results that have arrived) while the rest render.
    """
    jobs = [_job(applied, root, env, chart_cache) for applied in apps]
    api_versions = cluster_api_versions(env)

    def run(job: RenderJob) -> AppResult:
        result = AppResult(job.applied.obj, job.applied.file, notice=job.notice, error=job.error)
        if job.chart is None:
            return result
        spec = job.applied.obj["spec"]
        release = (spec["source"].get("helm") or {}).get("releaseName") or result.name
        namespace = (spec.get("destination") or {}).get("namespace") or "default"
        try:
            rendered = engine.template(job.chart, job.values, release=release, namespace=namespace,
                                       kube_version=env.kubernetes_version, api_versions=api_versions)
        except helm.HelmError as error:
            result.error = f"helm template failed: {error}"
            return result
        for path, text in sorted(rendered.items()):
            if path.endswith("NOTES.txt") or not text.strip():
                continue
            for doc in load_all_plain(text):
                if isinstance(doc, dict):
                    result.objects.append(Applied(doc, result.name, path))
        # Argo CD puts namespaced objects without a namespace into the destination namespace.
        for applied in result.objects:
            metadata = applied.obj.setdefault("metadata", {})
            if _namespaced(applied.obj):
                metadata.setdefault("namespace", namespace)
        return result

    # Lowest sync wave first, as Argo CD applies them: the platform (node pools, with the slow-to-check CEL
    # rules) is rendered, and checked, while the models are still rendering.
    jobs.sort(key=lambda job: (wave(job.applied.obj), job.applied.file))
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        yield (future.result() for future in as_completed(futures))


def render_applications(root: Path, env: Environment, apps: list[Applied], engine: helm.Engine,
                        chart_cache: Path | None) -> list[AppResult]:
    """Every Application's rendered source, in the order of `apps`."""
    with rendering(root, env, apps, engine, chart_cache) as results:
        done = {(result.file, result.name): result for result in results}
    return [done[(applied.file, str(applied.obj["metadata"]["name"]))] for applied in apps]


# Cluster-scoped kinds nimgen's charts and the usual platform charts render.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService",
    "PriorityClass", "RuntimeClass", "CSIDriver", "IngressClass", "NodePool", "EC2NodeClass", "NodeClaim",
    "ClusterSecretStore", "ClusterTriggerAuthentication", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
})


def _namespaced(obj: dict[str, Any]) -> bool:
    return obj.get("kind") not in CLUSTER_SCOPED


def walk_applied(results: list[AppResult]) -> Iterator[Applied]:
    """Every object the Applications apply."""
    for result in results:
        yield from result.objects
