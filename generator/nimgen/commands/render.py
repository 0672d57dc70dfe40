"""Load, render and write several environments: all are checked before any is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nimgen.commands.plan import Plan, plan
from nimgen.environment.load import load_environment
from nimgen.errors import ConfigError, Location, Problem
from nimgen.gitops import writer
from nimgen.gitops.tree import Tree, render_environment
from nimgen.model import Environment
from nimgen.repository import default_root


@dataclass(frozen=True)
class RenderResult:
    """What rendering one environment did."""

    env_name: str
    root: Path
    changes: list[writer.Change]
    warnings: tuple[Problem, ...] = ()


def render_files(env_files: list[Path], *, output: Path | None = None, dry_run: bool = False,
                 lock_timeout: float = 60.0) -> list[RenderResult]:
    """Validate every file, then write each environment's tree; raise before writing if any is invalid.

    Writes hold the repository's lock, so concurrent renders of one repository wait for each other.
    """
    loaded: list[tuple[Environment, Path, Tree]] = []
    problems: list[Problem] = []
    for env_file in env_files:
        root = output if output is not None else default_root(env_file)
        try:
            env = load_environment(env_file, root)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        loaded.append((env, root, render_environment(env)))
    if problems:
        raise ConfigError(problems)
    refuse_name_clashes([(env, root) for env, root, _ in loaded])
    results = []
    for env, root, tree in loaded:
        if dry_run:
            changes = writer.write(root, writer.Scope(env.name), env.source, tree, dry_run=True)
        else:
            with writer.repository_lock(root, lock_timeout):
                changes = writer.write(root, writer.Scope(env.name), env.source, tree)
        results.append(RenderResult(env.name, root, changes, env.warnings))
    return results


def refuse_name_clashes(loaded: list[tuple[Environment, Path]]) -> None:
    """Two environment files of one repository that share a `name:` would write one argocd/<name>/."""
    seen: dict[tuple[Path, str], Environment] = {}
    problems = []
    for env, root in loaded:
        key = (root.resolve(), env.name)
        if key in seen:
            problems.append(
                Problem(Location(env.source, 1, 1), "$.name",
                        f"environment name '{env.name}' is also used by {seen[key].source}",
                        "each environment writes argocd/<name>/; give every environment its own name")
            )
        seen[key] = env
    if problems:
        raise ConfigError(problems)


def plan_environment(env_file: Path) -> Plan:
    """Validate one environment file and compute its capacity plan (writes nothing)."""
    root = env_file.resolve().parent.parent
    return plan(load_environment(env_file, root))
