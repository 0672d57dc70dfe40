"""`nimgen validate` on a kustomize Kustomization dropped into the tree, and on documents that are no Kubernetes
object at all: each is a finding at its file that says what Argo CD does with it, never an internal error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nimgen.validation import kustomize
from test_validate import edit_yaml, model_app, own, validate
from test_validate_tree import write

KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"
ROOT_INCLUDE = "{project.yaml,models/*.yaml,platform/*.yaml}"  # what nimgen's root Application reads of apps/


def lines(result: Any, prefix: str) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(prefix)]


# ---------------------------------------------------------------- where Argo CD ignores it, applies it, or switches


def test_kustomization_under_apps_is_ignored_by_the_root_application(repo_copy: Path, crd_schemas: Path) -> None:
    write(repo_copy, "argocd/prod/apps/kustomization.yaml", KUSTOMIZATION, owned=False)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output  # nimgen did not write it: an ownership error
    [finding] = [line for line in result.output.splitlines() if "[tree]" in line]
    assert finding == (
        "warning: prod/prod-root argocd/prod/apps/kustomization.yaml:1: [tree] is a kustomize Kustomization, not a "
        "Kubernetes object, and Argo CD ignores it: the root Application prod-root reads argocd/prod/apps/ as a plain "
        "directory (spec.source.directory: Argo CD never switches it to Kustomize) reading only "
        f"'{ROOT_INCLUDE}'; the file has no effect")
    assert "hint: remove it: nimgen writes argocd/prod/ from environments/prod.yaml" in result.output
    assert lines(result, "error: prod argocd/prod/apps/kustomization.yaml: [ownership] is not in")
    assert "has no metadata" not in result.output


def test_kustomization_the_root_application_reads_fails_its_sync(repo_copy: Path, crd_schemas: Path) -> None:
    # models/*.yaml is in the root's include: Argo CD reads the file as a plain manifest and cannot apply it.
    write(repo_copy, "argocd/prod/apps/models/kustomization.yaml", KUSTOMIZATION)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    assert lines(result, "error: prod/prod-root argocd/prod/apps/models/kustomization.yaml:1: [tree] is a kustomize "
                         "Kustomization, not a Kubernetes object: the root Application prod-root reads argocd/prod/apps/ "
                         "as a plain directory, which Argo CD never builds with kustomize, so it would apply this file "
                         "as an object and the sync fails"), result.output


def test_root_application_without_a_tool_switches_to_kustomize(repo_copy: Path, crd_schemas: Path) -> None:
    # Without spec.source.directory Argo CD detects the tool: a kustomization.yaml at the top means Kustomize.
    root_file = repo_copy / "argocd/prod/root.yaml"
    edit_yaml(root_file, lambda app: app["spec"]["source"].pop("directory"))
    own(repo_copy, "argocd/prod/root.yaml")
    write(repo_copy, "argocd/prod/apps/kustomization.yaml", KUSTOMIZATION)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    [finding] = [line for line in result.output.splitlines() if "kustomization.yaml" in line]
    assert finding == (
        "error: prod/prod-root argocd/prod/apps/kustomization.yaml: [tree] makes Argo CD build argocd/prod/apps/ with "
        "Kustomize: the root Application prod-root names no tool (spec.source.directory), and Argo CD detects "
        "Kustomize from kustomization.yaml at the top of the folder; it would apply only what this file lists, and "
        "prune every Application it does not list")


def test_kustomization_beside_root_yaml_is_applied_by_nothing(repo_copy: Path, crd_schemas: Path) -> None:
    write(repo_copy, "argocd/prod/kustomization.yaml", KUSTOMIZATION)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 0, result.output  # recorded as nimgen's here: only the tree check speaks
    assert lines(result, "warning: prod argocd/prod/kustomization.yaml:1: [tree] is a kustomize Kustomization, not "
                         "a Kubernetes object, and nothing applies it: Terraform installs root.yaml and "
                         "root-project.yaml from argocd/prod/"), result.output


def test_kustomization_in_chart_templates_is_rendered_by_helm(repo_copy: Path, crd_schemas: Path) -> None:
    (repo_copy / "charts/nim-llm/templates/kustomization.yaml").write_text(KUSTOMIZATION)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    found = [line for line in lines(result, "error:") if "kustomization.yaml" in line]
    assert len(found) == 2, result.output  # one per model Application rendering the chart
    assert found[0].startswith(
        "error: prod/llama-3-1-70b-instruct Application argocd/llama-3-1-70b-instruct "
        "charts/nim-llm/templates/kustomization.yaml: [render] nim-llm/templates/kustomization.yaml document 1: is a "
        "kustomize Kustomization, not a Kubernetes object: Helm renders every file under templates/, and Argo CD, "
        "which runs helm template for this Application and never kustomize, would apply it and fail; move it out of "
        "templates/"), found


def test_kustomization_beside_chart_yaml_matters_only_without_an_explicit_tool(repo_copy: Path,
                                                                               crd_schemas: Path) -> None:
    (repo_copy / "charts/nim-llm/kustomization.yaml").write_text(KUSTOMIZATION)
    # llama3-8b-instruct names no tool; the 70b model keeps spec.source.helm, so Helm renders it and ignores the file.
    edit_yaml(model_app(repo_copy), lambda app: app["spec"]["source"].pop("helm"))
    own(repo_copy, model_app(repo_copy).relative_to(repo_copy).as_posix())
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    found = [line for line in lines(result, "error:") if "kustomization.yaml" in line]
    assert found == [(
        "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct spec.source: [render] charts/nim-llm "
        "holds kustomization.yaml beside its Chart.yaml and the Application names no tool (spec.source.helm): Argo CD "
        "builds it with Kustomize, not as a Helm chart; remove charts/nim-llm/kustomization.yaml or set "
        "spec.source.helm")], result.output


# ---------------------------------------------------------------- documents that are no object: never a crash

MALFORMED = {  # file stem -> (document, what validate says of it)
    "a-list": ("- apiVersion: v1\n  kind: ConfigMap\n", "is a list, not"),
    "a-string": ("just text\n", "is a string, not"),
    "no-kind": ("apiVersion: v1\nmetadata: {name: x, namespace: nim}\n", "has no kind"),
    "no-api-version": ("kind: ConfigMap\nmetadata: {name: x, namespace: nim}\n", "has no apiVersion"),
    "kind-a-list": ("apiVersion: v1\nkind: [ConfigMap]\nmetadata: {name: x, namespace: nim}\n",
                    "kind is a list, not a string"),
    "api-version-a-mapping": ("apiVersion: {v: 1}\nkind: ConfigMap\nmetadata: {name: x, namespace: nim}\n",
                              "apiVersion is a mapping, not a string"),
    "no-metadata": ("apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n", "has no metadata"),
    "metadata-a-list": ("apiVersion: v1\nkind: ConfigMap\nmetadata: [x]\n", "metadata is a list, not a mapping"),
    "metadata-a-string": ("apiVersion: v1\nkind: ConfigMap\nmetadata: x\n", "metadata is a string, not a mapping"),
}


def test_malformed_documents_in_the_tree_are_located_findings(repo_copy: Path, crd_schemas: Path) -> None:
    for stem, (text, _) in MALFORMED.items():
        write(repo_copy, f"argocd/prod/apps/platform/{stem}.yaml", text)
    result = validate(repo_copy, crd_schemas)  # CliRunner re-raises: a crash fails here, not as exit 3
    assert result.exit_code == 1, result.output
    tree = [line for line in lines(result, "error:") if "[tree]" in line]
    for stem, (_, said) in MALFORMED.items():
        file = f"argocd/prod/apps/platform/{stem}.yaml:"
        assert [line for line in tree if file in line and said in line.split("[tree] ")[1]], (stem, tree)
    assert len(tree) == len(MALFORMED), tree


def test_malformed_documents_a_chart_renders_are_located_findings(repo_copy: Path, crd_schemas: Path) -> None:
    for stem, (text, _) in MALFORMED.items():
        (repo_copy / f"charts/block-storage/templates/{stem}.yaml").write_text(text)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    found = [line for line in lines(result, "error: prod/block-storage ") if "[render]" in line]
    for stem, (_, said) in MALFORMED.items():
        prefix = f"charts/block-storage/templates/{stem}.yaml: [render] block-storage/templates/{stem}.yaml document 1:"
        assert [line for line in found if prefix in line and said in line], (stem, found)
    assert len(found) == len(MALFORMED), found


# ---------------------------------------------------------------- Argo CD's rules, unit by unit


@pytest.mark.parametrize(("path", "read"), [
    ("project.yaml", True), ("models/llama.yaml", True), ("platform/block-storage.yaml", True),
    ("models/deep/er.yaml", True),  # gobwas without separators: `*` spans folders
    ("kustomization.yaml", False), ("extra.yaml", False), ("models/notes.yml", False), ("project.yml", False),
])
def test_the_root_include_glob_as_argo_cd_matches_it(path: str, read: bool) -> None:
    assert kustomize.directory_reads({"recurse": True, "include": ROOT_INCLUDE}, path) is read


@pytest.mark.parametrize(("settings", "path", "read"), [
    ({}, "a.yaml", True), ({}, "sub/a.yaml", False), ({"recurse": True}, "sub/a.yaml", True),
    ({"recurse": True, "exclude": "sub/*"}, "sub/a.yaml", False), ({"include": "[!k]*.yaml"}, "kustomization.yaml", False),
    ({"include": "?.yaml"}, "a.yaml", True), ({"include": "{a,{b,c}}.yaml"}, "c.yaml", True),
    ({"include": "a\\*.yaml"}, "ab.yaml", False), ({"include": "a\\*.yaml"}, "a*.yaml", True),
    ({"include": "[unclosed"}, "[unclosed", False), ({"include": "{a,b"}, "a", False),  # no glob: nothing read
])
def test_directory_settings(settings: dict[str, Any], path: str, read: bool) -> None:
    assert kustomize.directory_reads(settings, path) is read


@pytest.mark.parametrize(("files", "tool"), [
    (["Chart.yaml", "values.yaml"], ("helm", "Chart.yaml")),
    (["Chart.yaml", "kustomization.yaml"], ("kustomize", "kustomization.yaml")),  # sorts after Chart.yaml: wins
    (["Kustomization", "MyChart.yaml"], ("helm", "MyChart.yaml")),  # the last match in name order wins
    (["a.yaml"], ("directory", "")),
])
def test_tool_detection_follows_argo_cd(tmp_path: Path, files: list[str], tool: tuple[str, str]) -> None:
    for name in files:
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "kustomization.yml").mkdir()  # folders never count
    assert kustomize.detected_tool(tmp_path) == tool


@pytest.mark.parametrize(("doc", "name", "build_file"), [
    ({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}, "any.yaml", True),
    ({"resources": ["a.yaml"]}, "kustomization.yml", True),  # apiVersion and kind are optional to kustomize
    ({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "flux"}},
     "kustomization.yaml", False),  # Flux's Kustomization is a Kubernetes object
    (["a"], "kustomization.yaml", False),
])
def test_what_counts_as_a_kustomization(doc: Any, name: str, build_file: bool) -> None:
    assert kustomize.is_kustomization(doc, name) is build_file
