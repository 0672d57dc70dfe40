"""`nimgen validate` refuses what nimgen did not write under argocd/<env>/ and Applications it did not assign:
files missing from the ownership record, hand edits, Applications nimgen does not render, another AppProject
than nimgen's (taken from nimgen's own render, never spelled out here), a missing AppProject, `default`."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import example_environment
from helpers import run
from nimgen.gitops.applications import argocd_objects
from nimgen.validation import assignments, ownership
from nimgen.validation.manifests import read_argocd
from nimgen.yamlio import dump, load_all_plain, load_plain
from test_validate import Cases, edit_yaml, errors, model_app, own, validate

Edit = Callable[[Path], None]
RECORD = "argocd/prod/generated-files.txt"
MODEL = "argocd/prod/apps/models/llama3-8b-instruct.yaml"
CRB = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "pwn"},
       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
       "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "nim"}]}



def rendered_projects(root: Path) -> dict[str, str]:
    """Application name -> the AppProject nimgen assigns it, from nimgen's own render of prod."""
    objects = argocd_objects(example_environment("prod", root)).values()
    return {d["metadata"]["name"]: d["spec"]["project"] for d in objects if d["kind"] == "Application"}



def retarget(root: Path, project: str) -> None:
    """The model Application moved to another AppProject, the file recorded as nimgen's."""
    edit_yaml(model_app(root), lambda app: app["spec"].update(project=project))
    own(root, MODEL)


def test_hand_added_cluster_role_binding_fails(repo_copy: Path, crd_schemas: Path) -> None:
    (repo_copy / "argocd/prod/apps/crb.yaml").write_text(dump(CRB))
    assert "error: prod argocd/prod/apps/crb.yaml: [ownership] is not in argocd/prod/generated-files.txt: nimgen " \
           "did not write it" in "\n".join(errors(repo_copy, crd_schemas))


def test_cluster_role_binding_appended_to_a_generated_file_fails(repo_copy: Path, crd_schemas: Path) -> None:
    project = repo_copy / "argocd/prod/apps/project.yaml"
    project.write_text(project.read_text() + "---\n" + dump(CRB))
    assert "error: prod argocd/prod/apps/project.yaml: [ownership] was edited after nimgen wrote it (its hash " \
           "differs from argocd/prod/generated-files.txt)" in errors(repo_copy, crd_schemas)


CASES = Cases()
case = CASES.add


@case("unrecorded-file-beside-apps", "error: prod argocd/prod/notes.yaml: [ownership] is not in "
                                     "argocd/prod/generated-files.txt")
def _beside(root: Path) -> None:
    (root / "argocd/prod/notes.yaml").write_text("kind: Note\n")


@case("recorded-file-missing", f"error: prod {MODEL}: [ownership] is listed in argocd/prod/generated-files.txt "
                               "but missing")
def _missing(root: Path) -> None:
    (root / MODEL).unlink()


@case("record-missing", "error: prod argocd/prod/generated-files.txt: [ownership] the ownership record is missing")
def _no_record(root: Path) -> None:
    (root / RECORD).unlink()


@case("hidden-file", "error: prod argocd/prod/apps/.extra.json: [ownership] is not in")
def _hidden(root: Path) -> None:
    (root / "argocd/prod/apps/.extra.json").write_text('{"apiVersion": "v1", "kind": "Namespace", '
                                                        '"metadata": {"name": "x"}}')


@case("bench-record-cannot-adopt-apps", "error: prod argocd/prod/apps/crb.yaml: [ownership] is not in")
def _bench_adopts(root: Path) -> None:
    (root / "argocd/prod/apps/crb.yaml").write_text(dump(CRB))
    (root / "argocd/prod/bench").mkdir()
    (root / "argocd/prod/bench/generated-files.txt").write_text("# bench\nargocd/prod/apps/crb.yaml\n")


@case("application-nimgen-does-not-render", "error: prod/prod-root Application argocd/sneaky "
                                            "argocd/prod/apps/models/sneaky.yaml: [ownership] nimgen renders no "
                                            "Application sneaky for prod")
def _sneaky(root: Path) -> None:
    app = load_plain(model_app(root).read_text())
    app["metadata"]["name"] = "sneaky"
    (root / "argocd/prod/apps/models/sneaky.yaml").write_text(dump(app))
    own(root, "argocd/prod/apps/models/sneaky.yaml")


@case("default-project", f"error: prod/prod-root Application argocd/llama3-8b-instruct spec.project {MODEL}: "
                         "[project] is in Argo CD's built-in project 'default', which admits every repository, "
                         "namespace and kind; nimgen never assigns it")
def _default(root: Path) -> None:
    retarget(root, "default")


@case("unknown-project", f"error: prod/prod-root Application argocd/llama3-8b-instruct spec.project {MODEL}: "
                         "[project] is in AppProject elsewhere, which no manifest of the tree creates")
def _unknown(root: Path) -> None:
    retarget(root, "elsewhere")


@case("duplicate-application", "error: prod/prod-root Application argocd/llama3-8b-instruct "
                               "argocd/prod/apps/models/zz-copy.yaml: [tree] Application llama3-8b-instruct is "
                               f"defined twice (also in {MODEL})")
def _duplicate(root: Path) -> None:
    shutil.copy(model_app(root), root / "argocd/prod/apps/models/zz-copy.yaml")
    own(root, "argocd/prod/apps/models/zz-copy.yaml")


@pytest.mark.parametrize("name", sorted(CASES))
def test_unowned_or_misassigned(name: str, repo_copy: Path, crd_schemas: Path) -> None:
    edit, expected = CASES[name]
    edit(repo_copy)
    found = errors(repo_copy, crd_schemas)
    assert any(line.startswith(expected) for line in found), "\n".join(found)


def test_project_other_than_nimgen_assigns(repo_copy: Path, crd_schemas: Path) -> None:
    projects = rendered_projects(repo_copy)
    mine = projects["llama3-8b-instruct"]
    other = next(p for p in sorted(set(projects.values())) if p != mine)  # a project that exists, but not its own
    retarget(repo_copy, other)
    assert f"error: prod/prod-root Application argocd/llama3-8b-instruct spec.project {MODEL}: [project] is in " \
           f"AppProject {other!r}, but nimgen assigns {mine!r}" in errors(repo_copy, crd_schemas)


def test_missing_app_project(repo_copy: Path, crd_schemas: Path) -> None:
    mine = rendered_projects(repo_copy)["llama3-8b-instruct"]
    holder = next(path for path in sorted((repo_copy / "argocd/prod").rglob("*.yaml"))
                  if any(d.get("kind") == "AppProject" and d["metadata"]["name"] == mine
                         for d in load_all_plain(path.read_text())))
    holder.unlink()
    relative = holder.relative_to(repo_copy).as_posix()
    assert f"error: prod/prod-root Application argocd/llama3-8b-instruct spec.project {MODEL}: [project] is in " \
           f"AppProject {mine}, which is missing from {relative}" in errors(repo_copy, crd_schemas)


def test_the_rendered_tree_and_the_bench_folder_are_owned(repo_copy: Path, crd_schemas: Path) -> None:
    env = example_environment("prod", repo_copy)
    assert ownership.check(env, repo_copy) == []
    assert assignments.check(env, repo_copy, read_argocd(repo_copy, env).manifests) == []
    bench = run("bench", repo_copy / "environments/prod.yaml", "--write")
    assert bench.exit_code == 0, bench.output
    assert ownership.check(env, repo_copy) == []
    # A file the bench record does not list is no more welcome there than anywhere else.
    (repo_copy / "argocd/prod/bench/jobs/extra.yaml").write_text(dump(CRB))
    [finding] = ownership.check(env, repo_copy)
    assert finding.file == "argocd/prod/bench/jobs/extra.yaml" and finding.severity == "error"
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1 and "argocd/prod/bench/jobs/extra.yaml: [ownership]" in result.output


def test_record_lines_without_hashes_are_read(repo_copy: Path) -> None:
    env = example_environment("prod", repo_copy)
    record = repo_copy / "argocd/prod/generated-files.txt"
    record.write_text("\n".join(line.split("  ")[0] for line in record.read_text().splitlines()) + "\n")
    assert ownership.check(env, repo_copy) == []  # no hash to compare: owned, not hand-edited


def test_a_record_entry_outside_its_folders_is_a_finding(repo_copy: Path, crd_schemas: Path) -> None:
    record = repo_copy / "argocd/prod/generated-files.txt"
    record.write_text(record.read_text() + "README.md  sha256:0000000000000000\n")
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1
    assert "argocd/prod/generated-files.txt: [ownership]" in result.output
    assert "'README.md': outside the folders this record owns" in result.output
