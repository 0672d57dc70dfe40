"""drift: each kind of difference between the disk and a rendered tree, on small trees written by the writer."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from nimgen.errors import OutputWriteError
from nimgen.gitops import writer
from nimgen.gitops.drift import Drift, Reads, drift_by_digest, tree_digests, unowned_files
from nimgen.gitops.ownership import GENERATED_MARKER, OwnershipError, Scope

P = PurePosixPath
SOURCE = "environments/e.yaml"
RECORD = P("argocd/e/generated-files.txt")


def _write(root: Path, tree: dict[PurePosixPath, str], env: str = "e") -> None:
    writer.write(root, Scope(env), f"environments/{env}.yaml", tree)


def drift(root: Path, scope: Scope, source: str, tree: dict[PurePosixPath, str]) -> list[Drift]:
    return drift_by_digest(root, scope, source, tree_digests(tree))


def _drift(root: Path, tree: dict[PurePosixPath, str]) -> list[tuple[str, str]]:
    return [(item.path.as_posix(), item.kind) for item in drift(root, Scope("e"), SOURCE, tree)]


def test_every_drifted_file_is_named_after_a_missing_one(tmp_path: Path) -> None:
    tree = {P("argocd/e/a.yaml"): "a: 1\n", P("argocd/e/b.yaml"): "b: 1\n", P("charts/nim-llm/x.yaml"): "x: 1\n"}
    _write(tmp_path, tree)
    assert drift(tmp_path, Scope("e"), SOURCE, tree) == []
    (tmp_path / "argocd/e/a.yaml").unlink()
    (tmp_path / "argocd/e/b.yaml").write_text("b: 2\n")
    (tmp_path / "charts/nim-llm/x.yaml").write_text("x: 2\n")
    assert drift(tmp_path, Scope("e"), SOURCE, tree) == [
        Drift(P("argocd/e/a.yaml"), "missing"), Drift(P("argocd/e/b.yaml"), "hand-edited"),
        Drift(P("charts/nim-llm/x.yaml"), "hand-edited")]


def test_a_listed_file_without_the_marker_is_hand_edited_or_stale_never_a_conflict(tmp_path: Path) -> None:
    # The record, not the marker, makes a listed file nimgen's: an edit that drops the marker is still a hand edit.
    _write(tmp_path, {P("argocd/e/a.yaml"): "a: 1\n"})
    assert _drift(tmp_path, {P("argocd/e/a.yaml"): "a: 2\n"}) == [("argocd/e/a.yaml", "stale"), (RECORD.as_posix(), "stale")]
    (tmp_path / "argocd/e/a.yaml").write_text("a: edited\n")
    assert _drift(tmp_path, {P("argocd/e/a.yaml"): "a: 1\n"}) == [("argocd/e/a.yaml", "hand-edited")]


def test_a_file_another_environment_owns_is_stale_not_a_conflict(tmp_path: Path) -> None:
    _write(tmp_path, {P("argocd/two/a.yaml"): "a: 2\n", P("charts/nim-llm/values.yaml"): "image: two\n"}, env="two")
    tree = {P("argocd/e/a.yaml"): "a: 1\n", P("charts/nim-llm/values.yaml"): "image: e\n"}
    assert _drift(tmp_path, tree) == [
        ("argocd/e/a.yaml", "missing"), ("argocd/e/generated-files.txt", "missing"),
        ("charts/nim-llm/values.yaml", "stale")]


@pytest.mark.parametrize(("start", "kind"), [(512 - len(GENERATED_MARKER), "stale"),
                                             (513 - len(GENERATED_MARKER), "conflict")])
def test_a_foreign_file_is_nimgens_only_with_the_marker_in_its_first_512_bytes(tmp_path: Path, start: int,
                                                                              kind: str) -> None:
    _write(tmp_path, {P("argocd/e/a.yaml"): "a: 1\n"})
    (tmp_path / "argocd/e/b.yaml").write_text("#" * start + GENERATED_MARKER + "\n")
    tree = {P("argocd/e/a.yaml"): "a: 1\n", P("argocd/e/b.yaml"): "b: 1\n"}
    assert _drift(tmp_path, tree) == [("argocd/e/b.yaml", kind), (RECORD.as_posix(), "stale")]


def test_a_tree_outside_the_scope_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(OutputWriteError) as caught:
        drift(tmp_path, Scope("e"), SOURCE, {P("argocd/other/a.yaml"): "a: 1\n"})
    assert str(caught.value) == ("refusing to write outside the folders nimgen owns:\n  argocd/other/a.yaml: outside "
                                 "the folders this record owns (argocd/e/ or charts/<a chart nimgen ships>/)")


def test_a_rendered_file_behind_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    tree = {P("argocd/e/a.yaml"): "a: 1\n", P("charts/nim-llm/x.yaml"): "x: 1\n"}
    _write(tmp_path, tree)
    outside = tmp_path / "outside"
    (tmp_path / "charts/nim-llm").rename(outside)
    (tmp_path / "charts/nim-llm").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OwnershipError) as caught:
        drift(tmp_path, Scope("e"), SOURCE, tree)
    assert str(caught.value) == ("refusing to write through a symlink:\n  goes through the symlink charts/nim-llm "
                                 "(nimgen never writes through symlinks)")


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("kind: ConfigMap\n")


def test_unowned_files_leave_the_bench_folder_to_bench(tmp_path: Path) -> None:
    _touch(tmp_path, "argocd/e/a.yaml", "argocd/e/extra.yaml", "argocd/e/apps/bench/x.yaml",
           "argocd/e/apps/b.yaml.nimgen-tmp", "argocd/e/bench/job.yaml", "argocd/e/bench/bench/y.yaml")
    listed = {P("argocd/e/a.yaml")}
    assert unowned_files(tmp_path, Scope("e"), listed) == [P("argocd/e/extra.yaml"), P("argocd/e/apps/bench/x.yaml")]
    assert unowned_files(tmp_path, Scope("e", bench=True), {P("argocd/e/bench/job.yaml")}) == [
        P("argocd/e/bench/bench/y.yaml")]


def test_unowned_files_never_looks_through_a_symlinked_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "elsewhere/a.yaml")
    (tmp_path / "argocd").mkdir()
    (tmp_path / "argocd/e").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert unowned_files(tmp_path, Scope("e"), set()) == []


def test_reads_gives_the_bytes_of_plain_files_only(tmp_path: Path) -> None:
    plain = tmp_path / "a.yaml"
    plain.write_bytes(b"a: 1\n")
    (tmp_path / "link.yaml").symlink_to(plain)
    (tmp_path / "folder").mkdir()
    reads = Reads()
    assert reads.file(plain) == b"a: 1\n"
    assert reads.file(tmp_path / "link.yaml") is None
    assert reads.file(tmp_path / "folder") is None
    assert reads.file(tmp_path / "missing.yaml") is None
    assert reads.file(tmp_path / ("n" * 300)) is None  # the system refuses the name: not a file nimgen can compare


def test_files_other_environments_own(tmp_path: Path) -> None:
    _write(tmp_path, {P("argocd/a/f.yaml"): "a\n", P("charts/nim-llm/shared.yaml"): "s\n",
                      P("charts/nim-llm/only-a.yaml"): "a\n"}, env="a")
    _write(tmp_path, {P("argocd/b/f.yaml"): "b\n", P("charts/nim-llm/shared.yaml"): "s\n",
                      P("charts/nim-llm/only-b.yaml"): "b\n"}, env="b")
    reads = Reads()
    assert reads.owned_by_others(tmp_path, Scope("a")) == {
        P("argocd/b/f.yaml"), P("charts/nim-llm/shared.yaml"), P("charts/nim-llm/only-b.yaml")}
    assert reads.owned_by_others(tmp_path, Scope("b")) == {
        P("argocd/a/f.yaml"), P("charts/nim-llm/shared.yaml"), P("charts/nim-llm/only-a.yaml")}
    # An environment never rendered: every record is another's.
    assert reads.owned_by_others(tmp_path, Scope("c")) == {
        P("argocd/a/f.yaml"), P("argocd/b/f.yaml"), P("charts/nim-llm/shared.yaml"), P("charts/nim-llm/only-a.yaml"),
        P("charts/nim-llm/only-b.yaml")}
    assert reads.owned_by_others(tmp_path, Scope("a", bench=True)) == set()


def test_one_reads_for_two_repositories_keeps_their_owners_apart(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _write(first, {P("argocd/b/f.yaml"): "b\n"}, env="b")
    _write(second, {P("argocd/c/f.yaml"): "c\n"}, env="c")
    reads = Reads()
    assert reads.owned_by_others(first, Scope("a")) == {P("argocd/b/f.yaml")}
    assert reads.owned_by_others(second, Scope("a")) == {P("argocd/c/f.yaml")}
