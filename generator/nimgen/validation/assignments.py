"""Each committed Application against nimgen's own render of the environment: one nimgen renders, in the
AppProject nimgen assigns it, and that AppProject present in the tree.

The expected projects come from `gitops.applications.argocd_objects`, never from names spelled out here:
which project an Application belongs to is nimgen's decision, made in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nimgen.errors import NimgenError
from nimgen.gitops.applications import argocd_objects
from nimgen.model import Environment
from nimgen.validation.findings import Finding, object_ref
from nimgen.validation.manifests import APP_PROJECT, APPLICATION, Applied
from nimgen.validation.yamldocs import documents

# Argo CD's built-in project: every repository, destination and kind. nimgen gives each Application a project
# that admits only what it deploys.
DEFAULT_PROJECT = "default"


@dataclass
class Expected:
    """What nimgen renders for an environment: each Application's project, and where each AppProject goes."""

    projects: dict[str, Any] = field(default_factory=dict)  # Application name -> spec.project
    app_projects: dict[str, str] = field(default_factory=dict)  # AppProject name -> repository-relative file


def expected(env: Environment) -> Expected:
    """The Applications and AppProjects nimgen renders for `env` (in memory; nothing is written)."""
    found = Expected()
    # The objects render dumps, as data: no YAML written and parsed again (a hundred models cost seconds).
    for path, doc in argocd_objects(env).items():
        kind = (doc.get("apiVersion"), doc.get("kind"))
        if kind == APPLICATION:
            found.projects[doc["metadata"]["name"]] = doc["spec"].get("project")
        elif kind == APP_PROJECT:
            found.app_projects[doc["metadata"]["name"]] = path.as_posix()
    return found


def _defines(root: Path, file: str, project: str) -> bool:
    """Whether the committed `file` holds AppProject `project` (nimgen may write one outside apps/)."""
    try:
        docs = documents((root / file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return any(isinstance(d, dict) and (d.get("apiVersion"), d.get("kind")) == APP_PROJECT
               and isinstance(d.get("metadata"), dict) and d["metadata"].get("name") == project for d in docs)


def _project_problem(root: Path, name: str, project: Any, present: set[str], want: Expected) -> str:
    """Why the Application's AppProject is not there ("" when it is)."""
    if not isinstance(project, str) or not project:
        return "names no AppProject (spec.project)"
    if project in present:
        return ""
    if project in want.app_projects:
        file = want.app_projects[project]
        return "" if _defines(root, file, project) else f"is in AppProject {project}, which is missing from {file}"
    if project == DEFAULT_PROJECT and want.projects.get(name) != DEFAULT_PROJECT:
        return (f"is in Argo CD's built-in project {DEFAULT_PROJECT!r}, which admits every repository, namespace "
                "and kind; nimgen never assigns it")
    if want.projects.get(name) == project:
        return ""  # nimgen assigns a project it does not write (the root Application's, made where the root is)
    return f"is in AppProject {project}, which no manifest of the tree creates"


def check(env: Environment, root: Path, manifests: list[Applied]) -> list[Finding]:
    """Applications nimgen does not render, in another project than nimgen assigns, or in a missing one."""
    try:
        want = expected(env)
    except NimgenError as error:
        return [Finding("error", "project", f"cannot render the environment to compare its Applications with: "
                        f"{error}", environment=env.name, hint=f"run 'nimgen render {env.source}' to see why")]
    present = {str(a.obj["metadata"].get("name")) for a in manifests
               if (a.obj.get("apiVersion"), a.obj.get("kind")) == APP_PROJECT}
    seen: dict[str, Applied] = {}
    found: list[Finding] = []
    for applied in manifests:
        if (applied.obj.get("apiVersion"), applied.obj.get("kind")) != APPLICATION:
            continue
        name, project = str(applied.obj["metadata"].get("name")), applied.obj["spec"].get("project")
        place: dict[str, Any] = {"environment": env.name, "application": applied.application, "obj": object_ref(applied.obj),
                 "file": applied.file}
        if name in seen:
            found.append(Finding("error", "tree", f"Application {name} is defined twice (also in {seen[name].file}): "
                                 "Argo CD keeps only one of them", **place))
        seen[name] = applied
        if name not in want.projects:
            found.append(Finding("error", "ownership", f"nimgen renders no Application {name} for {env.name}: it was "
                                 "added by hand, or its model was removed from the environment file",
                                 hint=f"remove the file, or describe it in {env.source} and run 'nimgen render'",
                                 **place))
        elif project != want.projects[name]:
            found.append(Finding("error", "project", f"is in AppProject {project!r}, but nimgen assigns "
                                 f"{want.projects[name]!r}", path="spec.project",
                                 hint=f"run 'nimgen render {env.source}'", **place))
        problem = _project_problem(root, name, project, present, want)
        if problem:
            found.append(Finding("error", "project", problem, path="spec.project",
                                 hint="Argo CD syncs an Application only in an existing AppProject; use the one "
                                      "nimgen assigns", **place))
    return found
