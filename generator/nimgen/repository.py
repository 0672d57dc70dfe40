"""Where things are in a GitOps repository: its root, its environment files, paths as messages show them."""

from __future__ import annotations

import os
from pathlib import Path

from nimgen.errors import UserError


def default_root(env_file: Path) -> Path:
    """The repository root for an environment file: the folder that holds its `environments/` folder."""
    folder = env_file.resolve().parent
    if folder.name != "environments":
        raise UserError(
            f"cannot tell where to write for {env_file}: it is not in an environments/ folder",
            hint="keep environment files in <repository>/environments/, or pass --output DIR",
        )
    return folder.parent


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
