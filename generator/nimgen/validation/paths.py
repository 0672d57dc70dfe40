"""Where an Application's sources point: folders inside this repository, as Argo CD requires.

Argo CD reads a source `path` relative to the repository root. It refuses an absolute path, one that climbs
out with `..`, and a repository with a symbolic link leading outside it; validate refuses the same, and never
reads a chart or value file outside the repository.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from nimgen.model import Environment
from nimgen.validation.findings import Finding, object_ref
from nimgen.validation.manifests import APPLICATION, Applied


def source_fields(app: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, source) of every source of an Application: spec.source and spec.sources[i]."""
    spec = app.get("spec")
    if not isinstance(spec, dict):
        return
    if isinstance(spec.get("source"), dict):
        yield "spec.source", spec["source"]
    sources = spec.get("sources")
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        if isinstance(source, dict):
            yield f"spec.sources[{index}]", source


def inside(root: Path, relative: Any) -> tuple[Path | None, str]:
    """The real path `relative` names under the repository root, or why it is not in the repository."""
    if not isinstance(relative, str):
        return None, f"is a {type(relative).__name__}, not a path"
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).anchor:
        return None, f"{relative!r} is absolute: Argo CD reads paths relative to the repository root"
    normal = posixpath.normpath(relative)
    if normal == ".." or normal.startswith("../"):
        return None, f"{relative!r} leaves the repository"
    real_root = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(real_root):
        return None, f"{relative!r} leads through a symbolic link to {target}, outside the repository"
    return target, ""


def outside_links(root: Path, folder: Path) -> list[tuple[str, Path]]:
    """(repository-relative link, target) of every symbolic link under `folder` that leads out of the repository."""
    real_root = root.resolve()
    found = []
    for directory, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(directory) / name
            if path.is_symlink() and not (target := path.resolve()).is_relative_to(real_root):
                found.append((path.relative_to(real_root).as_posix(), target))
    return found


def check(env: Environment, root: Path, manifests: list[Applied]) -> list[Finding]:
    """Every Application source path (the root Application's too) that leaves the repository."""
    found: list[Finding] = []
    walked: dict[Path, list[tuple[str, Path]]] = {}  # one walk per folder, however many Applications share it
    for applied in manifests:
        if (applied.obj.get("apiVersion"), applied.obj.get("kind")) != APPLICATION:
            continue
        place: dict[str, Any] = {"environment": env.name, "application": applied.application, "obj": object_ref(applied.obj),
                 "file": applied.file}
        for where, source in source_fields(applied.obj):
            if "path" not in source:
                continue
            folder, problem = inside(root, source["path"])
            if problem:
                found.append(Finding("error", "source-path", f"path {problem}", path=f"{where}.path",
                                     hint="give a path relative to the repository root, inside it "
                                          "(nimgen writes charts/<chart>)", **place))
                continue
            if folder is None or source.get("repoURL") != env.gitops.repo_url or not folder.is_dir():
                continue
            if folder not in walked:
                walked[folder] = outside_links(root, folder)
            for link, target in walked[folder]:
                found.append(Finding("error", "source-path", f"{link} is a symbolic link to {target}, outside the "
                                     "repository: Argo CD refuses such a repository", path=f"{where}.path",
                                     hint="replace the link with the files themselves", **place))
    return found
