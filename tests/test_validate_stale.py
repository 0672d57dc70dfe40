"""`nimgen validate` on a tree that is not what rendering gives now: a warning up front naming the command that
brings it up to date, while the committed files (what Argo CD applies) are still checked."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from helpers import run
from nimgen.environment.load import load_environments
from nimgen.errors import UserError
from nimgen.validation import staleness
from nimgen.validation.report import FORMATS
from nimgen.validation.runner import Options
from nimgen.validation.runner import validate as run_validate
from nimgen.validation.schemas import SchemaLocation
from test_validate import edit_yaml, model_app, own, validate

STALE = ("warning: prod: [stale] argocd/prod is stale: 3 files differ from what rendering environments/prod.yaml "
         "gives now (3 stale); validate checks the committed files, which are what Argo CD applies")
FIX = ("    hint: run 'nimgen render environments/prod.yaml' and commit the result; "
       "'nimgen check environments/prod.yaml' names each file")


def _raise_replicas(root: Path) -> None:
    """Edit prod's environment file after the render: llama3-8b-instruct's replica floor 2 -> 3."""
    env_file = root / "environments/prod.yaml"
    text = env_file.read_text()
    assert text.count("replicas: {min: 2, max: 5}") == 1
    env_file.write_text(text.replace("replicas: {min: 2, max: 5}", "replicas: {min: 3, max: 5}"))


def test_a_stale_tree_is_a_warning_up_front(repo_copy: Path, crd_schemas: Path) -> None:
    before = validate(repo_copy, crd_schemas)
    _raise_replicas(repo_copy)
    result = validate(repo_copy, crd_schemas)
    # Still exit 0: the committed tree is valid, and `nimgen check` is what fails on staleness (CI runs both).
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [STALE, FIX]
    # What is checked is still the committed tree: the same objects and Applications as before the edit.
    assert result.output.splitlines()[-1] == before.output.splitlines()[-1].replace(" 0 errors,", " 0 errors, 1 warning,")
    check = run("check", repo_copy / "environments/prod.yaml")
    assert check.exit_code == 1 and "3 files out of date; fix: nimgen render environments/prod.yaml" in check.output
    assert run("render", repo_copy / "environments/prod.yaml").exit_code == 0
    assert "[stale]" not in validate(repo_copy, crd_schemas).output


def test_the_reports_agree_on_staleness(repo_copy: Path, crd_schemas: Path) -> None:
    _raise_replicas(repo_copy)
    report = run_validate([repo_copy / "environments/prod.yaml"], Options((SchemaLocation.parse(str(crd_schemas)),)))
    document = json.loads(FORMATS["json"](report))
    assert document["findings"][0]["check"] == "stale" and document["summary"]["warnings"] == 1
    assert f"warning: prod: [stale] {document['findings'][0]['message']}" == STALE
    suites = ET.fromstring(FORMATS["junit"](report))
    [prod] = [suite for suite in suites.iter("testsuite") if suite.get("name") == "prod"]
    [case] = [case for case in prod.iter("testcase") if case.get("name") == "(environment)"]
    output = case.find("system-out")
    assert output is not None and (output.text or "").startswith(f"{STALE}\n{FIX}")


def test_hand_edits_are_ownership_errors_not_staleness(repo_copy: Path, crd_schemas: Path) -> None:
    # An Application edited after render: the ownership check names it; the tree is not called stale for it.
    edit_yaml(model_app(repo_copy), lambda app: app["metadata"]["labels"].update(team="ml"))
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1
    assert "[ownership] was edited after nimgen wrote it" in result.output and "[stale]" not in result.output


def test_files_nimgen_no_longer_renders_make_the_tree_stale(repo_copy: Path, crd_schemas: Path) -> None:
    extra = repo_copy / "argocd/prod/apps/platform/retired.yaml"
    extra.write_text((repo_copy / "argocd/prod/apps/platform/block-storage.yaml").read_text()
                     .replace("name: block-storage", "name: retired"))
    own(repo_copy, "argocd/prod/apps/platform/retired.yaml")
    result = validate(repo_copy, crd_schemas)
    assert result.output.splitlines()[0] == (
        "warning: prod: [stale] argocd/prod is stale: 2 files differ from what rendering environments/prod.yaml "
        "gives now (1 extra, 1 stale); validate checks the committed files, which are what Argo CD applies")


def test_an_environment_that_does_not_render_is_said(repo_copy: Path, monkeypatch: Any) -> None:
    def refuse(env: Any) -> Any:
        raise UserError("refusing to write output that contains secret values")

    monkeypatch.setattr(staleness, "render_environment", refuse)
    [(env, root)] = load_environments([repo_copy / "environments/prod.yaml"])
    [finding] = staleness.check(env, root)
    assert (finding.severity, finding.check, finding.message) == (
        "warning", "stale", ("cannot tell whether argocd/prod is current: rendering environments/prod.yaml fails: "
                            "refusing to write output that contains secret values"))
