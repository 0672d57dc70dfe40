"""Mutation score of the modules that guard safety, with mutmut.

    python benchmarks/mutation_score.py [--group NAME]... [--workdir DIR] [--jobs N] [--again | --report]

For each group below, mutmut mutates the group's modules and runs the group's tests against every
mutant (only the tests that reach the mutated function). The score of a module is killed / all
mutants, where a survivor listed in benchmarks/mutation-survivors.txt with a reason (an equivalent
mutant, or one mutmut cannot reach) counts apart. Target: at least 85% killed per module.

mutmut imports the mutated package from `mutants/src`, so the script builds a workspace with the
package under src/ and copies of what the tests read (charts, environments, ...); the repository
itself is never touched. Needs `pip install mutmut` (not part of CI: a full run takes tens of minutes).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SURVIVORS = PROJECT / "benchmarks" / "mutation-survivors.txt"
COPIED = ("tests", "charts", "argocd", "environments", "benchmarks", "terraform", "README.md", ".pre-commit-hooks.yaml")


@dataclass(frozen=True)
class Group:
    """Modules (under generator/nimgen) and the tests that exercise them."""

    name: str
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    # Fixtures built with shared() that never run the group's modules: they stay shared (tests/conftest.py).
    shared_fixtures: tuple[str, ...] = ()


# Test files, or single tests (file::name) where a module's tests also cover slow end-to-end paths: a
# surviving mutant runs every listed test that reaches it, so the lists hold the tests that assert the
# group's behaviour directly and leave out those that only pass through it (e.g. test_closure loads
# environments, so it reaches every check, but asserts none).
SAFETY = "test_safety_guards.py::"
GROUPS = (
    Group("secrets", ("secrets.py",), ("test_secrets.py", "test_safety_guards.py")),
    # test_init and test_import_terraform exercise create_files and replace_file too, but mutmut 3.8 loses
    # track of its workers when they run (KeyError in wait_for_result): left out until that is understood.
    Group("writer", ("gitops/writer.py", "gitops/ownership.py", "gitops/drift.py", "gitops/rendercache.py",
                     "gitops/staged.py"),
          ("test_writer.py", "test_ownership.py", "test_check.py", "test_rendercache.py", "test_check_index.py",
           "test_staged_rules.py", "test_drift_rules.py", "test_writer_rules.py", "test_ownership_rules.py")),
    Group("checks", ("environment/checks.py", "environment/poolchecks.py", "capacity.py", "components/availability.py",
                     "components/reservations.py", "components/profiles.py", "components/spotfloor.py"),
          ("test_environment_errors.py", "test_capacity.py", "test_amis.py", "test_nodepools.py", "test_keda.py",
           "test_pool_messages.py", "test_availability.py", "test_reservations.py", "test_profiles.py",
           "test_spot_floor.py", "test_profile_rules.py", "test_environment_rules.py",
           "test_observability.py", "test_openwebui.py", "test_storage.py", "test_components.py", "test_plan.py",
           "test_block_storage.py", "test_platform_secrets.py", "test_layering.py",
           f"{SAFETY}test_pool_gpu_demand_is_the_sum_over_its_models", f"{SAFETY}test_pool_gpu_limit_boundary_is_the_sum",
           f"{SAFETY}test_a_credential_shaped_env_var_name_passes_the_file_checks_but_not_the_output_guard")),
    Group("argocd", ("gitops/applications.py",),
          ("test_argocd.py", "test_keda.py", "test_storage.py", "test_platform_secrets.py", "test_observability.py",
           "test_openwebui.py", "test_components.py", "test_block_storage.py",
           f"{SAFETY}test_autoscaled_model_ignores_replicas_of_its_own_workload_kind",
           f"{SAFETY}test_keda_scaled_deployment_ignores_deployment_replicas",
           f"{SAFETY}test_rendered_appprojects_admit_exactly_their_kinds",
           f"{SAFETY}test_bench_project_admits_exactly_jobs_and_network_policies",
           f"{SAFETY}test_models_project_adds_exactly_the_warmup_job_and_keda_kinds")),
    # test_validate runs the whole of validate on rendered trees (about 1.7 s a test, 40 of them behind every rule):
    # the rules' own tests must catch their mutants, as the issue asks of every safety check.
    Group("validate", ("validation/crossref.py", "validation/policy.py", "validation/gatewayrules.py"),
          ("test_crossref_rules.py", "test_policy_rules.py", "test_gateway_rules.py", "test_validate_units.py",
           "test_runtime_objects.py",
           f"{SAFETY}test_gpu_pod_without_the_pools_toleration_fits_no_nodepool",
           f"{SAFETY}test_gpu_pod_with_the_pools_toleration_fits", f"{SAFETY}test_service_selects_no_pod_of_another_namespace",
           f"{SAFETY}test_service_selects_the_pods_of_its_own_namespace"),
          # Rendering and Helm never run validate's rules: the rendered repository and charts can be shared.
          shared_fixtures=("rendered_repo", "rendered")),
    Group("diff", ("commands/diff.py", "commands/diffreport.py", "commands/diffeffects.py"),
          ("test_diff_report.py", "test_diff.py", "test_diff_effects.py", "test_safety_guards.py")),
)
# A line of `mutmut results`: functions are x_<function>, methods xǁ<Class>ǁ<method>.
_RESULT = re.compile(r"^\s*nimgen\.(?P<module>[\w.]+)\.(?P<mutant>x[_\u01c1]\S+): (?P<status>.+)$")
# nimgen.<module>.x_<function>__mutmut_<n>; methods are xǁ<Class>ǁ<method>.
_NAME = re.compile(r"nimgen\.(?P<module>[\w.]+)\.x_?(?P<function>.+)__mutmut_(?P<number>[0-9]+)")


@dataclass(frozen=True)
class Accepted:
    """A survivor accepted with a reason, pinned to the function it mutates (by a hash of its syntax tree)."""

    name: str
    function_hash: str
    reason: str


def accepted() -> dict[str, Accepted]:
    """Mutant name -> why it may survive. Lines: `name  sha256:<function hash>  reason`."""
    found = {}
    for line in SURVIVORS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, digest, reason = line.split(maxsplit=2)
            found[name] = Accepted(name, digest, reason)
    return found


def function_hash(mutant: str) -> str | None:
    """Hash of the syntax tree of the function a mutant mutates (None: no such module or function).

    Mutants are numbered within their function: when the function changes, an accepted mutant may no
    longer exist or may be another mutation, so its entry must be reviewed again.
    """
    match = _NAME.fullmatch(mutant)
    if match is None:
        return None
    path = PROJECT / "generator" / "nimgen" / (match["module"].replace(".", "/") + ".py")
    if not path.is_file():
        return None
    wanted = match["function"].strip("\u01c1").split("\u01c1")  # [function] or [Class, method]
    nodes: list[ast.stmt] = ast.parse(path.read_text(encoding="utf-8")).body
    node: ast.stmt | None = None
    for part in wanted:
        node = next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return None
        nodes = node.body
    if node is None:  # an empty function name
        return None
    return "sha256:" + hashlib.sha256(ast.dump(node).encode()).hexdigest()[:12]


def _copy_sources(root: Path) -> None:
    """The package under src/ (where mutmut looks), and the tests and what they read, as they are now."""
    for name in ("src", *COPIED):
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    shutil.copytree(PROJECT / "generator" / "nimgen", root / "src" / "nimgen",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in COPIED:
        source = PROJECT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)


def workspace(root: Path, group: Group, jobs: int) -> None:
    """A new workspace: the sources, and mutmut's settings."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _copy_sources(root)
    (root / "generator").symlink_to("src", target_is_directory=True)  # tests read charts at generator/nimgen/
    _settings(root, group, jobs)


def _settings(root: Path, group: Group, jobs: int) -> None:
    """mutmut's settings for the group: its modules and its tests, as the group lists them now."""
    modules = ", ".join(f'"src/nimgen/{module}"' for module in group.modules)
    tests = ", ".join(f'"tests/{test}"' for test in group.tests)
    also = ", ".join(f'"{name}"' for name in (*COPIED, "generator") if name != "tests")
    (root / "pyproject.toml").write_text(
        f'[tool.mutmut]\nsource_paths = ["src/nimgen"]\nonly_mutate = [{modules}]\nalso_copy = [{also}]\n'
        f'pytest_add_cli_args_test_selection = [{tests}]\npytest_add_cli_args = ["-m", "not subprocess"]\n'
        # The Helm engine is Go, loaded in-process on first use: a process forked after it started hangs. The
        # fork server only collects the tests (nimgen loads the engine lazily), so no worker inherits the Go runtime.
        f'max_children = {jobs}\nprocess_isolation = "forkserver"\nforkserver_warmup = "collect"\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\naddopts = "-p no:cacheprovider"\n', encoding="utf-8")


def run_group(root: Path, group: Group, jobs: int, *, again: bool = False) -> dict[str, dict[str, str]]:
    """module -> mutant name -> status, for one group.

    With `again` and an earlier workspace of the group, the sources and tests are refreshed instead: mutmut
    re-tests the mutants of the functions that changed, and the script re-tests the earlier survivors
    (new tests may kill them); every other verdict stands, as the tests that gave it still exist.
    """
    stats = root / "mutants" / "mutmut-stats.json"
    earlier = again and stats.is_file()
    if earlier:
        _copy_sources(root)
        _settings(root, group, jobs)  # the group may list new tests
        # mutmut copies what the tests read into mutants/ once, when it first runs: refresh those copies too.
        for name in (*COPIED, "generator"):
            target, source = root / "mutants" / name, root / ("src" if name == "generator" else name)
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
        stats.unlink()  # which tests reach which function, collected again with the tests as they are now
    else:
        workspace(root, group, jobs)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # mutmut runs the tests inside mutants/, one folder deeper than the repository: name the CRD schemas
    # outright, and fail rather than skip without them (a skipped test covers nothing and kills nothing).
    schemas = PROJECT.parent / "shared" / "crd-schemas" / "strict"
    env.setdefault("NIMGEN_CRD_SCHEMAS", str(schemas))
    env["NIMGEN_REQUIRE_SHARED_SCHEMAS"] = "1"
    # Fixtures that share nimgen's output across tests rebuild it per test (tests/conftest.py `shared`), so that
    # mutmut credits every test with the code it depends on, not only the first one to build the fixture.
    env["NIMGEN_MUTATION"] = "1"
    env["NIMGEN_MUTATION_SHARED"] = ",".join(group.shared_fixtures)
    run = ["mutmut", "run", "--max-children", str(jobs)]
    subprocess.run(run, cwd=root, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if earlier:
        survivors = [name for mutants in _results(root, env).values() for name, status in mutants.items()
                     if status == "survived"]
        if survivors:
            subprocess.run([*run, *survivors], cwd=root, env=env, check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return _results(root, env)


def _results(root: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    """module -> mutant name -> status, as mutmut last recorded them."""
    done = subprocess.run(["mutmut", "results", "--all", "true"], cwd=root, env=env, capture_output=True,
                          text=True, check=False)
    results: dict[str, dict[str, str]] = {}
    for line in done.stdout.splitlines():
        if match := _RESULT.match(line):
            name = f"nimgen.{match['module']}.{match['mutant']}"
            results.setdefault(match["module"], {})[name] = match["status"].strip()
    return results


def report(results: dict[str, dict[str, str]], allowed: dict[str, Accepted]) -> list[str]:
    """A line per module: killed, accepted survivors, other survivors, score."""
    lines = []
    for module, mutants in sorted(results.items()):
        killed = sum(status in ("killed", "timeout") for status in mutants.values())
        lost = sorted(name for name, status in mutants.items() if status not in ("killed", "timeout"))
        excused = [name for name in lost if name in allowed]
        score = (killed + len(excused)) / len(mutants) if mutants else 1.0
        lines.append(f"{module:<24} {len(mutants):>5} mutants  {killed:>5} killed  {len(excused):>4} accepted  "
                     f"{len(lost) - len(excused):>4} surviving  score {score:6.1%}  (raw {killed / len(mutants):6.1%})")
        lines += [f"    survivor {name}  {function_hash(name)}" for name in lost if name not in allowed]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", action="append", choices=[group.name for group in GROUPS])
    parser.add_argument("--workdir", type=Path, default=None, help="Where workspaces go (default: a temp folder).")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--again", action="store_true",
                        help="Reuse the workspaces in --workdir: re-test changed functions and earlier survivors.")
    parser.add_argument("--report", action="store_true",
                        help="Only report what the workspaces in --workdir last recorded (nothing is run).")
    args = parser.parse_args()
    if shutil.which("mutmut") is None:
        sys.exit("mutmut is not installed: pip install mutmut")
    base = args.workdir or Path(tempfile.mkdtemp(prefix="nimgen-mutation-"))
    allowed = accepted()
    for group in GROUPS:
        if args.group and group.name not in args.group:
            continue
        results = (_results(base / group.name, dict(os.environ)) if args.report
                   else run_group(base / group.name, group, args.jobs, again=args.again))
        print(f"[{group.name}]")
        print("\n".join(report(results, allowed)), flush=True)


if __name__ == "__main__":
    main()
