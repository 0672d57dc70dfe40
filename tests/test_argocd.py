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


def _labels() -> list[str]:
    """`env/what` of every Argo CD object nimgen builds for the examples (names only: see _object)."""
    labels = []
    for name in EXAMPLE_NAMES:
        labels += [f"{name}/project", f"{name}/root", f"{name}/root-project"]
        labels += [f"{name}/{model.name}" for model in example_environment(name).models]
    return labels


def _object(label: str) -> dict[str, Any]:
    """The object, built when the test runs: tests then assert on nimgen's code as it is at that moment (built
    while collecting, they would assert on what the code was then, which mutation testing changes later)."""
    name, _, what = label.partition("/")
    env = example_environment(name)
    builders = {"project": applications.app_project, "root": applications.root_application,
                "root-project": applications.root_project}
    built: dict[str, Any] = builders[what](env) if what in builders else applications.by_name(env)[what]
    return built


LABELS = _labels()
APPLICATION_LABELS = [label for label in LABELS if not label.endswith("project")]


@pytest.mark.parametrize("label", LABELS)
def test_validates_against_upstream_crd_schema(crd_schemas: Path, label: str) -> None:
    assert crd_errors(_object(label), crd_schemas) == []


@pytest.mark.parametrize("label", APPLICATION_LABELS)
def test_every_application_is_fully_specified(label: str) -> None:
    app = _object(label)
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


# ------------------------------------------------------------------ the root, the projects and their files, exactly

LABELS_OF_PROD = {"app.kubernetes.io/managed-by": "nimgen", "app.kubernetes.io/part-of": "nimgen",
                  "nimgen.io/environment": "prod"}
RETRY = {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}, "refresh": True}


def test_the_root_application_exactly() -> None:
    # Auto-syncs the environment's AppProjects and Applications, prunes what leaves Git, undoes hand edits,
    # retries with backoff (refreshing from Git), and deletes its children when it is deleted (finalizer).
    assert applications.root_application(example_environment("prod")) == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "prod-root", "namespace": "argocd", "labels": LABELS_OF_PROD,
                     "annotations": {"argocd.argoproj.io/sync-wave": "0"}, "finalizers": [FINALIZER]},
        "spec": {
            "project": "prod-root",
            "source": {"repoURL": "https://github.com/example/nim-gitops.git", "targetRevision": "main",
                       "path": "argocd/prod/apps",
                       "directory": {"recurse": True, "include": "{project.yaml,models/*.yaml,platform/*.yaml}"}},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "retry": RETRY},
        },
    }


def test_a_model_application_carries_its_labels_and_the_platform_ones() -> None:
    app = applications.by_name(example_environment("prod"))["llama3-8b-instruct"]
    assert app["metadata"]["labels"] == {**LABELS_OF_PROD, "nimgen.io/model": "llama3-8b-instruct"}
    assert (app["metadata"]["namespace"], app["metadata"]["finalizers"]) == ("argocd", [FINALIZER])
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert app["spec"]["syncPolicy"]["retry"] == RETRY


def test_the_projects_metadata_and_descriptions() -> None:
    env = example_environment("prod")
    root = applications.root_project(env)
    models = applications.app_project(env)
    platform = applications.platform_project(env)
    assert platform is not None
    for project in (root, models, platform):
        assert (project["apiVersion"], project["kind"]) == ("argoproj.io/v1alpha1", "AppProject")
        assert project["metadata"]["labels"] == LABELS_OF_PROD
        assert project["metadata"]["finalizers"] == [FINALIZER]
    assert root["spec"]["description"] == ("Root of environment prod, creates its AppProjects and Applications only "
                                           "(generated by nimgen)")
    assert models["spec"]["description"] == env.description == "Production NIM LLM serving"
    # Resources of the project's namespaces that no Application owns are reported, not deleted.
    assert models["spec"]["orphanedResources"] == {"warn": True}


def test_a_project_without_description_says_whose_it_is(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, VALID), tmp_path)
    assert applications.app_project(env)["spec"]["description"] == "NIM models of environment test (generated by nimgen)"


def test_the_files_of_the_argo_cd_objects() -> None:
    env = example_environment("prod")
    objects = applications.argocd_objects(env)
    files = sorted(str(path) for path in objects)
    assert files[:3] == ["argocd/prod/apps/models/llama-3-1-70b-instruct.yaml",
                         "argocd/prod/apps/models/llama3-8b-instruct.yaml", "argocd/prod/apps/platform/ai-gateway-crds.yaml"]
    by_file = {str(path): obj for path, obj in objects.items()}
    assert by_file["argocd/prod/root.yaml"] == applications.root_application(env)
    assert by_file["argocd/prod/root-project.yaml"] == applications.root_project(env)
    assert by_file["argocd/prod/apps/project.yaml"] == applications.app_project(env)
    assert by_file["argocd/prod/apps/platform/project.yaml"] == applications.platform_project(env)
