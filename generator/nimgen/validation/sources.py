"""The committed tree as Argo CD reads it: an environment's Applications, and what each one applies.

An Application whose chart lives in this repository is rendered with `helm template` semantics
(release name, destination namespace, valueFiles < values < valuesObject < parameters, the cluster's
Kubernetes version and API versions). Charts from external repositories are rendered only from a
local chart cache (--chart-cache, else the repository's charts/upstream/); otherwise they are reported as not
rendered offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nimgen import helm
from nimgen.model import Environment
from nimgen.validation import kustomize
from nimgen.validation.manifests import (
    APPLICATION,
    Applied,
    TreeError,
    is_application,
    iter_argocd_manifests,
    shape_problem,
    yaml_type,
)
from nimgen.validation.paths import inside
from nimgen.validation.yamldocs import documents
from nimgen.yamlio import load_plain

SYNC_WAVE = "argocd.argoproj.io/sync-wave"
# `helm pull` archives of the charts the repository's Applications install from Helm repositories. nimgen reads
# them and never writes there (its ownership scope is argocd/<env>/ and charts/<a chart nimgen ships>/).
UPSTREAM_CHARTS = Path("charts", "upstream")
# `nimgen diff` reads the tree and renders through this module.
__all__ = ["APPLICATION", "CLUSTER_SCOPED", "AppResult", "Applied", "Issue", "RenderPool", "Renderer", "TreeError", "cached_chart",
           "chart_cache_of", "cluster_api_versions", "helm_values", "is_application", "iter_argocd_manifests", "job_of",
           "render", "wave"]


@dataclass(frozen=True)
class Issue:
    """Rendered output Argo CD could not apply (invalid YAML, no object), placed at its chart file."""

    message: str
    file: str = ""
    line: int = 0


@dataclass
class AppResult:
    """What rendering one Application gave."""

    app: dict[str, Any]
    file: str
    objects: list[Applied] = field(default_factory=list)
    notice: str = ""
    error: str = ""  # why the Application could not be rendered at all
    issues: list[Issue] = field(default_factory=list)  # rendered output Argo CD could not apply

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


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of several values sources: maps merge, everything else is replaced by the later source.

    Every map of the result is new: parameters set into it never reach the Application they were read from.
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict):
            out[key] = _merge(out[key] if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = value
    return out


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    node = values
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise helm.HelmError(f"parameter {dotted} sets a key under {part}, which is not a mapping")
    node[last] = value


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise helm.HelmError(f"{what} is a {type(value).__name__}, not a mapping")
    return value


def _yaml(text: str) -> Any:
    """One YAML document as JSON can carry it (Helm receives the values as JSON); None when there is none."""
    docs = documents(text)
    return docs[0] if docs else None


def helm_values(source: dict[str, Any], chart: Path, root: Path | None = None) -> dict[str, Any]:
    """The values Argo CD hands to `helm template`, in its order of precedence.

    With `root` (a chart of this repository), value files must stay inside it, as Argo CD requires.
    """
    spec = _mapping(source.get("helm"), "spec.source.helm")
    values: dict[str, Any] = {}
    files = spec.get("valueFiles") or []
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise helm.HelmError("spec.source.helm.valueFiles is not a list of file names")
    for name in files:
        path = chart / name
        if root is not None and not path.resolve().is_relative_to(root.resolve()):
            raise helm.HelmError(f"value file {name} is outside the repository: Argo CD refuses to read it")
        if not path.is_file():
            if spec.get("ignoreMissingValueFiles"):
                continue
            raise helm.HelmError(f"value file {name} does not exist in {chart}")
        values = _merge(values, _mapping(_yaml(path.read_text(encoding="utf-8")), f"value file {name}"))
    inline = spec.get("valuesObject")
    if inline is None and spec.get("values"):
        inline = _yaml(spec["values"]) if isinstance(spec["values"], str) else spec["values"]
    values = _merge(values, _mapping(inline, "spec.source.helm values"))
    parameters = spec.get("parameters") or []
    if not isinstance(parameters, list):
        raise helm.HelmError("spec.source.helm.parameters is not a list")
    for parameter in parameters:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise helm.HelmError("spec.source.helm.parameters holds an entry without a name")
        _set(values, parameter["name"], parameter.get("value", ""))
    return values


def chart_cache_of(root: Path, given: Path | None) -> Path | None:
    """The chart cache to render external charts from: the one given, else the repository's charts/upstream/
    when it exists."""
    if given is not None:
        return given
    default = root / UPSTREAM_CHARTS
    return default if default.is_dir() else None


def cached_chart(cache: Path | None, chart: str, version: str) -> Path | None:
    """A chart in a local cache: `helm pull` archives (<chart>-<version>.tgz) or unpacked folders."""
    if cache is None:
        return None
    for candidate in (cache / f"{chart}-{version}.tgz", cache / f"{chart}-{version}", cache / chart):
        if candidate.is_file():
            return candidate
        metadata = candidate / "Chart.yaml"
        found = load_plain(metadata.read_text(encoding="utf-8")) if metadata.is_file() else None
        if isinstance(found, dict) and str(found.get("version")) == version:
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
    local: str = ""  # the chart's folder relative to the repository root, for a chart of this repository


@dataclass(frozen=True)
class _Folder:
    """What the file system says of an Application's `path`: read once per run, however many Applications share it."""

    chart: Path | None  # the real folder, None when the path is not in the repository (paths.check says why)
    relative: str = ""
    is_dir: bool = False
    exists: bool = False
    tool: tuple[str, str] = ("directory", "")  # Argo CD's detection: (tool, file)
    has_chart_yaml: bool = False
    has_templates_or_values: bool = False


def _folder(root: Path, path: str) -> _Folder:
    chart, _ = inside(root, path)
    if chart is None:
        return _Folder(None)
    relative = chart.relative_to(root.resolve()).as_posix() or "."
    if not chart.is_dir():
        return _Folder(chart, relative, exists=chart.exists())
    return _Folder(chart, relative, True, True, kustomize.detected_tool(chart), (chart / "Chart.yaml").is_file(),
                   (chart / "templates").is_dir() or (chart / "values.yaml").is_file())


def _local_chart(applied: Applied, root: Path, source: dict[str, Any], folders: dict[Any, _Folder]) -> RenderJob:
    """A chart folder of this repository; a missing folder or Chart.yaml is an error, as it is for Argo CD."""
    if "path" not in source:
        return RenderJob(applied, None, {}, error="spec.source has neither a path nor a chart")
    key = source["path"] if isinstance(source["path"], str) else repr(source["path"])
    folder = folders.get(key)
    if folder is None:
        folder = folders[key] = _folder(root, source["path"]) if isinstance(source["path"], str) else _Folder(None)
    chart, relative = folder.chart, folder.relative
    if chart is None:
        return RenderJob(applied, None, {})  # paths.check reports the path itself
    if not folder.is_dir:
        what = "is a file, not a folder" if folder.exists else "does not exist in the repository"
        return RenderJob(applied, None, {}, error=f"{relative} {what}: Argo CD cannot generate the Application's "
                                                  "manifests")
    tool, file = folder.tool
    if tool == "kustomize" and not kustomize.explicit_tools(source):
        if folder.has_chart_yaml:
            return RenderJob(applied, None, {}, error=kustomize.chart_as_kustomize(relative, file))
        return RenderJob(applied, None, {}, notice=f"{relative} is a kustomize folder ({file}): not rendered by validate")
    if not folder.has_chart_yaml:
        if "helm" in source or folder.has_templates_or_values:
            return RenderJob(applied, None, {}, error=f"{relative} has no Chart.yaml: Argo CD cannot render it as a "
                                                      "Helm chart")
        return RenderJob(applied, None, {}, notice=f"{relative} is a plain folder of manifests: not rendered by "
                                                   "validate")
    return RenderJob(applied, chart, helm_values(source, chart, root), local=relative)


def job_of(applied: Applied, root: Path, env: Environment, chart_cache: Path | None,
           folders: dict[Any, _Folder] | None = None) -> RenderJob:
    """How to render one Application; `folders` keeps what the file system said of chart folders for a run."""
    spec = applied.obj["spec"]  # a mapping: manifests.shape_problem holds back Applications without one
    if spec.get("sources"):
        return RenderJob(applied, None, {}, notice="multi-source Applications are not rendered offline")
    source = spec.get("source") or {}
    try:
        if source.get("chart"):
            chart = cached_chart(chart_cache, str(source["chart"]), str(source.get("targetRevision", "")))
            if chart is None:
                where = f"chart {source['chart']} {source.get('targetRevision', '')} from {source.get('repoURL', '')}"
                if chart_cache is None:
                    hint = f" (put its `helm pull` archive in {UPSTREAM_CHARTS.as_posix()}/ or give --chart-cache DIR)"
                else:
                    hint = f" (not in the chart cache {chart_cache})"
                return RenderJob(applied, None, {}, notice=f"not rendered offline: {where}{hint}")
            return RenderJob(applied, chart, helm_values(source, chart))
        if source.get("repoURL") == env.gitops.repo_url:
            return _local_chart(applied, root, source, {} if folders is None else folders)
    except (helm.HelmError, yaml.YAMLError) as error:
        return RenderJob(applied, None, {}, error=str(error))
    return RenderJob(applied, None, {}, notice=f"source {source.get('repoURL', '')} is not this repository: "
                                               "not rendered offline")


def cluster_api_versions(env: Environment) -> tuple[str, ...]:
    """API versions beyond the ones Helm knows that the cluster serves: Argo CD's and the platform's CRDs, and
    Kubernetes' aggregation API (Helm's built-in list, client-go's scheme, lacks it; Argo CD passes the cluster's,
    and prometheus-adapter renders an APIService the cluster no longer serves without it)."""
    versions = {"argoproj.io/v1alpha1", "apiregistration.k8s.io/v1"}
    if env.node_pools:
        versions |= {"karpenter.sh/v1", "karpenter.k8s.aws/v1"}
    if env.observability:
        versions.add("monitoring.coreos.com/v1")
    if env.uses_keda:
        versions.add("keda.sh/v1alpha1")
    return tuple(sorted(versions))


_Pool = TypeVar("_Pool", bound="RenderPool")


class RenderPool:
    """What rendering Applications on workers needs, whatever comes back: the environment, the workers, what the
    file system says of each chart folder (read once) and the local charts in use."""

    def __init__(self, root: Path, env: Environment, engine: helm.Engine, chart_cache: Path | None,
                 pool: Executor | None = None) -> None:
        self.root, self.env, self.engine, self.chart_cache = root, env, engine, chart_cache
        self.api_versions = cluster_api_versions(env)
        self._pool = pool or ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self._futures: list[Future[Any]] = []
        self._folders: dict[Any, _Folder] = {}
        # Charts of this repository (relative folder) -> the Applications rendering them, for checks on the
        # chart's own files.
        self.local_charts: dict[str, list[str]] = {}

    def __enter__(self: _Pool) -> _Pool:  # noqa: PYI019 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _prepare(self, applied: Applied) -> RenderJob:
        """How to render an Application, noting the local chart it uses."""
        job = job_of(applied, self.root, self.env, self.chart_cache, self._folders)
        if job.local:
            self.local_charts.setdefault(job.local, []).append(str(applied.obj["metadata"]["name"]))
        return job


class Renderer(RenderPool):
    """Renders Applications on worker threads as they are submitted; results come back as they finish.

    Helm renders in Go with the GIL released, so the caller reads and checks the tree meanwhile.
    """

    def submit(self, applied: Applied) -> None:
        job = self._prepare(applied)
        self._futures.append(self._pool.submit(render, job, self.engine, self.env.kubernetes_version,
                                               self.api_versions))

    def results(self) -> Iterator[AppResult]:
        for future in as_completed(self._futures):
            yield future.result()


def render(job: RenderJob, engine: helm.Engine, kube_version: str, api_versions: tuple[str, ...]) -> AppResult:
    """What Argo CD applies for one Application: `helm template` of its chart, split into objects."""
    result = AppResult(job.applied.obj, job.applied.file, notice=job.notice, error=job.error)
    if job.chart is None:
        return result
    spec = job.applied.obj["spec"]
    release = str((spec["source"].get("helm") or {}).get("releaseName") or result.name)
    destination = spec.get("destination") if isinstance(spec.get("destination"), dict) else {}
    namespace = str(destination.get("namespace") or "default")
    try:
        rendered = engine.template(job.chart, job.values, release=release, namespace=namespace,
                                   kube_version=kube_version, api_versions=api_versions)
    except helm.HelmError as error:
        result.error = f"helm template failed: {error}"
        return result
    for path, text in sorted(rendered.items()):
        if not path.endswith("NOTES.txt") and text.strip():
            result.objects += _objects(job, result, path, text)
    # Argo CD puts namespaced objects without a namespace into the destination namespace.
    for applied in result.objects:
        if _namespaced(applied.obj):
            applied.obj["metadata"].setdefault("namespace", namespace)
    return result


def _objects(job: RenderJob, result: AppResult, path: str, text: str) -> list[Applied]:
    """The objects one template rendered; what Argo CD could not apply becomes an issue of the result."""
    # Helm names templates <chart name>/templates/...; the finding names the file in this repository.
    file = f"{job.local}/{path.split('/', 1)[-1]}" if job.local else path
    try:
        docs = documents(text)
    except (yaml.YAMLError, RecursionError) as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1} of its output" if mark else ""
        problem = getattr(error, "problem", None) or str(error) or "nested too deeply"
        result.issues.append(Issue(f"{path} renders invalid YAML{at}: {problem}", file))
        return []
    objects = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue  # Helm leaves empty documents where a condition rendered nothing
        if kustomize.is_kustomization(doc, path.rpartition("/")[2]):
            result.issues.append(Issue(kustomize.in_chart(path, index + 1), file))
            continue
        problem = shape_problem(doc) if isinstance(doc, dict) else ("", f"is a {yaml_type(doc)}, not an object")
        if problem:
            result.issues.append(Issue(f"{path} document {index + 1}: {problem[1]}", file))
        elif not never_applied(doc):
            objects.append(Applied(doc, result.name, path))
    return objects


# The Helm hooks Argo CD runs, as PreSync or PostSync (gitops-engine pkg/sync/hook/helm).
HELM_HOOKS_RUN = frozenset({"pre-install", "pre-upgrade", "post-install", "post-upgrade"})


def never_applied(doc: dict[str, Any]) -> bool:
    """A Helm hook Argo CD never applies: one of none of the types it maps (a `helm test` Pod, a pre-delete Job).
    An Argo CD hook annotation takes precedence, as in Argo CD; `crd-install` marks a CRD, not a hook."""
    annotations = (doc.get("metadata") or {}).get("annotations")
    if not isinstance(annotations, dict) or "argocd.argoproj.io/hook" in annotations:
        return False
    hook = annotations.get("helm.sh/hook")
    if not isinstance(hook, str) or hook == "crd-install":
        return False
    return not {kind.strip() for kind in hook.split(",")} & HELM_HOOKS_RUN


# Cluster-scoped kinds nimgen's charts and the usual platform charts render.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService",
    "PriorityClass", "RuntimeClass", "CSIDriver", "IngressClass", "NodePool", "EC2NodeClass", "NodeClaim",
    "ClusterSecretStore", "ClusterTriggerAuthentication", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "GatewayClass",
})


def _namespaced(obj: dict[str, Any]) -> bool:
    return obj.get("kind") not in CLUSTER_SCOPED
