"""Argo CD objects for an environment, built from what its components declare.

The root AppProject and app-of-apps, the environment's AppProject (models) and platform AppProject,
and one child Application per AppSpec. Objects are built as data (dicts in Kubernetes' conventional
key order) and dumped by yamlio. No component is named here: see nimgen.components.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from nimgen.components import registry
from nimgen.components.base import AppSpec, Component, Kind
from nimgen.model import Environment

API_VERSION = "argoproj.io/v1alpha1"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"

# Sync waves inside the root app: the projects before any Application (each component's wave is its own).
WAVE_PROJECT = -20
WAVE_ROOT = 0

# CreateNamespace=true creates the destination namespace through the project's rights.
CLUSTER_KINDS: tuple[Kind, ...] = (("", "Namespace"),)

# The root Application creates nothing else: a hand-added manifest of any other kind under apps/ is refused by
# Argo CD instead of being applied with the root's rights.
ROOT_NAMESPACED_KINDS: tuple[Kind, ...] = (("argoproj.io", "AppProject"), ("argoproj.io", "Application"))
# The files the root Application reads under apps/ (Argo CD matches this glob against each file's path relative
# to apps/): the layout nimgen writes, and nothing beside it.
ROOT_INCLUDE = "{project.yaml,models/*.yaml,platform/*.yaml}"
# Folder under apps/ of each project's Applications.
_FOLDERS = {"models": "models", "platform": "platform"}


def apps_path(env: Environment) -> str:
    """Repository folder the root Application syncs: the project and every child Application."""
    return f"argocd/{env.name}/apps"


def project_name(env: Environment, component: Component) -> str:
    """AppProject a component's Applications sync through."""
    return env.name if component.project == "models" else platform_project_name(env)


def platform_project_name(env: Environment) -> str:
    """AppProject of the environment's platform Applications."""
    return f"{env.name}-platform"


def root_app_name(env: Environment) -> str:
    """Name of the environment's root Application."""
    return f"{env.name}-root"


def root_project_name(env: Environment) -> str:
    """AppProject of the root Application: it may create only the environment's AppProjects and Applications."""
    return f"{env.name}-root"


def object_labels(env: Environment, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Labels of every Argo CD object nimgen writes (the environment's, unless `extra` replaces them)."""
    labels = {"app.kubernetes.io/managed-by": "nimgen", "app.kubernetes.io/part-of": "nimgen"}
    labels.update(extra or {"nimgen.io/environment": env.name})
    return labels


def _retry() -> dict[str, Any]:
    # A first sync can race a namespace, a CRD or a Secret created by another app: retry with backoff
    # instead of failing until the next commit. `refresh` (Argo CD 3.2+) retries with the newest revision,
    # so a fix pushed while a sync fails is what the next attempt applies (argo-cd #11494).
    return {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}, "refresh": True}


def project(env: Environment, name: str, description: str, namespaces: tuple[str, ...],
            cluster_kinds: tuple[Kind, ...], namespaced_kinds: tuple[Kind, ...]) -> dict[str, Any]:
    """An AppProject admitting this repository, these namespaces of the cluster and exactly these kinds."""
    return {
        "apiVersion": API_VERSION,
        "kind": "AppProject",
        "metadata": {
            "name": name,
            "namespace": env.gitops.namespace,
            "labels": object_labels(env),
            "annotations": {SYNC_WAVE: str(WAVE_PROJECT)},
            # Keeps the project until no Application uses it any more.
            "finalizers": [FINALIZER],
        },
        "spec": {
            "description": description,
            "sourceRepos": [env.gitops.repo_url],
            "destinations": [{"server": env.gitops.destination_server, "namespace": ns} for ns in namespaces],
            "clusterResourceWhitelist": [{"group": group, "kind": kind} for group, kind in cluster_kinds],
            "namespaceResourceWhitelist": [{"group": group, "kind": kind} for group, kind in namespaced_kinds],
            "orphanedResources": {"warn": True},
        },
    }


def _derived_project(env: Environment, name: str, description: str, parts: Parts, *,
                     sort_kinds: bool) -> dict[str, Any]:
    """A project whose namespaces, kinds and upstream repositories come from the components syncing through it."""
    namespaces: set[str] = set()
    cluster: tuple[Kind, ...] = CLUSTER_KINDS
    namespaced: tuple[Kind, ...] = ()
    repos: set[str] = set()
    for component, specs in parts:
        grants = component.grants(env)
        namespaces.update(spec.namespace for spec in specs)
        namespaces.update(grants.namespaces)
        cluster += grants.cluster_kinds
        namespaced += grants.namespaced_kinds
        repos.update(spec.chart.repo for spec in specs if spec.chart.repo)
    kinds = tuple(sorted(set(namespaced))) if sort_kinds else tuple(dict.fromkeys(namespaced))
    made = project(env, name, description, tuple(sorted(namespaces)), tuple(dict.fromkeys(cluster)), kinds)
    made["spec"]["sourceRepos"] += sorted(repos)
    return made


Parts = list[tuple[Component, list[AppSpec]]]


def enabled_parts(env: Environment) -> Parts:
    """Each component `env` uses, with the Applications it asks for (registry order)."""
    return [(component, component.applications(env)) for component in registry.enabled(env)]


def app_project(env: Environment, parts: Parts | None = None) -> dict[str, Any]:
    """The environment's AppProject: this repository only, model namespaces only, chart kinds only."""
    description = env.description or f"NIM models of environment {env.name} (generated by nimgen)"
    parts = [(component, specs) for component, specs in parts or enabled_parts(env) if component.project == "models"]
    return _derived_project(env, env.name, description, parts, sort_kinds=False)


def platform_project(env: Environment, parts: Parts | None = None) -> dict[str, Any] | None:
    """AppProject for cluster-level pieces (None when there are none): only the kinds and namespaces they need."""
    parts = [(component, specs) for component, specs in parts or enabled_parts(env)
             if component.project == "platform"]
    if not parts:
        return None
    description = f"GPU capacity and model storage of environment {env.name} (generated by nimgen)"
    return _derived_project(env, platform_project_name(env), description, parts, sort_kinds=True)


def root_project(env: Environment) -> dict[str, Any]:
    """The root Application's own AppProject: this repository, Argo CD's namespace, AppProjects and Applications.

    Applied with the root Application (by Terraform or by hand), never by Argo CD itself: the root cannot
    widen its own rights from Git.
    """
    description = f"Root of environment {env.name}, creates its AppProjects and Applications only (generated by nimgen)"
    root = project(env, root_project_name(env), description, (env.gitops.namespace,), (), ROOT_NAMESPACED_KINDS)
    del root["metadata"]["annotations"]  # not synced by an Application: a sync wave would mean nothing
    # Everything else in Argo CD's namespace (its own Deployments, Secrets) is not this project's to report.
    del root["spec"]["orphanedResources"]
    return root


def root_application(env: Environment) -> dict[str, Any]:
    """The app-of-apps: the one object applied by hand or by Terraform; it syncs everything else."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": {
            "name": root_app_name(env),
            "namespace": env.gitops.namespace,
            "labels": object_labels(env),
            "annotations": {SYNC_WAVE: str(WAVE_ROOT)},
            "finalizers": [FINALIZER],
        },
        "spec": {
            "project": root_project_name(env),
            "source": {
                "repoURL": env.gitops.repo_url,
                "targetRevision": env.gitops.target_revision,
                "path": apps_path(env),
                # Only the files of nimgen's layout (README and ownership record sit one level up).
                "directory": {"recurse": True, "include": ROOT_INCLUDE},
            },
            "destination": {"server": env.gitops.destination_server, "namespace": env.gitops.namespace},
            "syncPolicy": {
                # Argo CD's namespace exists already: no CreateNamespace, which would need a cluster-scoped right.
                "automated": {"prune": True, "selfHeal": True},
                "retry": _retry(),
            },
        },
    }


def application(env: Environment, spec: AppSpec, project_: str) -> dict[str, Any]:
    """A child Application rendering a chart with inline values: nimgen's own chart from this repository,
    or a pinned upstream chart from its Helm repository."""
    if spec.chart.local:
        location = {"repoURL": env.gitops.repo_url, "targetRevision": env.gitops.target_revision,
                    "path": spec.chart.path}
    else:
        location = {"repoURL": spec.chart.repo, "chart": spec.chart.name, "targetRevision": spec.chart.version}
    sync_options = ["CreateNamespace=true"] if spec.create_namespace else []
    sync_options += ["PruneLast=true", *spec.sync_options]
    if spec.ignore_differences:
        sync_options.append("RespectIgnoreDifferences=true")
    app: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": {
            "name": spec.name,
            "namespace": env.gitops.namespace,
            "labels": object_labels(env, spec.labels),
            "annotations": {SYNC_WAVE: str(spec.wave)},
            "finalizers": [FINALIZER],
        },
        "spec": {
            "project": project_,
            "source": {
                **location,
                "helm": {
                    # Equal to the Application name, which Argo CD would use anyway; spelled
                    # out so a rename of either cannot silently rename every object.
                    "releaseName": spec.name,
                    "valuesObject": spec.values,
                },
            },
            "destination": {"server": env.gitops.destination_server, "namespace": spec.namespace},
            "info": [{"name": name, "value": value} for name, value in spec.info],
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": sync_options,
                "retry": _retry(),
            },
        },
    }
    if spec.ignore_differences:
        app["spec"]["ignoreDifferences"] = [dict(item) for item in spec.ignore_differences]
    return app


def argocd_objects(env: Environment, parts: Parts | None = None) -> dict[PurePosixPath, dict[str, Any]]:
    """Every Argo CD object nimgen writes for `env` (AppProjects, Applications), keyed by its file."""
    parts = parts if parts is not None else enabled_parts(env)
    base = PurePosixPath("argocd") / env.name
    apps = PurePosixPath(apps_path(env))
    objects = {base / "root.yaml": root_application(env), base / "root-project.yaml": root_project(env),
               apps / "project.yaml": app_project(env, parts)}
    platform = platform_project(env, parts)
    if platform is not None:
        objects[apps / "platform" / "project.yaml"] = platform
    for component, specs in parts:
        for spec in specs:
            path = apps / _FOLDERS[component.project] / f"{spec.name}.yaml"
            objects[path] = application(env, spec, project_name(env, component))
    return objects


def by_name(env: Environment) -> dict[str, dict[str, Any]]:
    """The environment's child Applications by name."""
    return {obj["metadata"]["name"]: obj for obj in argocd_objects(env).values()
            if obj["kind"] == "Application" and obj["metadata"]["name"] != root_app_name(env)}
