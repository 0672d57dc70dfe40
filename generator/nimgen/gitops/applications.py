"""Argo CD objects for an environment: its AppProject, the root app-of-apps, one Application per model.

Objects are built as data (dicts in Kubernetes' conventional key order) and dumped by yamlio.
"""

from __future__ import annotations

from typing import Any

from nimgen.components import deviceplugin, monitoring, ngcsecrets, nodepools, openwebui, storage
from nimgen.components.model_values import CHART_PATH, chart_values, model_labels
from nimgen.environment.model import Environment, Model

API_VERSION = "argoproj.io/v1alpha1"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"

# Sync waves inside the root app: the project first, then (later issues) platform
# services, node pools and storage, then the models. Gaps leave room in between.
WAVE_PROJECT = -20
# The monitoring stack brings the Prometheus Operator CRDs the models' ServiceMonitors need.
WAVE_MONITORING_STACK = -15
WAVE_MONITORING = -12
WAVE_NODE_POOLS = -10
WAVE_STORAGE = -10
WAVE_DEVICE_PLUGIN = -10
# The NGC Secrets must exist before a model pod starts (its image pull needs one of them).
WAVE_SECRETS = -10
WAVE_MODELS = 0
# Add-ons (Open WebUI) sync after the models: a broken add-on never holds back a model's sync, and a model
# still loading only shows up in the UI a little later.
WAVE_ADDONS = 10
WAVE_ROOT = 0

# Kinds the nim-llm chart renders; the AppProject admits exactly these in model namespaces.
MODEL_NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (
    ("", "Service"),
    ("", "ServiceAccount"),
    ("", "PersistentVolumeClaim"),
    ("apps", "StatefulSet"),
    ("apps", "Deployment"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "NetworkPolicy"),
)
# Admitted only when a model fills its cache with a warm-up Job.
WARMUP_KINDS: tuple[tuple[str, str], ...] = (("batch", "Job"),)
# CreateNamespace=true creates the destination namespace through the project's rights.
CLUSTER_KINDS: tuple[tuple[str, str], ...] = (("", "Namespace"),)
# Kinds of the platform charts; kept out of the models' project.
NODE_POOL_KINDS: tuple[tuple[str, str], ...] = (("karpenter.sh", "NodePool"), ("karpenter.k8s.aws", "EC2NodeClass"))
STORAGE_CLUSTER_KINDS: tuple[tuple[str, str], ...] = (("storage.k8s.io", "StorageClass"),)
STORAGE_NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (("", "PersistentVolumeClaim"),)


def apps_path(env: Environment) -> str:
    """Repository folder the root Application syncs: the project and every child Application."""
    return f"argocd/{env.name}/apps"


def platform_project_name(env: Environment) -> str:
    """AppProject of the environment's platform Applications (node pools)."""
    return f"{env.name}-platform"


def root_app_name(env: Environment) -> str:
    """Name of the environment's root Application."""
    return f"{env.name}-root"


def root_project_name(env: Environment) -> str:
    """AppProject of the root Application: it may create only the environment's AppProjects and Applications."""
    return f"{env.name}-root"


# The root Application creates nothing else: a hand-added manifest of any other kind under apps/ is refused by
# Argo CD instead of being applied with the root's rights.
ROOT_NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (("argoproj.io", "AppProject"), ("argoproj.io", "Application"))
# The files the root Application reads under apps/ (Argo CD matches this glob against each file's path relative
# to apps/): the layout nimgen writes, and nothing beside it.
ROOT_INCLUDE = "{project.yaml,models/*.yaml,platform/*.yaml}"


def reserved_application_names(env_name: str) -> dict[str, str]:
    """Application names nimgen gives besides the models' (in Argo CD's namespace), and what each is.

    Every platform Application counts, enabled or not: turning one on later must not collide with a model.
    """
    names = {f"{env_name}-root": "the root Application", f"{env_name}-bench": "the benchmark Application"}
    for release in (nodepools.RELEASE_NAME, storage.RELEASE_NAME, ngcsecrets.RELEASE_NAME, deviceplugin.RELEASE_NAME,
                    openwebui.RELEASE_NAME, monitoring.PROMETHEUS_STACK_RELEASE, monitoring.ADAPTER_RELEASE,
                    monitoring.KEDA_RELEASE, monitoring.DCGM_RELEASE, monitoring.DASHBOARDS_RELEASE):
        names[release] = f"the platform Application {release}"
    return names


def object_labels(env: Environment, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Labels of every Argo CD object nimgen writes (the environment's, unless `extra` replaces them)."""
    labels = {"app.kubernetes.io/managed-by": "nimgen", "app.kubernetes.io/part-of": "nimgen"}
    labels.update(extra or {"nimgen.io/environment": env.name})
    return labels


def _retry() -> dict[str, Any]:
    # A first sync can race a namespace, a CRD or a Secret created by another app:
    # retry with backoff instead of failing until the next commit.
    return {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}


def project(env: Environment, name: str, description: str, namespaces: tuple[str, ...],
            cluster_kinds: tuple[tuple[str, str], ...],
            namespaced_kinds: tuple[tuple[str, str], ...]) -> dict[str, Any]:
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


def app_project(env: Environment) -> dict[str, Any]:
    """The environment's AppProject: this repository only, model namespaces only, chart kinds only."""
    description = env.description or f"NIM models of environment {env.name} (generated by nimgen)"
    kinds = MODEL_NAMESPACED_KINDS
    if any(model.warmup_profiles for model in env.models):
        kinds += WARMUP_KINDS
    if env.observability:
        kinds += monitoring.MODEL_KINDS
    if env.uses_keda:
        kinds += monitoring.KEDA_MODEL_KINDS
    return project(env, env.name, description, env.namespaces, CLUSTER_KINDS, kinds)


def has_platform(env: Environment) -> bool:
    """Whether the environment has cluster-level pieces (node pools, storage, device plugin, add-ons)."""
    return bool(env.node_pools or env.model_cache or env.observability or env.ngc.external_secret
                or env.open_webui)


def platform_project(env: Environment) -> dict[str, Any]:
    """AppProject for cluster-level pieces: only the kinds and namespaces they need."""
    description = f"GPU capacity and model storage of environment {env.name} (generated by nimgen)"
    cluster_kinds: tuple[tuple[str, str], ...] = CLUSTER_KINDS
    namespaced: tuple[tuple[str, str], ...] = ()
    namespaces: tuple[str, ...] = ()
    if env.node_pools:
        cluster_kinds += NODE_POOL_KINDS
        namespaces += (nodepools.NAMESPACE,)
    repos: tuple[str, ...] = ()
    if env.model_cache:
        cluster_kinds += STORAGE_CLUSTER_KINDS
        namespaced += STORAGE_NAMESPACED_KINDS
        namespaces += (*storage.claim_namespaces(env), storage.app_namespace(env))
    if deviceplugin.plugin_pools(env):
        namespaced += deviceplugin.NAMESPACED_KINDS
        namespaces += (deviceplugin.NAMESPACE,)
        repos += (deviceplugin.REPO_URL,)
    if env.ngc.external_secret:
        cluster_kinds += ngcsecrets.CLUSTER_KINDS
        namespaced += ngcsecrets.NAMESPACED_KINDS
        namespaces += env.namespaces
    if env.observability:
        cluster_kinds += monitoring.CLUSTER_KINDS
        namespaced += monitoring.NAMESPACED_KINDS
        # kube-prometheus-stack puts the Services it scrapes CoreDNS and the kubelet through in kube-system.
        namespaces += (env.observability.namespace, "kube-system")
        if env.uses_adapter:
            repos += (monitoring.ADAPTER_REPO[0],)
        if env.uses_keda:
            namespaces += (monitoring.KEDA_NAMESPACE,)
            repos += (monitoring.KEDA_REPO[0],)
        if env.observability.prometheus_stack:
            repos += (monitoring.PROMETHEUS_STACK_REPO[0],)
        if env.observability.dcgm_exporter:
            repos += (monitoring.DCGM_REPO[0],)
    if env.open_webui:
        namespaced += openwebui.NAMESPACED_KINDS
        namespaces += (env.open_webui.namespace,)
    platform = project(env, platform_project_name(env), description, tuple(sorted(set(namespaces))),
                       tuple(dict.fromkeys(cluster_kinds)), tuple(sorted(set(namespaced))))
    platform["spec"]["sourceRepos"] += sorted(set(repos))
    return platform


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


def _application(env: Environment, *, name: str, project: str, path: str, release: str, values: dict[str, Any],
                 namespace: str, wave: int, labels: dict[str, str], info: list[dict[str, str]],
                 helm_repo: tuple[str, str, str] | None = None, sync_options: tuple[str, ...] = ()) -> dict[str, Any]:
    """A child Application rendering a chart with inline values: from this repository's `path`, or from
    `helm_repo` = (repository URL, chart, version) for an upstream chart."""
    if helm_repo:
        location = {"repoURL": helm_repo[0], "chart": helm_repo[1], "targetRevision": helm_repo[2]}
    else:
        location = {"repoURL": env.gitops.repo_url, "targetRevision": env.gitops.target_revision, "path": path}
    return {
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": env.gitops.namespace,
            "labels": object_labels(env, labels),
            "annotations": {SYNC_WAVE: str(wave)},
            "finalizers": [FINALIZER],
        },
        "spec": {
            "project": project,
            "source": {
                **location,
                "helm": {
                    # Equal to the Application name, which Argo CD would use anyway; spelled
                    # out so a rename of either cannot silently rename every object.
                    "releaseName": release,
                    "valuesObject": values,
                },
            },
            "destination": {"server": env.gitops.destination_server, "namespace": namespace},
            "info": info,
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true", "PruneLast=true", *sync_options],
                "retry": _retry(),
            },
        },
    }


def model_application(env: Environment, model: Model) -> dict[str, Any]:
    """A child Application rendering the nim-llm chart with the model's values."""
    app = _application(
        env, name=model.name, project=env.name, path=CHART_PATH, release=model.name,
        values=chart_values(env, model), namespace=model.namespace, wave=WAVE_MODELS,
        labels={"nimgen.io/environment": env.name, **model_labels(env, model)},
        info=[
            {"name": "Image", "value": str(model.image)},
            {"name": "GPUs per replica", "value": str(model.gpus)},
            {"name": "Replicas", "value": f"{model.min_replicas}-{model.max_replicas}"},
            {"name": "Node pool", "value": model.node_pool},
        ],
    )
    if model.autoscaled:
        # The HPA owns spec.replicas (the chart omits it): without this, self-heal and
        # the HPA would undo each other forever.
        app["spec"]["syncPolicy"]["syncOptions"].append("RespectIgnoreDifferences=true")
        app["spec"]["ignoreDifferences"] = [
            {
                "group": "apps",
                "kind": model.workload,
                "name": model.name,
                "namespace": model.namespace,
                "jsonPointers": ["/spec/replicas"],
            }
        ]
    return app


def nodepools_application(env: Environment) -> dict[str, Any]:
    """The Application of the environment's Karpenter GPU node pools (synced before the models)."""
    return _application(
        env, name=nodepools.RELEASE_NAME, project=platform_project_name(env), path=nodepools.CHART_PATH,
        release=nodepools.RELEASE_NAME, values=nodepools.nodepool_values(env), namespace=nodepools.NAMESPACE,
        wave=WAVE_NODE_POOLS, labels={"nimgen.io/environment": env.name},
        info=[{"name": "GPU limit", "value": f"{pool.name}: {pool.gpu_limit}"} for pool in env.node_pools],
    )


def storage_application(env: Environment) -> dict[str, Any]:
    """The Application of the shared EFS model cache (synced before the models that mount it)."""
    return _application(
        env, name=storage.RELEASE_NAME, project=platform_project_name(env), path=storage.CHART_PATH,
        release=storage.RELEASE_NAME, values=storage.storage_values(env), namespace=storage.app_namespace(env),
        wave=WAVE_STORAGE, labels={"nimgen.io/environment": env.name},
        info=[{"name": "EFS file system", "value": env.model_cache.file_system_id if env.model_cache else ""}],
    )


def ngc_secrets_application(env: Environment) -> dict[str, Any]:
    """The Application of the NGC ExternalSecrets (synced before the models that pull and run with them)."""
    assert env.ngc.external_secret is not None
    return _application(
        env, name=ngcsecrets.RELEASE_NAME, project=platform_project_name(env), path=ngcsecrets.CHART_PATH,
        release=ngcsecrets.RELEASE_NAME, values=ngcsecrets.secrets_values(env), namespace=env.namespaces[0],
        wave=WAVE_SECRETS, labels={"nimgen.io/environment": env.name},
        info=[{"name": "Secrets Manager", "value": env.ngc.external_secret.key}],
    )


def device_plugin_application(env: Environment) -> dict[str, Any]:
    """The NVIDIA device plugin from its upstream Helm repository, pinned, on nimgen's AL2023 GPU pools."""
    return _application(
        env, name=deviceplugin.RELEASE_NAME, project=platform_project_name(env), path="",
        release=deviceplugin.RELEASE_NAME, values=deviceplugin.plugin_values(env), namespace=deviceplugin.NAMESPACE,
        wave=WAVE_DEVICE_PLUGIN, labels={"nimgen.io/environment": env.name},
        info=[{"name": "Node pools", "value": ", ".join(deviceplugin.plugin_pools(env))}],
        helm_repo=(deviceplugin.REPO_URL, deviceplugin.CHART, deviceplugin.VERSION),
    )


def _monitoring_app(env: Environment, name: str, values: dict[str, Any], wave: int, info: str,
                    helm_repo: tuple[str, str, str] | None = None, path: str = "",
                    sync_options: tuple[str, ...] = (), namespace: str = "") -> dict[str, Any]:
    assert env.observability is not None
    return _application(
        env, name=name, project=platform_project_name(env), path=path, release=name, values=values,
        namespace=namespace or env.observability.namespace, wave=wave, labels={"nimgen.io/environment": env.name},
        info=[{"name": "Purpose", "value": info}], helm_repo=helm_repo, sync_options=sync_options,
    )


def monitoring_applications(env: Environment) -> dict[str, dict[str, Any]]:
    """The monitoring platform's Applications by name (empty when observability is off)."""
    obs = env.observability
    if obs is None:
        return {}
    apps: dict[str, dict[str, Any]] = {}
    if obs.prometheus_stack:
        # Its CRDs exceed the annotation size client-side apply needs: server-side apply only.
        apps[monitoring.PROMETHEUS_STACK_RELEASE] = _monitoring_app(
            env, monitoring.PROMETHEUS_STACK_RELEASE, monitoring.prometheus_stack_values(env), WAVE_MONITORING_STACK,
            "Prometheus, Alertmanager, Grafana, kube-state-metrics",
            helm_repo=(*monitoring.PROMETHEUS_STACK_REPO, obs.prometheus_stack_version),
            sync_options=("ServerSideApply=true",))
    if env.uses_adapter:
        apps[monitoring.ADAPTER_RELEASE] = _monitoring_app(
            env, monitoring.ADAPTER_RELEASE, monitoring.adapter_values(env), WAVE_MONITORING,
            "NIM load metrics as Pods metrics for the HPAs", helm_repo=(*monitoring.ADAPTER_REPO, obs.adapter_version))
    if env.uses_keda:
        # Its CRDs (ScaledJob) exceed client-side apply's annotation limit too.
        keda = _monitoring_app(
            env, monitoring.KEDA_RELEASE, monitoring.keda_values(env), WAVE_MONITORING,
            "KEDA: ScaledObjects on Prometheus queries", helm_repo=(*monitoring.KEDA_REPO, obs.keda_version),
            sync_options=("ServerSideApply=true", "RespectIgnoreDifferences=true"), namespace=monitoring.KEDA_NAMESPACE)
        keda["spec"]["ignoreDifferences"] = [dict(item) for item in monitoring.KEDA_IGNORE_DIFFERENCES]
        apps[monitoring.KEDA_RELEASE] = keda
    if obs.dcgm_exporter:
        apps[monitoring.DCGM_RELEASE] = _monitoring_app(
            env, monitoring.DCGM_RELEASE, monitoring.dcgm_values(env), WAVE_MONITORING,
            "GPU utilisation and memory", helm_repo=(*monitoring.DCGM_REPO, obs.dcgm_exporter_version))
    apps[monitoring.DASHBOARDS_RELEASE] = _monitoring_app(
        env, monitoring.DASHBOARDS_RELEASE, monitoring.dashboards_values(env), WAVE_MONITORING, "Grafana dashboards",
        path=monitoring.DASHBOARDS_CHART_PATH)
    return apps


def open_webui_application(env: Environment) -> dict[str, Any]:
    """The Open WebUI Application (nimgen's open-webui chart), synced after the models it lists."""
    assert env.open_webui is not None
    return _application(
        env, name=openwebui.RELEASE_NAME, project=platform_project_name(env), path=openwebui.CHART_PATH,
        release=openwebui.RELEASE_NAME, values=openwebui.values(env), namespace=env.open_webui.namespace,
        wave=WAVE_ADDONS, labels={"nimgen.io/environment": env.name},
        info=[{"name": "Image", "value": str(env.open_webui.image)},
              {"name": "Models", "value": ", ".join(model.name for model in env.models) or "none"}],
    )
