"""nimgen never harms the repository: it touches only the folders it owns, never through a symlink, never
on the word of a tampered ownership record, and whatever a failed write leaves is reported and repaired."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from filelock import FileLock
from helpers import run, tree_digest
from nimgen.gitops import ownership, writer

RECORD = "argocd/prod/generated-files.txt"
BENCH_RECORD = "argocd/prod/bench/generated-files.txt"


@pytest.fixture()
def repo_copy(rendered_repo: Path, tmp_path: Path, monkeypatch: Any) -> Path:
    """A private copy of the rendered examples (inside a folder with a file of its own), as the current directory."""
    root = Path(shutil.copytree(rendered_repo, tmp_path / "repo"))
    (tmp_path / "outside.txt").write_text("not nimgen's\n")
    monkeypatch.chdir(root)
    return root


def _everything(root: Path) -> dict[str, str]:
    """Digest of the repository and the folder around it (to prove nothing anywhere changed), but the render
    lock, which lives in .git/ when there is one."""
    return {path: digest for path, digest in tree_digest(root.parent).items()
            if not path.endswith("/.git/nimgen-render.lock")}


def _append_to_record(root: Path, *lines: str, record: str = RECORD) -> None:
    path = root / record
    path.write_text(path.read_text() + "".join(f"{line}  sha256:0000000000000000\n" for line in lines))


# --------------------------------------------------------------------------------------------------------
# The ownership record is input


@pytest.mark.parametrize("entry", [
    "README.md",
    ".git/config",
    ".git/HEAD",
    "environments/prod.yaml",
    "../outside.txt",
    "/etc/hostname",
    "argocd/dev/root.yaml",             # another environment's folder
    "charts/not-a-nimgen-chart/x.yaml",  # a chart nimgen does not ship
    "charts/nim-llm",                   # the chart folder itself
    "argocd/prod/bench/jobs/x.yaml",    # bench's folder, not render's
    "argocd/prod/./root.yaml",
    "argocd/prod/apps/../../../README.md",
])
def test_a_record_entry_outside_the_owned_folders_deletes_nothing(repo_copy: Path, entry: str) -> None:
    (repo_copy / ".git").mkdir()
    (repo_copy / ".git/config").write_text("[core]\n")
    (repo_copy / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (repo_copy / "README.md").write_text("# mine\n")
    (repo_copy / "argocd/prod/bench/jobs").mkdir(parents=True)
    (repo_copy / "argocd/prod/bench/jobs/x.yaml").write_text("kind: Job\n")
    _append_to_record(repo_copy, entry)
    line = len((repo_copy / RECORD).read_text().splitlines())
    before = _everything(repo_copy)
    for command in (("render", "environments/prod.yaml"), ("check", "environments/prod.yaml")):
        result = run(*command)
        assert result.exit_code == 1, result.output
        assert f"{RECORD}:{line}: {entry!r}:" in result.output
        assert "nothing was written or deleted" in result.output
    assert _everything(repo_copy) == before


def test_every_bad_entry_is_reported_at_once(repo_copy: Path) -> None:
    _append_to_record(repo_copy, "README.md", "environments/dev.yaml")
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1
    assert "'README.md': outside the folders this record owns" in result.output
    assert "'environments/dev.yaml': outside the folders this record owns" in result.output


def test_a_record_entry_through_a_symlinked_folder_is_refused(repo_copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.yaml").write_text("precious\n")
    (repo_copy / "argocd/prod/apps/linked").symlink_to(elsewhere, target_is_directory=True)
    _append_to_record(repo_copy, "argocd/prod/apps/linked/keep.yaml")
    before = _everything(repo_copy)
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1
    assert "goes through the symlink argocd/prod/apps/linked" in result.output
    assert _everything(repo_copy) == before


def test_other_environments_records_are_checked_too(repo_copy: Path) -> None:
    _append_to_record(repo_copy, "README.md", record="argocd/dev/generated-files.txt")
    (repo_copy / "README.md").write_text("# mine\n")
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1 and "argocd/dev/generated-files.txt:" in result.output
    assert (repo_copy / "README.md").read_text() == "# mine\n"


def test_bench_record_may_own_only_the_bench_folder(repo_copy: Path) -> None:
    assert run("bench", "environments/prod.yaml", "--write").exit_code == 0
    _append_to_record(repo_copy, "argocd/prod/root.yaml", "README.md", record=BENCH_RECORD)
    (repo_copy / "README.md").write_text("# mine\n")
    before = _everything(repo_copy)
    result = run("bench", "environments/prod.yaml", "--write", "--concurrency", "3")
    assert result.exit_code == 1
    assert f"{BENCH_RECORD}:" in result.output and "'argocd/prod/root.yaml': outside" in result.output
    assert _everything(repo_copy) == before


@pytest.mark.parametrize(("entry", "reason"), [
    ("argocd/e/a", None),
    ("charts/nim-llm/templates/x.yaml", None),
    ("argocd/e/generated-files.txt", None),
    ("argocd/e", "outside the folders this record owns"),
    ("argocd/other/a", "outside the folders this record owns"),
    ("argocd/e/bench/jobs/a.yaml", "inside argocd/e/bench/, which nimgen bench owns"),
    ("argocd/e/a\x1b[2J", "a path with a control character or a backslash"),
    ("argocd/e\\..\\..\\x", "a path with a control character or a backslash"),
    ("/argocd/e/a", "an absolute path"),
    ("argocd/e/../e/a", "a path with '.', '..' or an empty part"),
])
def test_scope_of_a_render_record(entry: str, reason: str | None) -> None:
    from pathlib import PurePosixPath

    found = writer.Scope("e").why_not(PurePosixPath(entry))
    assert found == reason if reason is None else found is not None and found.startswith(reason)


def test_scope_of_a_bench_record() -> None:
    from pathlib import PurePosixPath

    scope = writer.Scope("e", bench=True)
    assert scope.why_not(PurePosixPath("argocd/e/bench/jobs/a.yaml")) is None
    assert scope.why_not(PurePosixPath("argocd/e/apps/models/a.yaml")) == "outside the folders this record owns " \
                                                                           "(argocd/e/bench/)"
    assert scope.why_not(PurePosixPath("charts/nim-llm/Chart.yaml")) is not None


# --------------------------------------------------------------------------------------------------------
# Symlinked output folders


@pytest.mark.parametrize("link", ["argocd/prod", "argocd", "argocd/prod/apps/models", "charts/nim-llm/templates"])
def test_symlinked_output_folders_are_refused(repo_copy: Path, tmp_path: Path, link: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(repo_copy / link), elsewhere)
    (repo_copy / link).symlink_to(elsewhere, target_is_directory=True)
    env = repo_copy / "environments/prod.yaml"
    env.write_text(env.read_text().replace("replicas: {min: 2, max: 5}", "replicas: {min: 3, max: 5}"))
    before = _everything(repo_copy)
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1, result.output
    assert "refusing to write through a symlink" in result.output and link in result.output
    assert _everything(repo_copy) == before


# --------------------------------------------------------------------------------------------------------
# Two environment files with one name


def test_a_second_file_with_the_same_name_cannot_take_over(repo_copy: Path) -> None:
    shutil.copy(repo_copy / "environments/dev.yaml", repo_copy / "environments/dev-copy.yaml")
    copy = repo_copy / "environments/dev-copy.yaml"
    copy.write_text(copy.read_text().replace("llama3-8b-instruct", "other-model"))
    before = _everything(repo_copy)
    result = run("render", "environments/dev-copy.yaml")
    assert result.exit_code == 1
    assert ("argocd/dev/ belongs to environments/dev.yaml, but environments/dev-copy.yaml also names its "
            "environment 'dev'") in result.output
    assert _everything(repo_copy) == before
    # check with no arguments reads every environment file and names the clash
    result = run("check")
    assert result.exit_code == 1
    assert "environment name 'dev' is also used by environments/dev" in result.output


def test_a_renamed_environment_file_takes_over_its_folder(repo_copy: Path) -> None:
    (repo_copy / "environments/dev.yaml").rename(repo_copy / "environments/development.yaml")
    assert run("render", "environments/development.yaml").exit_code == 0
    assert "from environments/development.yaml" in (repo_copy / "argocd/dev/generated-files.txt").read_text()
    assert run("check").exit_code == 0


# --------------------------------------------------------------------------------------------------------
# Leftovers, unowned files, interrupted writes


def test_leftover_staging_files_and_empty_folders_are_reported_then_swept(repo_copy: Path) -> None:
    stage = repo_copy / "argocd/prod/apps/models/.llama3-8b-instruct.yaml.nimgen-tmp"
    stage.write_text("half")
    chart_stage = repo_copy / "charts/nim-llm/templates/.service.yaml.nimgen-tmp"
    chart_stage.write_text("half")
    (repo_copy / "argocd/prod/apps/old/deeper").mkdir(parents=True)
    result = run("check", "environments/prod.yaml")
    assert result.exit_code == 1
    for path in ("argocd/prod/apps/models/.llama3-8b-instruct.yaml.nimgen-tmp",
                 "charts/nim-llm/templates/.service.yaml.nimgen-tmp", "argocd/prod/apps/old/deeper",
                 "argocd/prod/apps/old"):
        assert f"leftover     {path}  (left by an interrupted render; render removes it)" in result.output
    assert run("render", "environments/prod.yaml").exit_code == 0
    assert not stage.exists() and not chart_stage.exists() and not (repo_copy / "argocd/prod/apps/old").exists()
    assert run("check").exit_code == 0


def test_a_folder_where_nimgen_writes_a_file_is_a_conflict(repo_copy: Path) -> None:
    target = repo_copy / "argocd/prod/apps/models/llama3-8b-instruct.yaml"
    target.unlink()
    target.mkdir()
    (target / "keep.txt").write_text("mine\n")
    result = run("check", "environments/prod.yaml")
    assert result.exit_code == 1
    assert "conflict     argocd/prod/apps/models/llama3-8b-instruct.yaml" in result.output
    before = _everything(repo_copy)
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1 and "refusing to overwrite files nimgen did not generate" in result.output
    assert _everything(repo_copy) == before


def test_a_hand_added_manifest_is_reported_and_never_deleted(repo_copy: Path) -> None:
    binding = repo_copy / "argocd/prod/apps/platform/admin.yaml"
    binding.write_text("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n")
    result = run("check")
    assert result.exit_code == 1
    assert "unowned      argocd/prod/apps/platform/admin.yaml  (not generated by nimgen" in result.output
    assert run("render", "environments/prod.yaml").exit_code == 0
    assert binding.exists()  # not nimgen's to delete: check keeps failing until someone moves it


def test_a_failed_delete_leaves_a_record_that_lists_the_leftover(repo_copy: Path, monkeypatch: Any) -> None:
    env = repo_copy / "environments/prod.yaml"
    text = env.read_text()
    env.write_text(text[: text.index("  - name: llama-3-1-70b-instruct")])
    stale = repo_copy / "argocd/prod/apps/models/llama-3-1-70b-instruct.yaml"
    real_unlink = Path.unlink

    def failing_unlink(self: Path, missing_ok: bool = False) -> None:
        if self == stale:
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", failing_unlink)  # an OS refusal, injected below the writer
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1 and "render again" in result.output
    monkeypatch.undo()
    monkeypatch.chdir(repo_copy)
    assert stale.exists()
    record = (repo_copy / RECORD).read_text()
    assert "argocd/prod/apps/models/llama-3-1-70b-instruct.yaml" in record and ownership.IN_PROGRESS in record
    # The transitional record: the source, the files in flux without a hash (their content is unknown until
    # the swap completes), every other file with the hash of what is on disk.
    lines = record.splitlines()
    assert lines[0].startswith("# Generated by nimgen from environments/prod.yaml")
    entries = dict(line.split("  ") if "  " in line else (line, "") for line in lines if not line.startswith("#"))
    assert entries["argocd/prod/apps/models/llama-3-1-70b-instruct.yaml"] == ""
    assert entries["argocd/prod/README.md"] == ""  # rewritten by this render (it lists the models)
    unchanged = "argocd/prod/apps/models/llama3-8b-instruct.yaml"
    assert entries[unchanged] == writer.content_hash((repo_copy / unchanged).read_bytes())
    result = run("check", "environments/prod.yaml")
    assert result.exit_code == 1
    assert "extra        argocd/prod/apps/models/llama-3-1-70b-instruct.yaml" in result.output
    assert f"interrupted  {RECORD}" in result.output
    assert run("render", "environments/prod.yaml").exit_code == 0
    assert not stale.exists() and run("check").exit_code == 0


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk


@pytest.mark.subprocess
def test_a_full_disk_leaves_the_old_tree_and_no_staging_files(repo_copy: Path) -> None:
    env = repo_copy / "environments/prod.yaml"
    env.write_text(env.read_text().replace("replicas: {min: 2, max: 5}", "replicas: {min: 3, max: 5}"))
    before = _everything(repo_copy)
    done = subprocess.run([sys.executable, "-m", "nimgen", "render", "environments/prod.yaml"], cwd=repo_copy,
                          capture_output=True, text=True, preexec_fn=_limit_file_size,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=False)
    assert done.returncode == 1, done.stderr
    assert "could not stage the output for argocd/prod/" in done.stderr and "nothing was changed" in done.stderr
    assert _everything(repo_copy) == before
    assert not list(repo_copy.rglob("*.nimgen-tmp"))


# --------------------------------------------------------------------------------------------------------
# One render at a time, for every process


def test_the_lock_lives_in_the_git_folder(repo_copy: Path, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo_copy, check=True)
    assert writer.lock_path(repo_copy) == repo_copy / ".git" / "nimgen-render.lock"
    assert writer.lock_path(repo_copy / "environments") == repo_copy / ".git" / "nimgen-render.lock"
    # A linked worktree locks in its own git folder.
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo_copy, check=True)
    subprocess.run(["git", "worktree", "add", "-q", str(tmp_path / "wt")], cwd=repo_copy, check=True)
    assert writer.lock_path(tmp_path / "wt") == repo_copy / ".git" / "worktrees" / "wt" / "nimgen-render.lock"


@pytest.mark.subprocess
def test_renders_with_different_cache_folders_still_exclude_each_other(repo_copy: Path, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo_copy, check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "XDG_CACHE_HOME": str(tmp_path / "other-cache"),
           "HOME": str(tmp_path / "other-home")}
    with FileLock(str(writer.lock_path(repo_copy))):
        done = subprocess.run([sys.executable, "-m", "nimgen", "render", "--lock-timeout", "0.3",
                               "environments/dev.yaml"], cwd=repo_copy, env=env, capture_output=True, text=True,
                              check=False)
    assert done.returncode == 1 and "another nimgen render is writing" in done.stderr
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=repo_copy, capture_output=True,
                            text=True, check=True).stdout
    assert "lock" not in status  # never a stray file in the work tree


# --------------------------------------------------------------------------------------------------------
# Names


@pytest.mark.parametrize(("name", "what"), [
    ("prod-root", "the root Application"),
    ("prod-bench", "the benchmark Application"),
    ("gpu-nodepools", "the platform Application gpu-nodepools"),
    ("open-webui", "the platform Application open-webui"),
    ("keda", "the platform Application keda"),
])
def test_a_model_named_like_another_application_is_refused(repo_copy: Path, name: str, what: str) -> None:
    env = repo_copy / "environments/prod.yaml"
    env.write_text(env.read_text().replace("name: llama3-8b-instruct", f"name: {name}", 1))
    before = _everything(repo_copy)
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1
    assert f"$.models[0].name: model name '{name}' is also the name of {what}" in result.output
    assert _everything(repo_copy) == before


# --------------------------------------------------------------------------------------------------------
# Records that cannot be read, and the record format


def test_content_hash_is_sha256_cut_to_sixteen_hex_digits() -> None:
    import hashlib

    assert writer.content_hash("a: 1\n") == "sha256:" + hashlib.sha256(b"a: 1\n").hexdigest()[:16]
    assert writer.content_hash(b"a: 1\n") == writer.content_hash("a: 1\n")
    assert writer.content_hash("é") == "sha256:" + hashlib.sha256("é".encode()).hexdigest()[:16]


def test_a_record_that_is_a_folder_is_an_error_not_a_crash(repo_copy: Path) -> None:
    record = repo_copy / RECORD
    record.unlink()
    record.mkdir()
    before = _everything(repo_copy)
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1
    assert f"cannot read {RECORD}: Is a directory" in result.output
    assert _everything(repo_copy) == before


def test_a_record_that_is_not_utf8_is_an_error_with_the_fix(repo_copy: Path) -> None:
    record = repo_copy / RECORD
    record.write_bytes(record.read_bytes() + b"argocd/prod/\xff.yaml  sha256:0000000000000000\n")
    before = _everything(repo_copy)
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1
    assert f"error: {RECORD} is not UTF-8 text" in result.output
    assert "hint: the record was edited by hand: restore it from Git" in result.output
    assert _everything(repo_copy) == before


def test_another_files_record_that_is_not_utf8_still_names_its_owner(repo_copy: Path) -> None:
    # The owner is read from the first line even when a later byte is not UTF-8 (never a crash).
    record = repo_copy / "argocd/dev/generated-files.txt"
    record.write_bytes(record.read_bytes() + b"\xff\n")
    shutil.copy(repo_copy / "environments/dev.yaml", repo_copy / "environments/dev-copy.yaml")
    result = run("render", "environments/dev-copy.yaml")
    assert result.exit_code == 1
    assert "argocd/dev/ belongs to environments/dev.yaml, but environments/dev-copy.yaml also names" in result.output


def test_an_unnormalised_entry_is_named_as_such(repo_copy: Path) -> None:
    _append_to_record(repo_copy, "argocd//prod/x.yaml")
    result = run("render", "environments/prod.yaml")
    assert result.exit_code == 1
    assert "'argocd//prod/x.yaml': not a normalised relative path" in result.output
    assert "nothing was written or deleted:\n  argocd/prod/generated-files.txt:" in result.output


def test_the_record_names_its_source_and_each_file_with_its_hash(repo_copy: Path) -> None:
    lines = (repo_copy / RECORD).read_text().splitlines()
    assert lines[0] == ("# Generated by nimgen from environments/prod.yaml (layered over environments/_defaults.yaml). "
                        "Do not edit.") or lines[0] == "# Generated by nimgen from environments/prod.yaml. Do not edit."
    entries = [line.split("  ") for line in lines if not line.startswith("#")]
    assert entries and all(len(entry) == 2 and entry[1].startswith("sha256:") for entry in entries)
    for path, digest in entries:
        assert writer.content_hash((repo_copy / path).read_bytes()) == digest
    assert ownership.IN_PROGRESS not in lines


# Direct tests of the record and leftover helpers (cases the mutation run found untested).
def test_record_text_lines() -> None:
    from nimgen.gitops.ownership import IN_PROGRESS, content_hash, record_text

    a = PurePosixPath("argocd/e/a.yaml")
    text = record_text("environments/e.yaml", {a: "x\n"}, hashes={a: ""})
    assert IN_PROGRESS not in text
    assert text.splitlines()[-1] == "argocd/e/a.yaml"  # an unknown hash leaves no trailing spaces
    digest = content_hash("x\n")
    assert record_text("environments/e.yaml", {a: "x\n"}).splitlines()[-1] == f"argocd/e/a.yaml  {digest}"
    assert content_hash("é") == content_hash("é".encode())


def test_an_entry_excerpt_stops_at_80_characters(tmp_path: Path) -> None:
    from nimgen.gitops.ownership import _excerpt

    assert _excerpt("a" * 80) == repr("a" * 80)
    assert _excerpt("a" * 81) == repr("a" * 80) + "... (81 characters)"


def test_leftovers_stay_in_their_scope(tmp_path: Path) -> None:
    from nimgen.gitops.ownership import Scope, leftovers

    (tmp_path / "argocd/e/bench").mkdir(parents=True)
    (tmp_path / "argocd/e/bench/job.yaml.nimgen-tmp").write_text("x")
    (tmp_path / "argocd/e/apps").mkdir()
    (tmp_path / "argocd/e/apps/a.yaml.nimgen-tmp").write_text("x")
    (tmp_path / "charts/nim-llm/templates").mkdir(parents=True)
    (tmp_path / "charts/nim-llm/templates/t.yaml.nimgen-tmp").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.nimgen-tmp").write_text("x")
    (tmp_path / "charts/model-storage").symlink_to(outside, target_is_directory=True)
    render = [p.as_posix() for p in leftovers(tmp_path, Scope("e"))]
    assert render == ["argocd/e/apps/a.yaml.nimgen-tmp", "argocd/e/apps", "charts/nim-llm/templates/t.yaml.nimgen-tmp",
                      "charts/nim-llm/templates"]
    bench = [p.as_posix() for p in leftovers(tmp_path, Scope("e", bench=True))]
    assert bench == ["argocd/e/bench/job.yaml.nimgen-tmp"]
