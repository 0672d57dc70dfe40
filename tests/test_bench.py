"""`nimgen bench`: GenAI-Perf Jobs per model, printed or written beside (not into) the rendered tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import example_environment, shared
from helpers import run, tree_digest
from kube import crd_errors, kubernetes_errors
from nimgen import helm
from nimgen.commands import bench
from nimgen.gitops import applications
from nimgen.model import Environment
from nimgen.secrets import find_secrets
from nimgen.yamlio import load_all_plain

PROD_MODELS = [model.name for model in example_environment("prod").models]


def _jobs(text: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in load_all_plain(text) if doc["kind"] == "Job"}


def _container(job: dict[str, Any], name: str) -> dict[str, Any]:
    pod = job["spec"]["template"]["spec"]
    [found] = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name]
    return found


def _flags(job: dict[str, Any]) -> dict[str, str]:
    """genai-perf's options: flag -> value ("" for a switch)."""
    args = _container(job, "genai-perf")["args"]
    flags: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.startswith("-"):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            flags[arg] = "" if nxt.startswith("--") else nxt
    return flags


def _bench(root: Path, *args: str) -> Any:
    return run("bench", root / "environments" / "prod.yaml", *args)


@pytest.fixture(scope=shared("module"))
def prod() -> Environment:
    return example_environment("prod")


@pytest.fixture()
def rendered(repo: Path) -> Path:
    result = run("render", repo / "environments" / "prod.yaml", repo / "environments" / "dev.yaml")
    assert result.exit_code == 0, result.output
    return repo


@pytest.mark.parametrize("model", PROD_MODELS)
def test_jobs_validate_and_need_no_gpu(prod: Environment, model: str) -> None:
    documents = load_all_plain(bench.jobs_yaml(prod, bench.select_models(prod, (model,)), bench.BenchParams()))
    assert [d["kind"] for d in documents] == ["NetworkPolicy", "Job"]
    for document in documents:
        assert kubernetes_errors(document, prod.kubernetes_version) == [], document["kind"]
        assert list(find_secrets(document)) == []
    job = documents[1]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, 1800, 86400)
    # The reference deployment's pod asked for a GPU without tolerating the taint: nothing of that here.
    assert "tolerations" not in pod and "nodeSelector" not in pod
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {"matchExpressions": [{"key": "nimgen.io/node-pool", "operator": "DoesNotExist"}]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    for container in pod["initContainers"] + pod["containers"]:
        assert "gpu" not in str(container["resources"]).lower()
        assert container["image"] == bench.SDK_IMAGE == "nvcr.io/nvidia/tritonserver:25.01-py3-sdk"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/artifacts", "/tmp"}
    assert [c["name"] for c in pod["initContainers"]] == ["wait-for-model", "genai-perf"]
    # What `kubectl logs job/...` shows: GenAI-Perf's summary export.
    assert _container(job, "report")["args"] == ["/artifacts/profile_export_genai_perf.json"]
    assert pod["volumes"][0] == {"name": "artifacts", "emptyDir": {"sizeLimit": "1Gi"}}
    policy = documents[0]
    assert policy["spec"]["ingress"] == [] and policy["spec"]["podSelector"]["matchLabels"].items() <= \
        pod_labels(job).items()


def pod_labels(job: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = job["spec"]["template"]["metadata"]["labels"]
    return labels


def test_defaults_are_the_reference_deployments(rendered_repo: Path, prod: Environment) -> None:
    result = _bench(rendered_repo, "--model", "llama3-8b-instruct")
    assert result.exit_code == 0, result.output
    job = _jobs(result.stdout)["llama3-8b-instruct-genai-perf"]
    assert _container(job, "genai-perf")["command"] == ["genai-perf", "profile"]
    flags = _flags(job)
    assert {flag: flags[flag] for flag in ("--synthetic-input-tokens-mean", "--output-tokens-mean", "--num-prompts",
                                           "--concurrency")} == {
        "--synthetic-input-tokens-mean": "200", "--output-tokens-mean": "100", "--num-prompts": "100",
        "--concurrency": "10"}
    assert (flags["--service-kind"], flags["--endpoint-type"], flags["-m"]) == (
        "openai", "completions", "meta/llama3-8b-instruct")  # POST /v1/completions with the served model id
    assert flags["--streaming"] == "" and flags["--tokenizer"] == "hf-internal-testing/llama-tokenizer"
    assert (flags["--artifact-dir"], flags["--profile-export-file"]) == ("/artifacts", "profile_export.json")
    # The CLI's defaults are the library's.
    assert result.stdout == bench.jobs_yaml(prod, bench.select_models(prod, ("llama3-8b-instruct",)),
                                            bench.BenchParams())


def test_options_reach_genai_perf(rendered_repo: Path) -> None:
    result = _bench(rendered_repo, "--concurrency", "32", "--input-tokens", "1024", "--output-tokens", "64",
                    "--num-prompts", "20", "--tokenizer", "meta-llama/Meta-Llama-3-8B-Instruct")
    assert result.exit_code == 0, result.output
    jobs = _jobs(result.stdout)
    assert set(jobs) == {f"{name}-genai-perf" for name in PROD_MODELS}
    for job in jobs.values():
        flags = _flags(job)
        assert (flags["--concurrency"], flags["--synthetic-input-tokens-mean"], flags["--output-tokens-mean"],
                flags["--num-prompts"], flags["--tokenizer"]) == (
            "32", "1024", "64", "20", "meta-llama/Meta-Llama-3-8B-Instruct")
    assert _bench(rendered_repo, "--concurrency", "0").exit_code == 2  # a usage error


def test_url_targets_the_models_service(prod: Environment, rendered_repo: Path, helm_engine: helm.Engine) -> None:
    for model in prod.models:
        app = applications.by_name(prod)[model.name]
        source = app["spec"]["source"]
        objects = [d for p, t in helm_engine.template(
            rendered_repo / source["path"], source["helm"]["valuesObject"], release=source["helm"]["releaseName"],
            namespace=app["spec"]["destination"]["namespace"], kube_version="1.33").items()
            if not p.endswith("NOTES.txt") for d in load_all_plain(t)]
        [service] = [o for o in objects if o["kind"] == "Service" and "clusterIP" not in o["spec"]]
        [port] = [p["port"] for p in service["spec"]["ports"] if p["name"] == "http-openai"]
        address = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{port}"
        job = bench.job(prod, model, bench.BenchParams())
        assert _flags(job)["--url"] == address
        assert _container(job, "wait-for-model")["args"][0] == f"http://{address}/v1/health/ready"
        assert job["metadata"]["namespace"] == service["metadata"]["namespace"]
        # The benchmark pod is a client: the model's Service (and PDB, NetworkPolicy) never select it.
        assert not service["spec"]["selector"].items() <= pod_labels(job).items()


def test_model_filter_and_unknown_model(rendered: Path) -> None:
    one = _bench(rendered, "--model", "llama-3-1-70b-instruct")
    assert one.exit_code == 0 and set(_jobs(one.stdout)) == {"llama-3-1-70b-instruct-genai-perf"}
    both = _bench(rendered, "--model", "llama-3-1-70b-instruct", "--model", "llama3-8b-instruct")
    assert len(_jobs(both.stdout)) == 2
    before = tree_digest(rendered)
    for args in (("--model", "llama3"), ("--model", "llama3", "--write")):
        result = _bench(rendered, *args)
        assert result.exit_code == 1
        assert "error: no model 'llama3' in environment 'prod'" in result.output
        assert "known models: llama3-8b-instruct, llama-3-1-70b-instruct" in result.output
    assert tree_digest(rendered) == before


def test_written_application_is_manual_and_valid(rendered: Path, prod: Environment, crd_schemas: Path) -> None:
    result = _bench(rendered, "--write", "--concurrency", "16")
    assert result.exit_code == 0, result.output
    assert "next: commit and push; 'kubectl apply -n argocd -f argocd/prod/bench/' once" in result.output
    folder = rendered / "argocd/prod/bench"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "application.yaml", "generated-files.txt", "jobs/llama-3-1-70b-instruct.yaml",
        "jobs/llama3-8b-instruct.yaml", "project.yaml"]
    [app] = load_all_plain((folder / "application.yaml").read_text())
    [project] = load_all_plain((folder / "project.yaml").read_text())
    assert crd_errors(app, crd_schemas) == [] and crd_errors(project, crd_schemas) == []
    assert "syncPolicy" not in app["spec"]  # nothing automated: a benchmark runs only when someone syncs it
    assert app["spec"]["project"] == project["metadata"]["name"] == "prod-bench"
    assert app["spec"]["source"]["path"] == "argocd/prod/bench/jobs"  # not under apps/: the root app never sees it
    assert "200 input / 100 output tokens, 100 prompts, concurrency 16" in str(app["spec"]["info"])
    assert {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]} == set(bench.KINDS)
    assert project["spec"]["clusterResourceWhitelist"] == []
    assert {d["namespace"] for d in project["spec"]["destinations"]} == set(prod.namespaces)
    # The models' own project admits Jobs only for the models' cache warm-ups (prod's 70B model has one).
    warmups = any(model.warmup_profiles for model in prod.models)
    assert warmups and (("batch", "Job") in {(k["group"], k["kind"]) for k in applications.app_project(prod)["spec"][
        "namespaceResourceWhitelist"]})
    for path in (folder / "jobs").iterdir():
        documents = load_all_plain(path.read_text())
        assert {(d["apiVersion"].rpartition("/")[0], d["kind"]) for d in documents} <= set(bench.KINDS)
        [job] = [d for d in documents if d["kind"] == "Job"]
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Sync"  # each sync runs it again
        assert _flags(job)["--concurrency"] == "16"
        assert path.read_text().startswith("# Generated by nimgen from environments/prod.yaml.")


def test_check_render_and_validate_ignore_the_bench_folder(rendered: Path, monkeypatch: Any) -> None:
    assert _bench(rendered, "--write").exit_code == 0
    bench_files = {k: v for k, v in tree_digest(rendered).items() if "/bench/" in k}
    monkeypatch.chdir(rendered)
    check = run("check")
    assert check.exit_code == 0 and check.output == "dev: up to date\nprod: up to date\n", check.output
    render = run("render", rendered / "environments/prod.yaml")
    assert render.exit_code == 0 and "bench" not in render.output
    assert {k: v for k, v in tree_digest(rendered).items() if "/bench/" in k} == bench_files
    assert "bench" not in (rendered / "argocd/prod/generated-files.txt").read_text()
    from nimgen.validation.sources import iter_argocd_manifests

    assert not [m for m in iter_argocd_manifests(rendered, example_environment("prod", rendered))
                if "/bench/" in m.file]


def test_rewrite_replaces_the_previous_run_and_nothing_else(rendered: Path) -> None:
    folder = rendered / "argocd/prod/bench"
    assert _bench(rendered, "--write").exit_code == 0
    again = _bench(rendered, "--write")
    assert again.exit_code == 0 and "create" not in again.output and "update" not in again.output  # idempotent
    narrower = _bench(rendered, "--write", "--model", "llama3-8b-instruct")
    assert narrower.exit_code == 0
    assert "delete  argocd/prod/bench/jobs/llama-3-1-70b-instruct.yaml" in narrower.output
    assert sorted(p.name for p in (folder / "jobs").iterdir()) == ["llama3-8b-instruct.yaml"]
    # Someone else's file where nimgen would write: refused, nothing changed.
    (folder / "jobs" / "llama-3-1-70b-instruct.yaml").write_text("kind: ConfigMap\n")
    before = tree_digest(rendered)
    refused = _bench(rendered, "--write")
    assert refused.exit_code == 1 and "llama-3-1-70b-instruct.yaml" in refused.output
    assert tree_digest(rendered) == before


def test_written_jobs_pass_checkov(rendered: Path) -> None:
    from test_checkov import SKIP_IDS, _describe, _scan

    assert _bench(rendered, "--write").exit_code == 0
    report = _scan(rendered / "argocd/prod/bench", SKIP_IDS)
    assert report.passed_checks and report.failed_checks == [], _describe(report.failed_checks)
