"""nimgen installs outside a checkout: the sdist and wheel a release builds pass twine's upload checks, carry
everything nimgen reads at run time, and once installed in a fresh virtualenv nimgen renders from a folder that
is no checkout."""

from __future__ import annotations

import email.parser
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import PROJECT

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

PACKAGE = PROJECT / "generator" / "nimgen"
SOURCE = "https://github.com/nimgen-dev/nimgen"
GITOPS = "https://github.com/acme/nim-gitops.git"


def sh(*args: str | Path, cwd: Path = PROJECT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def only(folder: Path, pattern: str) -> Path:
    [found] = folder.glob(pattern)
    return found


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path  # built from the sdist, as a release builds it
    direct_wheel: Path  # built from the source tree, as `pip install .` builds it


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    # No options: the sdist, then the wheel from the unpacked sdist.
    sh(sys.executable, "-m", "build", "--outdir", out / "release", PROJECT)
    sh(sys.executable, "-m", "build", "--wheel", "--outdir", out / "direct", PROJECT)
    return Dists(only(out / "release", "nimgen-*.tar.gz"), only(out / "release", "nimgen-*.whl"),
                 only(out / "direct", "nimgen-*.whl"))


def package_files() -> set[str]:
    """Every file of generator/nimgen/, as a path under nimgen/ (bytecode left out, as .gitignore says)."""
    return {f"nimgen/{path.relative_to(PACKAGE).as_posix()}" for path in PACKAGE.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def wheel_digests(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}


def test_dists_pass_twines_upload_checks(dists: Dists) -> None:
    sh(sys.executable, "-m", "twine", "check", "--strict", dists.sdist, dists.wheel, dists.direct_wheel)


def test_wheel_carries_the_package_and_its_data(dists: Dists) -> None:
    names = set(wheel_digests(dists.direct_wheel))
    dist_info = f"nimgen-{version('nimgen')}.dist-info"
    assert names - package_files() == {f"{dist_info}/{name}" for name in
                                       ("METADATA", "WHEEL", "RECORD", "entry_points.txt", "licenses/LICENSE")}
    assert package_files() <= names  # charts/ (with their .helmignore), templates/, schemas/, catalog/, data/
    for data in ("nimgen/charts/nim-llm/Chart.yaml", "nimgen/charts/nim-llm/.helmignore",
                 "nimgen/templates/init/dev.yaml.j2", "nimgen/catalog/models.yaml", "nimgen/data/smoke-prompts.txt"):
        assert data in names, data
    with zipfile.ZipFile(dists.direct_wheel) as archive:
        meta = email.parser.Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert f"Source, {SOURCE}" in meta.get_all("Project-URL", [])
    assert meta["License-Expression"] == "Apache-2.0" and meta["Requires-Python"] == ">=3.10"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "nimgen = nimgen.cli:main" in entry_points


def test_sdist_holds_the_package_source_and_nothing_else(dists: Dists) -> None:
    """Not the example trees, Terraform, tests (they read those), the virtualenv or caches."""
    top = dists.sdist.name.removesuffix(".tar.gz")
    with tarfile.open(dists.sdist) as archive:
        names = {member.name for member in archive.getmembers() if member.isfile()}
    assert names == {f"{top}/generator/{name}" for name in package_files()} | \
        {f"{top}/{name}" for name in ("pyproject.toml", "README.md", "PKG-INFO", ".gitignore", "LICENSE")}


def test_wheel_built_from_the_sdist_is_the_wheel_built_from_the_tree(dists: Dists) -> None:
    """The sdist lacks nothing the build reads. (The files themselves are not compared: the two builds read the
    tree seconds apart, and an edit in between would fail the test for nothing.)"""
    assert dists.wheel.name == dists.direct_wheel.name
    release, direct = wheel_digests(dists.wheel), wheel_digests(dists.direct_wheel)
    assert sorted(release) == sorted(direct)
    dist_info = f"nimgen-{version('nimgen')}.dist-info"
    for name in ("METADATA", "WHEEL", "entry_points.txt"):
        assert release[f"{dist_info}/{name}"] == direct[f"{dist_info}/{name}"], name


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh virtualenv with the release wheel installed (its dependencies from the package index): the
    environment to run it in, from outside the checkout."""
    venv = tmp_path_factory.mktemp("venv")
    sh(sys.executable, "-m", "venv", venv)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    sh(bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", dists.wheel)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "VIRTUAL_ENV": str(venv), "NO_COLOR": "1"}


def test_installed_nimgen_runs_from_outside_the_checkout(installed: dict[str, str], tmp_path: Path) -> None:
    nimgen = shutil.which("nimgen", path=installed["PATH"])
    assert nimgen and Path(nimgen).is_relative_to(installed["VIRTUAL_ENV"])
    assert sh(nimgen, "--version", cwd=tmp_path, env=installed) == f"nimgen, version {version('nimgen')}\n"
    where = sh("python", "-c", "import nimgen; print(nimgen.__file__)", cwd=tmp_path, env=installed).strip()
    assert Path(where).is_relative_to(installed["VIRTUAL_ENV"]) and not Path(where).is_relative_to(PROJECT)
    (tmp_path / "environments").mkdir()
    for name in ("_defaults.yaml", "dev.yaml"):
        shutil.copy(PROJECT / "environments" / name, tmp_path / "environments" / name)
    sh(nimgen, "render", "environments/dev.yaml", cwd=tmp_path, env=installed)
    rendered = sorted(path.relative_to(tmp_path) for path in (tmp_path / "charts").rglob("*") if path.is_file())
    rendered += sorted(path.relative_to(tmp_path) for path in (tmp_path / "argocd").rglob("*") if path.is_file())
    assert Path("charts/nim-llm/templates/workload.yaml") in rendered and Path("argocd/dev/root.yaml") in rendered
    # What the installed nimgen writes is what the checkout's nimgen wrote into the committed example tree.
    assert {path: (tmp_path / path).read_bytes() for path in rendered} == \
        {path: (PROJECT / path).read_bytes() for path in rendered}
    assert sh(nimgen, "check", cwd=tmp_path, env=installed) == "dev: up to date\n"


def test_installed_nimgen_starts_a_repository_whose_ci_installs_it(installed: dict[str, str], tmp_path: Path) -> None:
    sh("nimgen", "init", "gitops", "--repo-url", GITOPS, cwd=tmp_path, env=installed)
    for path in ("environments/prod.yaml", "charts/nim-llm/Chart.yaml", "argocd/prod/root.yaml",
                 ".github/workflows/nimgen.yml", ".pre-commit-config.yaml", "README.md"):
        assert (tmp_path / "gitops" / path).is_file(), path
    assert sh("nimgen", "check", cwd=tmp_path / "gitops", env=installed) == "dev: up to date\nprod: up to date\n"
    # The default spec comes from the installed package's metadata: its Source repository, at its version's tag.
    spec = sh("python", "-c", "from nimgen.commands.init import default_nimgen_spec; print(default_nimgen_spec())",
              cwd=tmp_path, env=installed)
    assert spec == f"nimgen[validate] @ git+{SOURCE}@v{version('nimgen')}\n"
