"""check reuses earlier renders of the same inputs, and never at the cost of a false "up to date"."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from helpers import run
from nimgen.commands import check
from nimgen.gitops import rendercache


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Reuse on, into a folder of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.delenv("NIMGEN_NO_CACHE", raising=False)
    monkeypatch.setenv("NIMGEN_CACHE_DIR", str(folder))
    return folder


@pytest.fixture()
def repo_copy(rendered_repo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(rendered_repo, root)
    return root


def _no_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any load or render in check fail loudly: what passes must have come from the cache."""
    def refuse(*_args: object) -> None:
        raise AssertionError("check rendered although the inputs were seen before")

    monkeypatch.setattr(check, "load_environments", refuse)
    monkeypatch.setattr(check, "render_environment", refuse)


def _envs(root: Path) -> list[Path]:
    return [root / "environments" / "dev.yaml", root / "environments" / "prod.yaml"]


def test_a_second_check_of_the_same_inputs_does_not_render(repo_copy: Path, cache: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first = check.check_files(_envs(repo_copy))
    assert [r.ok for r in first] == [True, True]
    assert len(list(cache.glob("*.json"))) == 2
    _no_render(monkeypatch)
    again = check.check_files(_envs(repo_copy))
    assert again == first


def test_render_leaves_entries_that_check_reuses(repo: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("render", "-q", *_envs(repo)).exit_code == 0
    _no_render(monkeypatch)
    assert [r.ok for r in check.check_files(_envs(repo))] == [True, True]


def test_files_on_disk_are_always_read(repo_copy: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check.check_files(_envs(repo_copy))
    _no_render(monkeypatch)
    readme = repo_copy / "argocd" / "prod" / "README.md"
    readme.write_text(readme.read_text() + "edited\n")
    (repo_copy / "argocd" / "dev" / "apps" / "models" / "stray.yaml").write_text("kind: ConfigMap\n")
    (repo_copy / "charts" / "nim-llm" / "values.yaml").unlink()
    dev, prod = check.check_files(_envs(repo_copy))
    assert {(str(d.path), d.kind) for d in dev.drifts} == {
        ("argocd/dev/apps/models/stray.yaml", "unowned"), ("charts/nim-llm/values.yaml", "missing")}
    assert {(str(d.path), d.kind) for d in prod.drifts} == {
        ("argocd/prod/README.md", "hand-edited"), ("charts/nim-llm/values.yaml", "missing")}


@pytest.mark.parametrize("edit", ["environment", "layer"])
def test_a_changed_input_is_rendered_again(repo_copy: Path, cache: Path, edit: str) -> None:
    check.check_files(_envs(repo_copy))
    if edit == "environment":
        target = repo_copy / "environments" / "dev.yaml"
        target.write_text(target.read_text().replace("max: 1}", "max: 2}", 1))
    else:
        target = repo_copy / "environments" / "_defaults.yaml"
        target.write_text(target.read_text() + "\n# a comment changes the key, and nothing else\n")
    dev, prod = check.check_files(_envs(repo_copy))
    if edit == "environment":
        assert not dev.ok and {d.kind for d in dev.drifts} == {"stale"} and prod.ok
    else:
        assert dev.ok and prod.ok
    assert len(list(cache.glob("*.json"))) == (3 if edit == "environment" else 4)


def test_a_change_to_nimgen_is_another_key(repo_copy: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _envs(repo_copy)[0]
    before = rendercache.key(env, "environments/dev.yaml")
    monkeypatch.setattr(rendercache, "_fingerprint", lambda: b"another nimgen")
    assert rendercache.key(env, "environments/dev.yaml") != before
    assert rendercache.key(env, "environments/other.yaml") != rendercache.key(env, "environments/dev.yaml")


def test_an_entry_that_does_not_match_its_key_is_ignored(repo_copy: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    check.check_files(_envs(repo_copy))
    entries = sorted(cache.glob("*.json"))
    # A swapped entry (say prod's tree under dev's key) and a truncated one: both are misses, and rendered.
    first = json.loads(entries[0].read_text())
    first["key"] = "0" * 64
    entries[0].write_text(json.dumps(first))
    entries[1].write_text(entries[1].read_text()[:50])
    assert [r.ok for r in check.check_files(_envs(repo_copy))] == [True, True]
    assert rendercache.load(cache, entries[0].stem) is not None  # rewritten by that check


def test_an_input_changed_during_the_render_is_not_kept(repo_copy: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    env = _envs(repo_copy)[0]
    render = check.render_environment

    def edit_meanwhile(loaded):  # type: ignore[no-untyped-def]
        env.write_text(env.read_text() + "\n# edited while rendering\n")
        return render(loaded)

    monkeypatch.setattr(check, "render_environment", edit_meanwhile)
    check.check_files([env])
    assert list(cache.glob("*.json")) == []


def test_reuse_can_be_turned_off(repo_copy: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("check", "--no-cache", *_envs(repo_copy)).exit_code == 0
    assert not cache.exists()
    monkeypatch.setenv("NIMGEN_NO_CACHE", "1")
    assert run("check", *_envs(repo_copy)).exit_code == 0 and not cache.exists()
    assert rendercache.folder() is None


def test_an_unwritable_cache_only_costs_time(repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be\n")
    monkeypatch.delenv("NIMGEN_NO_CACHE", raising=False)
    monkeypatch.setenv("NIMGEN_CACHE_DIR", str(blocker / "cache"))
    result = run("check", *_envs(repo_copy))
    assert result.exit_code == 0 and result.output == "dev: up to date\nprod: up to date\n"


def test_the_cache_folder_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIMGEN_NO_CACHE", raising=False)
    monkeypatch.delenv("NIMGEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rendercache.folder() == tmp_path / "xdg" / "nimgen" / "renders"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert rendercache.folder() == tmp_path / "home" / ".cache" / "nimgen" / "renders"


def test_old_entries_are_pruned(repo_copy: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendercache, "MAX_ENTRIES", 3)
    entry = rendercache.Entry("dev", "environments/dev.yaml", "", {})
    for number in range(5):
        rendercache.store(cache, f"{number:064x}", entry)
    assert len(list(cache.glob("*.json"))) == 3
    assert rendercache.load(cache, f"{4:064x}") == entry


def _entry() -> rendercache.Entry:
    return rendercache.Entry("dev", "environments/dev.yaml", "environments/_defaults.yaml",
                             {PurePosixPath("charts/b.yaml"): "2" * 64, PurePosixPath("argocd/dev/a.yaml"): "1" * 64})


def test_an_entry_is_one_line_of_compact_json(tmp_path: Path) -> None:
    entry_key = "ab" * 32
    rendercache.store(tmp_path, entry_key, _entry())
    assert [item.name for item in tmp_path.iterdir()] == [f"{entry_key}.json"]
    assert (tmp_path / f"{entry_key}.json").read_text(encoding="utf-8") == (
        f'{{"format":1,"key":"{entry_key}","name":"dev","source":"environments/dev.yaml",'
        f'"defaultsSource":"environments/_defaults.yaml","digests":{{"argocd/dev/a.yaml":"{"1" * 64}",'
        f'"charts/b.yaml":"{"2" * 64}"}}}}')
    assert rendercache.load(tmp_path, entry_key) == _entry()


def test_the_cache_folder_is_created_with_its_parents(tmp_path: Path) -> None:
    place = tmp_path / "xdg" / "nimgen" / "renders"
    rendercache.store(place, "cd" * 32, _entry())
    assert rendercache.load(place, "cd" * 32) == _entry()


def test_an_entry_is_staged_in_the_cache_folder_not_the_system_temp_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A rename is atomic only within one file system: the staging file sits beside the entry it becomes.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-temp-folder"))
    rendercache.store(tmp_path / "cache", "ef" * 32, _entry())
    assert rendercache.load(tmp_path / "cache", "ef" * 32) == _entry()


@pytest.mark.parametrize("field", ["key", "format"])
def test_an_entry_of_another_key_or_format_is_not_loaded(tmp_path: Path, field: str) -> None:
    entry_key = "01" * 32
    rendercache.store(tmp_path, entry_key, _entry())
    stored = tmp_path / f"{entry_key}.json"
    data = json.loads(stored.read_text(encoding="utf-8"))
    data[field] = "10" * 32 if field == "key" else rendercache.FORMAT + 1
    stored.write_text(json.dumps(data), encoding="utf-8")
    assert rendercache.load(tmp_path, entry_key) is None


def test_an_environment_without_a_layer_has_a_key_of_its_own(tmp_path: Path) -> None:
    env = tmp_path / "environments" / "dev.yaml"
    env.parent.mkdir()
    env.write_text("name: dev\n")
    alone = rendercache.key(env, "environments/dev.yaml")
    assert alone is not None and len(alone) == 64
    (env.parent / "_defaults.yaml").write_text("")
    assert rendercache.key(env, "environments/dev.yaml") not in (None, alone)
    assert rendercache.key(tmp_path / "environments" / "missing.yaml", "environments/missing.yaml") is None
    # No layer content, whatever its bytes, keys like no layer at all.
    for content in (b"\0", b"-", b""):
        (env.parent / "_defaults.yaml").write_bytes(content)
        assert rendercache.key(env, "environments/dev.yaml") != alone


def test_an_entry_that_cannot_be_put_in_place_leaves_nothing_behind(tmp_path: Path) -> None:
    entry_key = "12" * 32
    (tmp_path / f"{entry_key}.json" / "in-the-way").mkdir(parents=True)  # a folder cannot be replaced by a file
    rendercache.store(tmp_path, entry_key, _entry())
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{entry_key}.json"]
    assert rendercache.load(tmp_path, entry_key) is None


def test_with_reuse_off_recall_takes_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "dev.yaml"
    env.write_text("name: dev\n")
    monkeypatch.setenv("NIMGEN_NO_CACHE", "1")
    assert rendercache.recall(env, "environments/dev.yaml") == (None, None)


def test_entries_another_check_pruned_meanwhile_are_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two checks prune at once: both list and date the entries, the other deletes first, this one finds them gone.
    for number in range(5):
        rendercache.store(tmp_path, f"{number:064x}", _entry())
        os.utime(tmp_path / f"{number:064x}.json", ns=(number * 10**9, number * 10**9))
    monkeypatch.setattr(rendercache, "MAX_ENTRIES", 2)
    listing = os.scandir

    def listed_while_another_check_prunes(path: Path) -> Iterator[os.DirEntry[str]]:
        items = list(listing(path))
        for item in items:
            item.stat()  # dated now, as the sort does
        monkeypatch.setattr(os, "scandir", listing)
        rendercache._prune(path)  # the other check
        return iter(items)

    monkeypatch.setattr(os, "scandir", listed_while_another_check_prunes)
    rendercache._prune(tmp_path)
    assert sorted(item.name for item in tmp_path.iterdir()) == [f"{3:064x}.json", f"{4:064x}.json"]


def test_an_entry_stored_while_another_check_prunes_is_kept_without_error(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # This store lists the entries to prune; another check deletes them before this one dates them. The new entry
    # is already in place: the failed prune must neither raise nor take it away.
    for number in range(3):
        rendercache.store(tmp_path, f"{number:064x}", _entry())
    monkeypatch.setattr(rendercache, "MAX_ENTRIES", 1)
    new_key = "ab" * 32
    listing = os.scandir

    def listed_then_pruned_by_another_check(path: Path) -> Iterator[os.DirEntry[str]]:
        items = list(listing(path))
        for item in items:
            if item.name != f"{new_key}.json":
                os.unlink(item.path)
        return iter(items)

    monkeypatch.setattr(os, "scandir", listed_then_pruned_by_another_check)
    rendercache.store(tmp_path, new_key, _entry())
    monkeypatch.setattr(os, "scandir", listing)
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{new_key}.json"]
    assert rendercache.load(tmp_path, new_key) == _entry()
