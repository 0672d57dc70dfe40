"""Argo CD objects: direct assertions per feature, and upstream CRD schema validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_NAMES, example_environment
from helpers import VALID, write_env
from kube import crd_errors
from nimgen.environment.load import load_environment
from nimgen.gitops import applications

FINALIZER = "resources-finalizer.argocd.argoproj.io"


def _all_objects() -> list[tuple[str, dict[str, Any]]]:
    objects = []
    for name in EXAMPLE_NAMES:
        env = example_environment(name)
        objects.append((f"{name}/project", applications.app_project(env)))
        objects.append((f"{name}/root", applications.root_application(env)))
        objects.append((f"{name}/root-project", applications.root_project(env)))
        objects += [(f"{name}/{m.name}", applications.by_name(env)[m.name]) for m in env.models]
    return objects


OBJECTS = _all_objects()
APPLICATIONS = [(label, obj) for label, obj in OBJECTS if obj["kind"] == "Application"]


@pytest.mark.parametrize(("label", "obj"), OBJECTS, ids=[label for label, _ in OBJECTS])
def test_validates_against_upstream_crd_schema(crd_schemas: Path, label: str, obj: dict[str, Any]) -> None:
    assert crd_errors(obj, crd_schemas) == []


@pytest.mark.parametrize(("label", "app"), APPLICATIONS, ids=[label for label, _ in APPLICATIONS])
def test_every_application_is_fully_specified(label: str, app: dict[str, Any]) -> None:
    spec = app["spec"]
    assert spec["project"]
    assert spec["destination"]["server"] == "https://kubernetes.default.svc"
    assert spec["destination"]["namespace"]
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    if label.endswith("/root"):  # Argo CD's namespace exists; creating one would need a cluster-scoped right
        assert "syncOptions" not in spec["syncPolicy"]
    else:
        assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    retry = spec["syncPolicy"]["retry"]
    assert retry["limit"] > 0 and retry["backoff"]["factor"] > 1
    assert app["metadata"]["finalizers"] == [FINALIZER]
    assert -20 <= int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) <= 10
    assert app["metadata"]["namespace"] == "argocd"


def test_project_is_restricted_to_repo_and_model_namespaces() -> None:
    env = example_environment("prod")
    project = applications.app_project(env)
    assert project["spec"]["sourceRepos"] == ["https://github.com/example/nim-gitops.git"]
    assert project["spec"]["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "nim"}]
    assert project["spec"]["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    kinds = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    assert ("apps", "StatefulSet") in kinds and ("", "Secret") not in kinds
    assert project["metadata"]["finalizers"] == [FINALIZER]


def test_project_syncs_before_models() -> None:
    env = example_environment("prod")
    project_wave = int(applications.app_project(env)["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    for model in env.models:
        app = applications.by_name(env)[model.name]
        assert int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) > project_wave


def test_root_application_syncs_the_apps_folder() -> None:
    env = example_environment("prod")
    root = applications.root_application(env)
    assert root["metadata"]["name"] == "prod-root"
    assert root["spec"]["project"] == "prod-root"
    assert root["spec"]["source"] == {
        "repoURL": "https://github.com/example/nim-gitops.git",
        "targetRevision": "main",
        "path": "argocd/prod/apps",
        "directory": {"recurse": True, "include": "{project.yaml,models/*.yaml,platform/*.yaml}"},
    }
    assert root["spec"]["destination"]["namespace"] == "argocd"


def test_the_root_project_admits_only_appprojects_and_applications_in_argocds_namespace() -> None:
    env = example_environment("prod")
    project = applications.root_project(env)
    assert project["metadata"] == {"name": "prod-root", "namespace": "argocd", "labels": applications.object_labels(env),
                                   "finalizers": [FINALIZER]}
    assert project["spec"]["sourceRepos"] == [env.gitops.repo_url]
    assert project["spec"]["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "argocd"}]
    assert project["spec"]["clusterResourceWhitelist"] == []
    assert project["spec"]["namespaceResourceWhitelist"] == [{"group": "argoproj.io", "kind": "AppProject"},
                                                             {"group": "argoproj.io", "kind": "Application"}]


def _argocd_include(pattern: str, path: str) -> bool:
    """Argo CD matches `directory.include` with gobwas/glob and no separators: `*` spans folders, `{a,b}` is
    alternation (reposerver/repository: glob.Match(include, relPath))."""
    import fnmatch
    import re

    match = re.fullmatch(r"\{([^{}]*)\}", pattern)
    return any(fnmatch.fnmatchcase(path, part) for part in (match.group(1).split(",") if match else [pattern]))


@pytest.mark.parametrize("env_name", EXAMPLE_NAMES)
def test_the_root_reads_exactly_the_files_nimgen_writes_under_apps(env_name: str) -> None:
    from nimgen.gitops.tree import render_environment

    env = example_environment(env_name)
    include = applications.root_application(env)["spec"]["source"]["directory"]["include"]
    apps = f"argocd/{env_name}/apps/"
    written = [str(path)[len(apps):] for path in render_environment(env) if str(path).startswith(apps)]
    assert written and all(_argocd_include(include, path) for path in written)
    for stray in ("admin.yaml", "extra/binding.yaml", "models/notes.md", "kustomization.yaml", "project.yml"):
        assert not _argocd_include(include, stray), stray


def test_model_application_points_at_the_chart_with_release_equal_to_app_name() -> None:
    env = example_environment("prod")
    model = env.models[0]
    app = applications.by_name(env)[model.name]
    source = app["spec"]["source"]
    assert (source["path"], source["repoURL"], source["targetRevision"]) == (
        "charts/nim-llm", env.gitops.repo_url, env.gitops.target_revision)
    assert "chart" not in source  # `chart` is only for Helm repositories
    assert app["metadata"]["name"] == source["helm"]["releaseName"] == model.name
    assert app["spec"]["project"] == "prod"
    assert app["spec"]["destination"]["namespace"] == model.namespace
    values = source["helm"]["valuesObject"]
    assert values["fullnameOverride"] == model.name
    assert values["image"] == {"repository": "nvcr.io/nim/meta/llama3-8b-instruct", "tag": "1.0.3", "digest": ""}
    assert values["gpu"] == {"count": 1}
    assert values["nodePool"] == "a10g"
    assert values["model"]["ngcAPISecret"] == "ngc-api"
    assert values["imagePullSecrets"] == [{"name": "ngc-secret"}]


def test_autoscaled_model_leaves_replicas_to_the_hpa() -> None:
    env = example_environment("prod")
    model = next(m for m in env.models if m.name == "llama3-8b-instruct")
    assert (model.min_replicas, model.max_replicas) == (2, 5)
    app = applications.by_name(env)[model.name]
    values = app["spec"]["source"]["helm"]["valuesObject"]
    assert "replicaCount" not in values
    assert values["autoscaling"]["enabled"] is True
    assert (values["autoscaling"]["minReplicas"], values["autoscaling"]["maxReplicas"]) == (2, 5)
    [metric] = values["autoscaling"]["metrics"]
    assert metric == {"type": "Pods", "pods": {"metric": {"name": "num_requests_running"},
                                               "target": {"type": "AverageValue", "averageValue": "5"}}}
    assert app["spec"]["ignoreDifferences"] == [{
        "group": "apps", "kind": "StatefulSet", "name": model.name, "namespace": "nim", "jsonPointers": ["/spec/replicas"],
    }]
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_fixed_replica_model_has_no_ignore_differences() -> None:
    env = example_environment("dev")
    app = applications.by_name(env)[env.models[0].name]
    values = app["spec"]["source"]["helm"]["valuesObject"]
    assert values["replicaCount"] == 1 and values["autoscaling"] == {"enabled": False}
    assert "ignoreDifferences" not in app["spec"]
    assert "RespectIgnoreDifferences=true" not in app["spec"]["syncPolicy"]["syncOptions"]


def test_fractional_autoscaling_target_is_a_quantity(tmp_path: Path) -> None:
    text = VALID + "    replicas: {min: 1, max: 3}\n    autoscaling: {metric: gpu_cache_usage_perc, target: 0.75}\n"
    env = load_environment(write_env(tmp_path, text), tmp_path)
    values = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]
    assert values["autoscaling"]["metrics"][0]["pods"]["target"]["averageValue"] == "750m"


def test_startup_budget_follows_the_environment(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, VALID + "    startupTimeoutMinutes: 45\n"), tmp_path)
    probe = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]["startupProbe"]
    assert probe["initialDelaySeconds"] + probe["periodSeconds"] * probe["failureThreshold"] == 45 * 60


def test_secrets_are_referenced_never_inlined(tmp_path: Path) -> None:
    text = VALID + "    secretEnv: {HF_TOKEN: {secret: hf, key: token}}\n"
    env = load_environment(write_env(tmp_path, text), tmp_path)
    values = applications.by_name(env)[env.models[0].name]["spec"]["source"]["helm"]["valuesObject"]
    assert values["secretEnv"] == {"HF_TOKEN": {"secretName": "hf", "key": "token"}}
    assert values["model"]["ngcAPISecret"] == "ngc-api"


def test_strict_crd_schema_catches_a_misspelt_field(crd_schemas: Path) -> None:
    """Guards the guard: the schema check must fail on a field Argo CD does not know."""
    app = applications.by_name(example_environment("prod"))[example_environment("prod").models[0].name]
    app["spec"]["syncPolicy"]["automated"]["selfheal"] = True
    assert any("selfheal" in error for error in crd_errors(app, crd_schemas))
