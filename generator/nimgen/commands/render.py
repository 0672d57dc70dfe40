"""Load, render and write several environments: all are checked before any is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nimgen.commands.plan import Plan, plan
from nimgen.environment.load import load_environment
from nimgen.errors import ConfigError, Problem
from nimgen.gitops import rendercache, writer
from nimgen.gitops.drift import tree_digests
from nimgen.gitops.tree import Tree, render_environment
from nimgen.model import Environment
from nimgen.repository import default_root, display_path, refuse_name_clashes


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
    loaded: list[tuple[Environment, Path, Tree, Path, str | None]] = []
    problems: list[Problem] = []
    for env_file in env_files:
        root = output if output is not None else default_root(env_file)
        key_before = rendercache.key(env_file, display_path(env_file, root))
        try:
            env = load_environment(env_file, root)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        loaded.append((env, root, render_environment(env), env_file, key_before))
    if problems:
        raise ConfigError(problems)
    refuse_name_clashes([(env, root) for env, root, *_ in loaded])
    results = []
    for env, root, tree, env_file, key_before in loaded:
        if dry_run:
            changes = writer.write(root, writer.Scope(env.name), env.source, tree, dry_run=True)
        else:
            with writer.repository_lock(root, lock_timeout):
                changes = writer.write(root, writer.Scope(env.name), env.source, tree)
        results.append(RenderResult(env.name, root, changes, env.warnings))
        if not dry_run:
            rendercache.keep(env_file, key_before, rendercache.Entry(
                env.name, env.source, env.defaults_source, tree_digests(tree)))
    return results


def plan_environment(env_file: Path) -> Plan:
    """Validate one environment file and compute its capacity plan (writes nothing)."""
    root = env_file.resolve().parent.parent
    return plan(load_environment(env_file, root))
