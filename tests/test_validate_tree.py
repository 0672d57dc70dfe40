"""`nimgen validate` on trees Argo CD cannot use: a chart gone, a source path outside the repository, documents
that are no Kubernetes object. Each is an error placed at its file (and line), never an internal error."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nimgen.validation.paths import inside
from nimgen.validation.yamldocs import documents
from test_validate import Cases, edit_yaml, errors, model_app, own, validate

Edit = Callable[[Path], None]
APPS = "argocd/prod/apps"
EXTRA = f"{APPS}/extra.yaml"



def write(root: Path, relative: str, text: str, *, owned: bool = True) -> None:
    """A committed file; recorded as nimgen's unless `owned` is False (so that only the check under test speaks)."""
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_text(text)
    if owned and relative.startswith("argocd/prod/"):
        own(root, relative)


def set_source(root: Path, **source: Any) -> None:
    """Change the first model Application's spec.source and record the file as nimgen's."""
    edit_yaml(model_app(root), lambda app: app["spec"]["source"].update(source))
    own(root, model_app(root).relative_to(root).as_posix())



CASES = Cases()
case = CASES.add


# 1. A chart an Application renders is gone.

@case("chart-folder-deleted", "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct spec.source: "
                              "[render] charts/nim-llm does not exist in the repository")
def _chart_folder(root: Path) -> None:
    shutil.rmtree(root / "charts/nim-llm")


@case("chart-yaml-deleted", "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct spec.source: "
                            "[render] charts/nim-llm has no Chart.yaml: Argo CD cannot render it as a Helm chart")
def _chart_yaml(root: Path) -> None:
    (root / "charts/nim-llm/Chart.yaml").unlink()


@case("chart-is-a-file", "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct spec.source: [render] "
                         "charts/nim-llm/values.yaml is a file, not a folder")
def _chart_file(root: Path) -> None:
    set_source(root, path="charts/nim-llm/values.yaml")


# 3. Source paths leaving the repository.

@case("absolute-path", "error: prod/prod-root Application argocd/llama3-8b-instruct spec.source.path "
                       "argocd/prod/apps/models/llama3-8b-instruct.yaml: [source-path] path '/etc' is absolute")
def _absolute(root: Path) -> None:
    set_source(root, path="/etc")


@case("dotdot-path", "error: prod/prod-root Application argocd/llama3-8b-instruct spec.source.path "
                     "argocd/prod/apps/models/llama3-8b-instruct.yaml: [source-path] path 'charts/../../nim-llm' "
                     "leaves the repository")
def _dotdot(root: Path) -> None:
    set_source(root, path="charts/../../nim-llm")


@case("symlink-path", "error: prod/prod-root Application argocd/llama3-8b-instruct spec.source.path "
                      "argocd/prod/apps/models/llama3-8b-instruct.yaml: [source-path] path 'charts/outside' leads "
                      "through a symbolic link to")
def _symlink(root: Path) -> None:
    outside = root.parent / "outside-chart"
    shutil.copytree(root / "charts/nim-llm", outside)
    (root / "charts/outside").symlink_to(outside)
    set_source(root, path="charts/outside")


@case("sources-path", "error: prod/prod-root Application argocd/llama3-8b-instruct spec.sources[1].path "
                      "argocd/prod/apps/models/llama3-8b-instruct.yaml: [source-path] path '../secrets' leaves the "
                      "repository")
def _sources(root: Path) -> None:
    def multi(app: dict[str, Any]) -> None:
        source = app["spec"].pop("source")
        app["spec"]["sources"] = [source, {"repoURL": source["repoURL"], "targetRevision": "main",
                                           "path": "../secrets"}]
    edit_yaml(model_app(root), multi)
    own(root, model_app(root).relative_to(root).as_posix())


@case("link-inside-chart", "error: prod/prod-root Application argocd/llama3-8b-instruct spec.source.path "
                           "argocd/prod/apps/models/llama3-8b-instruct.yaml: [source-path] "
                           "charts/nim-llm/files/hosts is a symbolic link to /etc/hosts, outside the repository")
def _inner_link(root: Path) -> None:
    (root / "charts/nim-llm/files").mkdir()
    (root / "charts/nim-llm/files/hosts").symlink_to("/etc/hosts")


@case("value-file-outside", "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct spec.source: "
                            "[render] value file ../../../outside.yaml is outside the repository")
def _value_file(root: Path) -> None:
    (root.parent / "outside.yaml").write_text("gpu: {count: 1}\n")
    edit_yaml(model_app(root), lambda app: app["spec"]["source"]["helm"].update(valueFiles=["../../../outside.yaml"]))
    own(root, model_app(root).relative_to(root).as_posix())


# 4. Documents that are no Kubernetes object: findings with file and line, never a crash.

@case("template-invalid-yaml", "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct "
                               "charts/nim-llm/templates/broken.yaml: [render] nim-llm/templates/broken.yaml renders "
                               "invalid YAML at line 2 of its output")
def _template_yaml(root: Path) -> None:
    (root / "charts/nim-llm/templates/broken.yaml").write_text("kind: ConfigMap\nmetadata: name: {{ .Release.Name }}\n")


@case("template-renders-a-list", "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct "
                                 "charts/nim-llm/templates/list.yaml: [render] nim-llm/templates/list.yaml document 1: "
                                 "is a list, not an object")
def _template_list(root: Path) -> None:
    (root / "charts/nim-llm/templates/list.yaml").write_text("- {{ .Release.Name }}\n")


def _spec_string(root: Path) -> int:
    """The model Application with `spec: "string"`; the line of its spec."""
    path = model_app(root)
    head = path.read_text().split("\nspec:")[0]
    path.write_text(head + '\nspec: "string"\n')
    return head.count("\n") + 2


@case("no-metadata", f"error: prod/prod-root ConfigMap <unnamed> {EXTRA}:2: [tree] has no metadata")
def _no_metadata(root: Path) -> None:
    write(root, EXTRA, "# a comment\napiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n")


@case("not-a-mapping", f"error: prod/prod-root {EXTRA}:1: [tree] document 1 is a string, not a Kubernetes object")
def _scalar(root: Path) -> None:
    write(root, EXTRA, "just text\n")


@case("a-list", f"error: prod/prod-root {EXTRA}:1: [tree] document 1 is a list, not a Kubernetes object")
def _list(root: Path) -> None:
    write(root, EXTRA, "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x, namespace: nim}\n")


@case("null-documents", f"error: prod/prod-root ConfigMap <unnamed> {EXTRA}:7: [tree] has no metadata")
def _nulls(root: Path) -> None:
    write(root, EXTRA, "---\n---\nnull\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: null\n")


@case("empty-document", f"error: prod/prod-root {EXTRA}:6: [tree] document 2 is empty")
def _empty(root: Path) -> None:
    write(root, EXTRA, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nim}\n---\nnull\n")


@case("invalid-yaml-file", f"error: prod/prod-root {EXTRA}:3: [tree] is not valid YAML")
def _invalid_yaml(root: Path) -> None:
    write(root, EXTRA, "apiVersion: v1\nkind: [ConfigMap\nmetadata: {}\n")


@case("root-without-metadata", "error: prod argocd/prod/root.yaml: [tree] holds no root Application: nothing would "
                               "apply argocd/prod/apps/")
def _root_metadata(root: Path) -> None:
    path = root / "argocd/prod/root.yaml"
    path.write_text(path.read_text().replace("\nmetadata:", "\nmetadatas:"))


@case("malformed-service", "error: prod/prod-root Service nim/s spec.selector: [schema]")
def _service(root: Path) -> None:
    # Cross-object checks read only what passed its schema.
    write(root, EXTRA, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nim}\n"
                       "spec: {selector: [a], ports: 3}\n")


@case("alias-bomb", f"error: prod/prod-root {EXTRA}: [tree] YAML aliases expand the document past")
def _bomb(root: Path) -> None:
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write(root, EXTRA, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: nim}\ndata:\n"
                       + "\n".join(lines) + "\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_tree(name: str, repo_copy: Path, crd_schemas: Path) -> None:
    edit, expected = CASES[name]
    edit(repo_copy)
    found = errors(repo_copy, crd_schemas)
    assert any(line.startswith(expected) for line in found), "\n".join(found)


def test_before_these_fixes_a_deleted_chart_passed(repo_copy: Path, crd_schemas: Path) -> None:
    # The Applications of a deleted chart were skipped and the run was clean; now each one fails.
    _chart_folder(repo_copy)
    found = errors(repo_copy, crd_schemas)
    assert sum("[render] charts/nim-llm does not exist" in line for line in found) == 2  # both models


def test_values_that_json_cannot_hold_are_checked_not_crashed_on(repo_copy: Path, crd_schemas: Path) -> None:
    # Dates, integer and boolean keys: Argo CD's YAML-to-JSON step makes them strings; so does validate.
    write(repo_copy, EXTRA, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dates, namespace: nim}\n"
                            "data:\n  day: 2024-01-01\n  1: one\n  yes: true-key\n")
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 0, result.output


def test_application_with_a_string_spec(repo_copy: Path, crd_schemas: Path) -> None:
    line = _spec_string(repo_copy)
    found = errors(repo_copy, crd_schemas)
    assert "error: prod/prod-root Application argocd/llama3-8b-instruct argocd/prod/apps/models/llama3-8b-instruct.yaml:" \
           f"{line}: [tree] spec is a string, not a mapping" in found, "\n".join(found)
    result = validate(repo_copy, crd_schemas, "--output", "json")
    [finding] = [f for f in json.loads(result.output)["findings"] if f["check"] == "tree"]
    assert (finding["file"], finding["line"]) == ("argocd/prod/apps/models/llama3-8b-instruct.yaml", line)


@pytest.mark.parametrize(("path", "ok"), [
    ("charts/nim-llm", True), ("./charts/nim-llm", True), ("charts/../charts/nim-llm", True), ("", True),
    ("/charts/nim-llm", False), ("..", False), ("../repo/charts/nim-llm", False), ("C:\\charts", False), (3, False),
])
def test_paths_inside_the_repository(tmp_path: Path, path: Any, ok: bool) -> None:
    (tmp_path / "repo/charts/nim-llm").mkdir(parents=True)
    folder, problem = inside(tmp_path / "repo", path)
    assert (folder is not None, problem == "") == (ok, ok)


def test_documents_keep_empty_ones_and_make_json_values() -> None:
    assert documents("---\n---\na: 2024-01-01\nyes: 1\n2: b\n---\n- 1\n") == [
        None, {"a": "2024-01-01", "true": 1, "2": "b"}, [1]]
