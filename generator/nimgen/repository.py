"""Where things are in a GitOps repository: its root, its environment files, paths as messages show them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from nimgen.errors import ConfigError, Location, Problem, UserError


def default_root(env_file: Path) -> Path:
    """The repository root for an environment file: the folder that holds its `environments/` folder."""
    folder = env_file.resolve().parent
    if folder.name != "environments":
        raise UserError(
            f"cannot tell where to write for {env_file}: it is not in an environments/ folder",
            hint="keep environment files in <repository>/environments/, or pass --root DIR",
        )
    return folder.parent


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` that holds an `environments/` folder, as git finds its top level."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "environments").is_dir():
            return folder
    raise UserError(f"no environments/ folder in {start} or any folder above it",
                    hint="run nimgen inside a GitOps repository, or pass ENV_FILE arguments")


def is_layer(path: Path) -> bool:
    """`_defaults.yaml` and other `_*.yaml` files are layers merged under environments, not environments."""
    return path.name.startswith("_")


def select_environments(given: Sequence[Path], cwd: Path) -> tuple[list[Path], list[Path]]:
    """The environment files a command works on, and the layer files it skips.

    No files: every environment of the repository around `cwd`. Layer files (`environments/*.yaml` in a
    shell matches `_defaults.yaml` too) are skipped, but a command given nothing else is refused.
    """
    if not given:
        return environment_files(find_root(cwd)), []
    layers = [path for path in given if is_layer(path)]
    files = [path for path in given if not is_layer(path)]
    if not files:
        raise UserError(f"{', '.join(map(str, layers))}: only layer files given, and a layer is merged under "
                        "every environment, not rendered on its own",
                        hint="pass environment files such as environments/prod.yaml, or none for all of them")
    return files, layers


def require_environment(path: Path) -> Path:
    """A command that takes one environment refuses a layer file with a clear message."""
    if is_layer(path):
        raise UserError(f"{path} is a layer merged under every environment, not an environment",
                        hint="pass an environment file such as environments/prod.yaml")
    return path


def environment_files(root: Path) -> list[Path]:
    """Every environment under root/environments/ (not the _defaults.yaml layer)."""
    folder = root / "environments"
    found = sorted(p for p in folder.glob("*.y*ml") if not p.name.startswith("_")) if folder.is_dir() else []
    if not found:
        raise UserError(f"no environment files in {folder}", hint="pass ENV_FILE arguments, or run in the repository root")
    return found


def display_path(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form (what headers and messages show)."""
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


class Named(Protocol):
    """An environment (or a cached render of one) by its name and file."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...


def refuse_name_clashes(loaded: Sequence[tuple[Named, Path]]) -> None:
    """Two environment files of one repository that share a `name:` would write one argocd/<name>/."""
    seen: dict[tuple[Path, str], Named] = {}
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
