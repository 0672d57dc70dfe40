"""`nimgen diff` on real git repositories: summary, object and field changes, formats, refs, errors."""

from __future__ import annotations

import json
import locale
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_NAMES, make_repo, shared
from helpers import run, tree_digest
from nimgen.commands import diff as diffing
from nimgen.commands import diffreport
from nimgen.commands.plan import plan
from nimgen.commands.render import render_files
from nimgen.environment.load import load_environment

NEW_MODEL = """\
  - name: llama3-8b-instruct-b
    image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3
    gpus: 1
    nodePool: a10g
    replicas: {min: 2, max: 3}
    gateway: {enabled: false}      # in-cluster only: the gateway's routes stay as they are
"""
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "nimgen tests",
           "GIT_AUTHOR_EMAIL": "tests@example.com", "GIT_COMMITTER_NAME": "nimgen tests",
           "GIT_COMMITTER_EMAIL": "tests@example.com"}


def git(root: Path, *args: str) -> str:
    """Run git in `root` (no user or system configuration) and return its output."""
    done = subprocess.run(["git", "-C", str(root), "-c", "commit.gpgsign=false", *args], capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}, check=True)
    return done.stdout


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope=shared("module"))
def committed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example environments rendered and committed on `main` (copied by each test, never changed)."""
    root = make_repo(tmp_path_factory.mktemp("diff") / "repo")
    render_files([root / "environments" / f"{name}.yaml" for name in EXAMPLE_NAMES])
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "examples")
    return root


@pytest.fixture
def repo(committed: Path, tmp_path: Path) -> Path:
    """A clone-like copy of `committed`, on a feature branch."""
    root = tmp_path / "repo"
    shutil.copytree(committed, root, symlinks=True)
    git(root, "checkout", "-q", "-b", "feature")
    return root


def prod(root: Path) -> Path:
    return root / "environments" / "prod.yaml"


def report(root: Path, *args: str, env_file: Path | None = None) -> Any:
    """`nimgen diff -o json`, parsed."""
    result = run("diff", env_file or prod(root), "-o", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def keys(data: Any, change: str) -> set[tuple[str, str, str]]:
    return {(o["kind"], o["namespace"], o["name"]) for o in data["objects"] if o["change"] == change}


def test_added_model_summary_objects_and_formats(repo: Path, committed: Path) -> None:
    prod(repo).write_text(prod(repo).read_text(encoding="utf-8") + NEW_MODEL, encoding="utf-8")
    before = plan(load_environment(prod(committed), committed))
    after = plan(load_environment(prod(repo), repo))
    usd = (round(after.on_demand_usd_min - before.on_demand_usd_min, 2),  # type: ignore[operator]
           round(after.on_demand_usd_max - before.on_demand_usd_max, 2))  # type: ignore[operator]
    row = next(r for r in after.models if r.model == "llama3-8b-instruct-b")
    assert usd == (row.on_demand_usd_min, row.on_demand_usd_max)  # one A10G node's catalog price, x2 and x3
    headline = (f"+1 model; min {before.gpus_min}→{before.gpus_min + 2}, max {before.gpus_max}→{before.gpus_max + 3} "
                f"GPUs; $/h min {before.on_demand_usd_min:.2f}→{after.on_demand_usd_min:.2f}, "
                f"max {before.on_demand_usd_max:.2f}→{after.on_demand_usd_max:.2f}")

    data = report(repo)
    summary = data["summary"]
    assert summary["headline"] == headline and data["changed"] is True
    assert [(m["name"], m["change"]) for m in summary["models"]] == [("llama3-8b-instruct-b", "added")]
    assert summary["models"][0]["image"] == {"before": None, "after": "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3"}
    assert summary["totals"]["delta"] == {"gpusMin": 2, "gpusMax": 3,
                                          "onDemandUsdMin": usd[0], "onDemandUsdMax": usd[1]}
    a10g = next(p for p in summary["pools"] if p["pool"] == "a10g")
    assert (a10g["before"]["gpusMin"], a10g["before"]["gpusMax"], a10g["after"]["gpusMin"],
            a10g["after"]["gpusMax"]) == (2, 5, 4, 8)
    # A new model restarts no GPU pod; Open WebUI's pods restart to list it.
    assert [(w["kind"], w["name"], w["effect"]) for w in summary["replacements"]] == [
        ("Deployment", "open-webui", "restarts pods")]
    name = "llama3-8b-instruct-b"
    kinds = ("StatefulSet", "Service", "HorizontalPodAutoscaler", "ServiceAccount", "NetworkPolicy",
             "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule")
    assert keys(data, "added") == {("Application", "argocd", name), ("Service", "nim", f"{name}-headless"),
                                   *((kind, "nim", name) for kind in kinds)}
    assert keys(data, "removed") == set()
    # Open WebUI lists every model: its Application and Deployment gain the new model's URL.
    assert keys(data, "changed") == {("Application", "argocd", "open-webui"), ("Deployment", "open-webui", "open-webui")}
    webui = next(o for o in data["objects"] if o["kind"] == "Deployment" and o["change"] == "changed")
    assert any(f"{name}.nim.svc.cluster.local:8000/v1" in str(field) for field in webui["fields"]), webui["fields"]
    assert summary["objects"]["unchanged"] > 0
    statefulset = next(o for o in data["objects"] if o["kind"] == "StatefulSet" and o["change"] == "added")
    container = statefulset["object"]["spec"]["template"]["spec"]["containers"][0]
    assert statefulset["group"] == "apps"
    assert container["image"] == "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3"
    assert "kube-prometheus-stack (kube-prometheus-stack 79.5.0)" in summary["notRenderedOffline"]

    text = run("diff", prod(repo))
    assert text.exit_code == 0
    assert text.output.splitlines()[1] == headline
    assert f"+ StatefulSet nim/{name} (from Application {name})" in text.output
    assert text.output.count("Not rendered offline") == 1

    markdown = run("diff", prod(repo), "-o", "markdown").output
    order = [markdown.index(part) for part in (headline, "| Model |", "| Pool |", "<details>")]
    assert order == sorted(order)
    assert f"<details><summary>+ added: StatefulSet nim/{name}</summary>" in markdown
    assert "```diff\n+ apiVersion: apps/v1\n" in markdown and len(markdown) < diffreport.COMMENT_LIMIT
    assert "left out" not in markdown


def test_image_tag_change_is_a_field_change_that_restarts_the_pods(repo: Path) -> None:
    text = prod(repo).read_text(encoding="utf-8")
    prod(repo).write_text(text.replace("instruct:1.0.3", "instruct:1.0.4"), encoding="utf-8")
    data = report(repo)
    assert data["summary"]["headline"] == "1 model changed; GPUs unchanged; $/h unchanged"
    [model] = data["summary"]["models"]
    assert model["before"] == model["after"] and model["before"]["model"] == "llama3-8b-instruct"
    assert data["changed"] is True
    image = "spec.template.spec.containers[0].image"
    assert data["summary"]["replacements"] == [{
        "kind": "StatefulSet", "namespace": "nim", "name": "llama3-8b-instruct", "group": "apps",
        "effect": "restarts pods", "reason": "new image: a rolling restart of every replica",
        "fields": [image, 'spec.template.metadata.labels["app.kubernetes.io/version"]']}]
    statefulset = next(o for o in data["objects"] if (o["kind"], o["name"]) == ("StatefulSet",
                                                                                 "llama3-8b-instruct"))
    assert statefulset["change"] == "changed" and "object" not in statefulset
    assert {"path": "spec.template.spec.containers[0].image", "change": "changed",
            "before": "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3",
            "after": "nvcr.io/nim/meta/llama3-8b-instruct:1.0.4"} in statefulset["fields"]
    assert keys(data, "added") == set() and keys(data, "removed") == set()

    output = run("diff", prod(repo)).output
    assert ("~ spec.template.spec.containers[0].image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3 -> "
            "nvcr.io/nim/meta/llama3-8b-instruct:1.0.4") in output
    assert "1.0.3→1.0.4" in output.split("Kubernetes objects")[0]  # the model table shows the tags
    lines = output.splitlines()
    warning = lines.index("⚠ Forces replacement / restarts (1):")
    assert lines[warning + 2].split()[:4] == ["StatefulSet", "nim/llama3-8b-instruct", image, "(+1"]
    assert "restarts pods  new image: a rolling restart of every replica" in lines[warning + 2]
    assert warning < lines.index(next(line for line in lines if line.startswith("MODEL")))
    markdown = run("diff", prod(repo), "-o", "markdown").output
    assert (f"| StatefulSet nim/llama3-8b-instruct | {image} (+1 more) | restarts pods | new image: a rolling "
            "restart of every replica |") in markdown
    assert ("- spec.template.spec.containers[0].image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3\n"
            "+ spec.template.spec.containers[0].image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.4") in markdown


def test_removed_model_and_reformatted_file(repo: Path) -> None:
    data = report(repo)  # nothing changed yet
    assert data["summary"]["headline"] == "no model changes; GPUs unchanged; $/h unchanged"
    assert data["objects"] == [] and data["summary"]["objects"]["added"] == 0
    assert data["changed"] is False and data["summary"]["replacements"] == []
    # Reordered keys, flow style, no comments: the same environment, so still no change at all.
    from nimgen.yamlio import dump, load_plain

    document = load_plain(prod(repo).read_text(encoding="utf-8"))
    document["models"] = [document["models"][0]]  # ... except the 70B model is gone
    prod(repo).write_text(dump(dict(reversed(list(document.items())))), encoding="utf-8")
    data = report(repo)
    assert data["summary"]["headline"] == "-1 model; min 10→2, max 29→5 GPUs; $/h min 2.42, max 61.10→6.06"
    assert data["changed"] is True
    # A Deployment (it surges): no headless Service to remove; its warm-up Job and that Job's NetworkPolicy go too,
    # and so do its route, AIServiceBackend and Backend at the gateway.
    assert {o["name"] for o in data["objects"] if o["change"] == "removed"} == {
        "llama-3-1-70b-instruct", "llama-3-1-70b-instruct-cache-warmup"}
    assert {o["kind"] for o in data["objects"] if o["change"] == "removed" and o["namespace"] == "nim-gateway"} == {
        "AIGatewayRoute", "AIServiceBackend", "Backend"}
    # Its HPA metric is gone, so prometheus-adapter stops serving it; the gateway's authentication and token budgets
    # stop naming its route. Open WebUI lists the models through the gateway: only its Application's info changes.
    # ... and with the only warm-up gone, the models' project stops admitting Jobs.
    assert keys(data, "changed") == {("Application", "argocd", "prometheus-adapter"),
                                     ("Application", "argocd", "open-webui"),
                                     ("AppProject", "argocd", "prod"), ("Application", "argocd", "nim-gateway"),
                                     ("SecurityPolicy", "nim-gateway", "nim-gateway"),
                                     ("BackendTrafficPolicy", "nim-gateway", "nim-gateway")}
    assert keys(data, "added") == set()


def test_work_tree_is_untouched(repo: Path) -> None:
    prod(repo).write_text(prod(repo).read_text(encoding="utf-8") + NEW_MODEL, encoding="utf-8")
    (repo / "untracked.txt").write_text("mine\n", encoding="utf-8")

    def work_tree() -> dict[str, str]:
        return {path: digest for path, digest in tree_digest(repo).items() if not path.startswith(".git/")}

    files, status, head = work_tree(), git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")
    for output_format in ("text", "json", "markdown"):
        assert run("diff", prod(repo), "-o", output_format).exit_code == 0
    assert run("diff", prod(repo), "--base", "main~0").exit_code == 0
    assert work_tree() == files
    assert git(repo, "status", "--porcelain") == status and git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "branch", "--show-current").strip() == "feature"


def test_new_environment_is_all_added_and_markdown_is_truncated(repo: Path) -> None:
    new = repo / "environments" / "staging.yaml"
    new.write_text(prod(repo).read_text(encoding="utf-8").replace("name: prod\n", "name: staging\n"),
                   encoding="utf-8")
    data = report(repo, env_file=new)
    assert data["base"]["exists"] is False and data["environment"] == {"before": None, "after": "staging"}
    assert data["summary"]["headline"].startswith("new environment: +2 models; min 0→10, max 0→29 GPUs; $/h min 0.00→")
    assert keys(data, "changed") == set() and keys(data, "removed") == set()
    assert {"AppProject", "Application", "StatefulSet", "NodePool", "EC2NodeClass"} <= {
        o["kind"] for o in data["objects"]}
    assert data["summary"]["objects"]["added"] == len(data["objects"]) > 30

    markdown = run("diff", new, "-o", "markdown").output
    assert len(markdown) <= diffreport.COMMENT_LIMIT
    assert markdown.index("**New environment: +2 models;") < markdown.index("<details>")
    left_out = int(markdown.rsplit("_Details of ", 1)[1].split(" ")[0])
    assert 0 < left_out == len(data["objects"]) - markdown.count("<details>")
    assert markdown.rstrip().endswith(
        "run `nimgen diff environments/staging.yaml --output text` to see them all._")


def test_markdown_truncates_details_never_the_summary(repo: Path) -> None:
    text = prod(repo).read_text(encoding="utf-8")
    prod(repo).write_text(text.replace("1.0.3", "1.0.4") + NEW_MODEL, encoding="utf-8")
    result = diffing.diff(prod(repo), "main")
    full = diffreport.as_markdown(result)
    summary = full[:full.index("<details>")]
    for limit in (len(summary) + 1500, len(summary) + 4000):
        short = diffreport.as_markdown(result, limit=limit)
        assert short.startswith(summary) and len(short) <= limit
        shown = short.count("<details>")
        assert 0 < shown < len(result.objects)
        assert (f"_Details of {len(result.objects) - shown} objects left out to stay under {limit:,} "
                "characters; run `nimgen diff environments/prod.yaml --output text --base main` to see them "
                "all._") in short
    assert diffreport.as_markdown(result) == full  # deterministic


def test_bad_base_and_missing_default_branch_are_user_errors(repo: Path, tmp_path: Path) -> None:
    result = run("diff", prod(repo), "--base", "no-such-ref")
    assert result.exit_code == 1
    assert "unknown git ref 'no-such-ref'" in result.output

    loose = make_repo(tmp_path / "loose")  # not a git repository
    result = run("diff", prod(loose))
    assert result.exit_code == 1 and "is not in a git repository" in result.output

    git(loose, "init", "-q", "-b", "trunk")
    git(loose, "add", "-A")
    git(loose, "commit", "-q", "-m", "examples")
    result = run("diff", prod(loose))
    assert result.exit_code == 1 and "cannot find the default branch" in result.output
    assert run("diff", prod(loose), "--base", "trunk").exit_code == 0


def test_invalid_base_file_names_the_ref(repo: Path) -> None:
    text = prod(repo).read_text(encoding="utf-8")
    prod(repo).write_text(text.replace("    gpus: 8\n", "    gpuz: 8\n    gpus: 8\n"), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "broken")
    commit = git(repo, "rev-parse", "HEAD").strip()[:12]
    prod(repo).write_text(text, encoding="utf-8")
    result = run("diff", prod(repo), "--base", "HEAD")
    assert result.exit_code == 1
    assert f"environments/prod.yaml at base HEAD ({commit}) is invalid" in result.output
    assert f"{commit}:environments/prod.yaml:" in result.output and "unknown key 'gpuz'" in result.output


def test_default_base_follows_origin_head(repo: Path) -> None:
    git(repo, "update-ref", "refs/remotes/origin/release", "main")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/release")
    git(repo, "branch", "-q", "-m", "main", "old-main")
    data = report(repo)
    assert data["base"]["ref"] == "merge base of HEAD and origin/release"
    assert data["base"]["commit"] == git(repo, "rev-parse", "old-main").strip()


def test_field_changes_match_named_items_by_name() -> None:
    before = {"spec": {"containers": [{"name": "a", "image": "x:1", "env": [{"name": "A", "value": "1"},
                                                                              {"name": "B", "value": "2"}]}],
                       "args": ["--x", "--y"], "flag": True},
              "metadata": {"labels": {"app.kubernetes.io/name": "m"}}}
    after = {"spec": {"containers": [{"name": "a", "image": "x:2", "env": [{"name": "B", "value": "2"},
                                                                             {"name": "C", "value": "3"}]}],
                      "args": ["--x"], "flag": 1},
             "metadata": {"labels": {"app.kubernetes.io/name": "n"}}}
    changes = [(c.path, c.change, c.before, c.after) for c in diffing.field_changes(before, after)]
    assert changes == [
        ('metadata.labels["app.kubernetes.io/name"]', "changed", "m", "n"),
        ("spec.args[1]", "removed", "--y", None),
        ("spec.containers[0].env[1]", "added", None, {"name": "C", "value": "3"}),
        ("spec.containers[0].env[0]", "removed", {"name": "A", "value": "1"}, None),
        ("spec.containers[0].image", "changed", "x:1", "x:2"),
        ("spec.flag", "changed", True, 1),
    ]
    container = after["spec"]["containers"][0]
    reversed_env = [{**container, "env": container["env"][::-1]}]
    reordered = {**after, "spec": {**after["spec"], "containers": reversed_env}}
    assert diffing.field_changes(after, reordered) == []


def test_the_gateways_endpoint_and_who_may_call_each_model(repo: Path) -> None:
    text = prod(repo).read_text(encoding="utf-8")
    old = "    servedModelName: meta/llama-3.1-70b-instruct\n"
    assert text.count(old) == 1
    prod(repo).write_text(text.replace(old, old + "    gateway: {aliases: [llama-70b], public: true}\n"), encoding="utf-8")
    endpoint = report(repo)["summary"]["endpoint"]
    side = {"url": "https://llm.prod.example.com/v1", "scheme": "internal",
            "authentication": "API keys (3 clients: chat-frontend, batch-eval, open-webui)"}
    assert endpoint == {"before": side, "after": side, "routes": [{
        "model": "llama-3-1-70b-instruct", "change": "changed",
        "before": {"names": ["meta/llama-3.1-70b-instruct"], "public": False},
        "after": {"names": ["meta/llama-3.1-70b-instruct", "llama-70b"], "public": True}}]}
    output = run("diff", prod(repo)).output
    assert ("~ llama-3-1-70b-instruct: meta/llama-3.1-70b-instruct (authenticated) → meta/llama-3.1-70b-instruct, "
            "llama-70b (public)") in output
    markdown = run("diff", prod(repo), "-o", "markdown").output
    assert "Endpoint: https://llm.prod.example.com/v1 (internal, authentication: API keys" in markdown
    # Without the gateway: the endpoint and both routes go.
    gone = text.split("gateway:                          #", 1)[0] + "modelDefaults:" + text.split("modelDefaults:", 1)[1]
    gone = re.sub(r"\n    gatewayClient: [^\n]*", "", gone)  # Open WebUI then calls the models directly
    prod(repo).write_text(gone, encoding="utf-8")
    endpoint = report(repo)["summary"]["endpoint"]
    assert endpoint["after"] is None and [r["change"] for r in endpoint["routes"]] == ["removed", "removed"]
    assert "Endpoint removed: https://llm.prod.example.com/v1" in run("diff", prod(repo)).output


def test_no_endpoint_without_a_gateway_on_either_side(repo: Path) -> None:
    dev = repo / "environments" / "dev.yaml"
    dev.write_text(dev.read_text(encoding="utf-8").replace("replicas: {min: 1, max: 1}", "replicas: {min: 1, max: 2}"),
                   encoding="utf-8")
    data = report(repo, env_file=dev)
    assert data["changed"] is True and data["summary"]["endpoint"] is None
    assert "Endpoint" not in run("diff", dev).output


def test_paths_that_lead_nowhere_are_user_errors(repo: Path) -> None:
    result = run("diff", repo / "environments" / "none.yaml")
    base = git(repo, "merge-base", "HEAD", "main").strip()[:12]
    assert result.exit_code == 1
    assert result.output == (f"error: environments/none.yaml exists neither in the work tree nor at base merge base of "
                             f"HEAD and main ({base})\n  hint: check the path, or pass another --base REF\n")
    result = run("diff", repo / "nowhere" / "environments" / "prod.yaml")
    assert (result.exit_code, result.output) == (1, f"error: {repo / 'nowhere' / 'environments'} does not exist\n")


def test_a_removed_environment_removes_everything_it_rendered(repo: Path) -> None:
    prod(repo).unlink()
    data = report(repo)
    assert data["summary"]["headline"].startswith("environment removed: -2 models; min 10→0, max 29→0 GPUs")
    assert keys(data, "added") == keys(data, "changed") == set() and keys(data, "removed")


def test_diff_without_a_helm_engine_says_what_to_install(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "helm_python", None)  # as if nimgen[validate] were not installed
    tools = repo.parent / "git-only"  # diff reads the base through git; no helm beside it
    tools.mkdir()
    (tools / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(tools))
    result = run("diff", prod(repo))
    assert (result.exit_code, result.output) == (1, ("error: no Helm engine: install helm-python-sdk (pip install "
                                                    "'nimgen[validate]') or put helm on PATH\n  hint: diff renders "
                                                    "charts as Argo CD does: pip install 'nimgen[validate]'\n"))


@pytest.mark.skipif(sys.flags.utf8_mode, reason="UTF-8 mode writes every file as UTF-8 whatever the locale")
def test_a_diff_renders_text_beyond_ascii_whatever_the_locale(repo: Path) -> None:
    text = prod(repo).read_text(encoding="utf-8")
    prod(repo).write_text(re.sub(r"(?m)^description: .*$", "description: Modèles de production — équipe ML", text)
                          if re.search(r"(?m)^description: ", text) else
                          text.replace("\nname: prod\n", "\nname: prod\ndescription: Modèles de production — équipe ML\n"),
                          encoding="utf-8")
    previous = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # an ASCII locale: a file written without an encoding fails on 'è'
    try:
        result = run("diff", prod(repo), "-o", "json")
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changed"] is True
