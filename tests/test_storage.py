"""Shared EFS model cache: environment wiring, the model-storage chart under the real Helm engine, Argo CD objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment, shared
from helpers import VALID, run, tree_digest, write_env
from kube import crd_errors, kubernetes_errors
from nimgen import helm
from nimgen.components import storage
from nimgen.gitops import applications
from nimgen.yamlio import load_all_plain

KEEP = "Delete=false,Prune=false"
STORAGE = "storage:\n  modelCache:\n    efs: {fileSystemId: fs-0123456789abcdef0}\n"


@pytest.fixture(scope=shared("module"))
def objects(rendered_repo: Path, helm_engine: helm.Engine) -> list[dict[str, Any]]:
    app = applications.by_name(example_environment("prod"))["model-storage"]
    rendered = helm_engine.template(rendered_repo / storage.CHART_PATH, app["spec"]["source"]["helm"]["valuesObject"],
                                    release=app["spec"]["source"]["helm"]["releaseName"],
                                    namespace=app["spec"]["destination"]["namespace"], kube_version="1.33")
    return [d for p, t in sorted(rendered.items()) if not p.endswith("NOTES.txt") for d in load_all_plain(t)]


def test_manifests_pass_kubernetes_strict_schema(objects: list[dict[str, Any]]) -> None:
    # prod's platform-secrets creates namespace nim in an earlier wave (its NGC Secrets live there).
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("PersistentVolumeClaim", "nim-model-cache"), ("StorageClass", "nimgen-efs")]
    for obj in objects:
        assert kubernetes_errors(obj, "1.33") == [], obj["kind"]


def test_chart_lints_strict(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    values = storage.storage_values(example_environment("prod"))
    findings = helm_engine.lint(rendered_repo / storage.CHART_PATH, values, kube_version="1.33")
    assert [f for f in findings if f.severity != "info"] == []


def test_efs_storage_class(objects: list[dict[str, Any]]) -> None:
    [sc] = [o for o in objects if o["kind"] == "StorageClass"]
    assert sc["provisioner"] == "efs.csi.aws.com"
    assert sc["parameters"] == {"provisioningMode": "efs-ap", "fileSystemId": "fs-0123456789abcdef0",
                                "directoryPerms": "700", "uid": "1000", "gid": "1000", "basePath": "/nimgen"}
    assert sc["reclaimPolicy"] == "Retain"


def test_claims_are_shared_and_survive_deletion(objects: list[dict[str, Any]]) -> None:
    [claim] = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert claim["metadata"]["namespace"] == "nim"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "nimgen-efs"
    assert claim["spec"]["resources"]["requests"]["storage"] == "500Gi"
    for obj in objects:
        if obj["kind"] != "StorageClass":
            assert obj["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == KEEP


def test_models_mount_their_own_directory_of_the_claim() -> None:
    from nimgen.components.model_values import chart_values

    env = example_environment("prod")
    for model in env.models:
        cache = chart_values(env, model)["cache"]
        assert cache == {"type": "existingClaim", "existingClaim": "nim-model-cache", "subPath": model.name}


def test_storage_syncs_before_models_in_the_platform_project(crd_schemas: Path) -> None:
    env = example_environment("prod")
    app = applications.by_name(env)["model-storage"]
    project = applications.platform_project(env)
    assert crd_errors(app, crd_schemas) == [] and crd_errors(project, crd_schemas) == []
    assert app["spec"]["project"] == project["metadata"]["name"]
    wave = int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    assert all(wave < int(applications.by_name(env)[m.name]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
               for m in env.models)
    allowed = {(d["namespace"]) for d in project["spec"]["destinations"]}
    assert "nim" in allowed


def test_project_admits_every_rendered_kind(objects: list[dict[str, Any]]) -> None:
    project = applications.platform_project(example_environment("prod"))
    cluster = {(k["group"], k["kind"]) for k in project["spec"]["clusterResourceWhitelist"]}
    namespaced = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    for obj in objects:
        key = (obj["apiVersion"].rpartition("/")[0], obj["kind"])
        assert key in (namespaced if "namespace" in obj["metadata"] else cluster), key


def test_explicit_cache_opts_out_of_the_shared_claim(tmp_path: Path) -> None:
    text = VALID.replace("models:\n", STORAGE + "models:\n") + "    cache: {type: emptyDir}\n"
    assert run("render", write_env(tmp_path, text)).exit_code == 0
    values = (tmp_path / "argocd/test/apps/platform/model-storage.yaml").read_text()
    assert "claims: {}" in values
    from nimgen.environment.load import load_environment

    env = load_environment(tmp_path / "environments" / "test.yaml", tmp_path)
    destination = applications.by_name(env)["model-storage"]["spec"]["destination"]["namespace"]
    assert destination in {d["namespace"] for d in applications.platform_project(env)["spec"]["destinations"]}


@pytest.mark.parametrize(("warmup", "first"), [("", "add cacheWarmup so a Job downloads it once before the model syncs; "),
                                               ("    cacheWarmup: {profiles: [" + "a" * 64 + "]}\n", "")],
                         ids=["without-warm-up", "with-warm-up"])
def test_large_models_on_efs_warn(tmp_path: Path, warmup: str, first: str) -> None:
    text = VALID.replace("models:\n", STORAGE + "models:\n").replace("llama3-8b-instruct:1.0.3", "llama-3.1-70b-instruct:1.3.3")
    result = run("render", write_env(tmp_path, text + warmup))
    assert result.exit_code == 0, result.output
    # The hint offers a warm-up only to a model that has none.
    assert ("$.models[0]: warning: model 'llama3-8b-instruct' reads about 132 GiB of weights from the EFS cache at "
            f"every start\n    hint: {first}give the file system Elastic or provisioned throughput; a per-replica "
            "claim (cache: {type: claimTemplate}) avoids network reads\n") in result.output


def test_a_model_with_its_own_cache_reads_nothing_from_efs(tmp_path: Path) -> None:
    text = VALID.replace("models:\n", STORAGE + "models:\n").replace("llama3-8b-instruct:1.0.3", "llama-3.1-70b-instruct:1.3.3")
    result = run("render", write_env(tmp_path, text + "    cache: {type: claimTemplate}\n"))
    assert result.exit_code == 0, result.output
    assert "from the EFS cache" not in result.output


def test_bad_file_system_id_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("models:\n", STORAGE.replace("fs-0123456789abcdef0", "fs-xyz") + "models:\n")
    env = write_env(tmp_path, text)
    before = tree_digest(tmp_path)
    result = run("render", env)
    assert result.exit_code == 1
    assert "$.storage.modelCache.efs.fileSystemId: invalid value \"fs-xyz\"" in result.output
    assert tree_digest(tmp_path) == before


PROFILE = "8835c31752fbc67ef658b20a9f78e056914fdef0660206d82f252d62fd96064d"
WARMUP = f"    cacheWarmup: {{profiles: [{PROFILE}], timeoutMinutes: 90}}\n"


def test_warmup_job_fills_the_shared_claim_before_the_model(tmp_path: Path, helm_engine: helm.Engine) -> None:
    from nimgen.environment.load import load_environment

    text = VALID.replace("models:\n", STORAGE + "models:\n") + WARMUP
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 0, result.output
    env = load_environment(tmp_path / "environments" / "test.yaml", tmp_path)
    [model] = env.models
    app = applications.by_name(env)[model.name]
    helm_source = app["spec"]["source"]["helm"]
    assert helm_source["valuesObject"]["cacheWarmup"] == {
        "enabled": True, "profiles": [PROFILE], "activeDeadlineSeconds": 5400,
        # On a node of the model's pool, with the disk for the image and an 8B model (4 GB per billion).
        "nodeSelector": {"nimgen.io/node-pool": "a10g"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "30Gi"},
                      "limits": {"memory": "2Gi"}}}
    rendered = helm_engine.template(tmp_path / app["spec"]["source"]["path"], helm_source["valuesObject"],
                                    release=helm_source["releaseName"], namespace="nim", kube_version="1.33")
    objs = [d for p, t in sorted(rendered.items()) if not p.endswith("NOTES.txt") for d in load_all_plain(t)]
    [job] = [o for o in objs if o["kind"] == "Job"]
    assert kubernetes_errors(job, "1.33") == []
    assert job["metadata"]["name"] == "llama3-8b-instruct-cache-warmup"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    assert job["spec"]["activeDeadlineSeconds"] == 5400
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "nim-model-cache"}}]
    assert pod["containers"][0]["volumeMounts"][0]["subPath"] == "llama3-8b-instruct"
    # The models' AppProject admits Jobs only because a model warms its cache.
    kinds = {(k["group"], k["kind"]) for k in applications.app_project(env)["spec"]["namespaceResourceWhitelist"]}
    assert ("batch", "Job") in kinds


def test_no_warmup_no_jobs_in_the_project() -> None:
    env = example_environment("dev")
    assert not any(model.warmup_profiles for model in env.models)
    kinds = {(k["group"], k["kind"]) for k in applications.app_project(env)["spec"]["namespaceResourceWhitelist"]}
    assert ("batch", "Job") not in kinds


@pytest.mark.parametrize(("extra", "where"), [
    ("", "no shared cache (storage.modelCache is not set)"),
    (STORAGE, "cache type emptyDir"),
], ids=["no-shared-cache", "own-cache"])
def test_warmup_needs_a_shared_cache(tmp_path: Path, extra: str, where: str) -> None:
    text = VALID.replace("models:\n", extra + "models:\n") + WARMUP
    if extra:
        text += "    workload: Deployment\n    cache: {type: emptyDir}\n"
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1
    assert (f"$.models[0].cacheWarmup: cacheWarmup fills a shared cache, but model 'llama3-8b-instruct' has {where}\n"
            "    hint: set storage.modelCache (EFS) or cache: {type: existingClaim, claimName: ...}, or remove cacheWarmup"
            ) in result.output


def test_warmup_without_profiles_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("models:\n", STORAGE + "models:\n") + "    cacheWarmup: {timeoutMinutes: 30}\n"
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1
    assert "$.models[0].cacheWarmup" in result.output and "profiles" in result.output


def test_efs_read_warning_uses_declared_parameters_and_precision() -> None:
    """Exactly 100 GiB of weights does not warn; a byte more does; fp8 halves them; unknown models stay quiet."""
    from nimgen.environment.checks import _efs_read_time

    def warnings(model: dict[str, Any]) -> list[str]:
        found: list[str] = []
        _efs_read_time({"name": "m", "image": "registry.example.com/acme/m:1", **model}, ["models", 0],
                       lambda path, message, hint, **kwargs: found.append(message))
        return found

    exactly = 100 * 2**30 / 2  # bf16: two bytes per parameter
    assert warnings({"parameters": exactly}) == []
    assert warnings({"parameters": exactly + 1}) == [("model 'm' reads about 100 GiB of weights from the EFS cache at "
                                                     "every start")]
    assert warnings({"parameters": 2 * exactly, "precision": "fp8"}) == []
    assert warnings({"parameters": 2 * exactly + 2, "precision": "fp8"}) != []
    assert warnings({}) == []  # not in the catalog and nothing declared
