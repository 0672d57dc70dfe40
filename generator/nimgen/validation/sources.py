"""The committed tree as Argo CD reads it: an environment's Applications, and what each one applies.

An Application whose chart lives in this repository is rendered with `helm template` semantics
(release name, destination namespace, valueFiles < values < valuesObject < parameters, the cluster's
Kubernetes version and API versions). Charts from external repositories are rendered only from a
local chart cache; otherwise they are reported as not rendered offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
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


class TreeError(Exception):
    """The committed tree cannot be read as Argo CD would (missing folder, broken YAML)."""


def _reading_order(path: Path, apps: Path) -> tuple[int, str]:
    # nimgen's layout syncs apps/*.yaml (projects) and apps/platform/ before apps/models/: read them first
    # so their renders start first.
    relative = path.relative_to(apps)
    return (0 if len(relative.parts) == 1 or relative.parts[0] == "platform" else 1, relative.as_posix())


def iter_argocd_manifests(root: Path, env: Environment) -> Iterator[Applied]:
    """root.yaml, then every manifest under argocd/<env>/apps/ (the root Application's recursive directory)."""
    folder = root / "argocd" / env.name
    if not folder.is_dir():
        raise TreeError(f"argocd/{env.name}/ does not exist")
    root_file, apps = folder / "root.yaml", folder / "apps"
    files = ([root_file] if root_file.is_file() else []) + sorted(
        (path for path in apps.rglob("*.y*ml")), key=lambda path: _reading_order(path, apps))
    root_name = ""
    for path in files:
        relative = path.relative_to(root).as_posix()
        try:
            documents = [doc for doc in load_all_plain(path.read_text(encoding="utf-8")) if isinstance(doc, dict)]
        except yaml.YAMLError as error:
            raise TreeError(f"{relative} is not valid YAML: {error}") from None
        if path == root_file:
            root_name = next((str(d["metadata"]["name"]) for d in documents
                              if (d.get("apiVersion"), d.get("kind")) == APPLICATION), "")
        for doc in documents:
            yield Applied(doc, "" if path == root_file else root_name, relative)


def is_application(applied: Applied) -> bool:
    """An Application synced by the root Application (not the root itself)."""
    return (applied.obj.get("apiVersion"), applied.obj.get("kind")) == APPLICATION and bool(applied.application)


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


class Renderer:
    """Renders Applications on worker threads as they are submitted; results come back as they finish.

    Helm renders in Go with the GIL released, so the caller reads and checks the tree meanwhile.
    """

    def __init__(self, root: Path, env: Environment, engine: helm.Engine, chart_cache: Path | None) -> None:
        self.root, self.env, self.engine, self.chart_cache = root, env, engine, chart_cache
        self.api_versions = cluster_api_versions(env)
        self._pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self._futures: list[Future[AppResult]] = []

    def __enter__(self) -> Renderer:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, applied: Applied) -> None:
        self._futures.append(self._pool.submit(self._run, _job(applied, self.root, self.env, self.chart_cache)))

    def results(self) -> Iterator[AppResult]:
        for future in as_completed(self._futures):
            yield future.result()

    def _run(self, job: RenderJob) -> AppResult:
        result = AppResult(job.applied.obj, job.applied.file, notice=job.notice, error=job.error)
        if job.chart is None:
            return result
        spec = job.applied.obj["spec"]
        release = (spec["source"].get("helm") or {}).get("releaseName") or result.name
        namespace = (spec.get("destination") or {}).get("namespace") or "default"
        try:
            rendered = self.engine.template(job.chart, job.values, release=release, namespace=namespace,
                                            kube_version=self.env.kubernetes_version, api_versions=self.api_versions)
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
