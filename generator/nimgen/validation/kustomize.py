"""kustomize build files in a tree Argo CD reads, and the tool Argo CD picks for a source folder.

A `kustomization.yaml` is no Kubernetes object (no metadata, a kind no cluster serves). What Argo CD does with
one depends on where it lies (argo-cd util/app/discovery and reposerver/repository):

- a source naming no tool (none of spec.source.helm, .kustomize, .directory, .plugin) is built with Kustomize
  when its folder holds kustomization.yaml, kustomization.yml or Kustomization at the top, even beside a
  Chart.yaml: the last of the folder's files in name order decides, and those names sort after Chart.yaml;
- a directory source (explicit, like nimgen's root Application) never runs kustomize: each file its
  `recurse`, `include` and `exclude` admit is applied as plain manifests, a Kustomization too, and the sync
  fails on it; the files they leave out are never read;
- Helm renders every file under a chart's templates/ into a manifest; the chart's other files are not applied.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nimgen.validation.findings import Severity

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_API = "kustomize.config.k8s.io/"
# The spec.source keys that name the tool; with none of them Argo CD detects it from the folder.
TOOLS = ("kustomize", "helm", "directory", "plugin")


def is_kustomization(doc: Any, file_name: str) -> bool:
    """A kustomize build file: kustomize's apiVersion, or a mapping without metadata in a kustomization file."""
    if not isinstance(doc, dict):
        return False
    api_version = doc.get("apiVersion")
    if isinstance(api_version, str) and api_version.startswith(KUSTOMIZE_API):
        return True
    return file_name in KUSTOMIZATION_FILES and doc.get("metadata") is None


def explicit_tools(source: dict[str, Any]) -> list[str]:
    """The tools a source names (Argo CD refuses more than one; none: detected from the folder)."""
    return [key for key in TOOLS if source.get(key) is not None]


def detected_tool(folder: Path) -> tuple[str, str]:
    """(tool, file) Argo CD's detection picks for a folder: ("kustomize", "kustomization.yaml"),
    ("helm", "Chart.yaml") or ("directory", "")."""
    found = ("directory", "")
    try:
        names = sorted(path.name for path in folder.iterdir() if not path.is_dir())
    except OSError:
        return found
    for name in names:  # Go's filepath.Walk visits in name order; the last match wins
        if name.endswith("Chart.yaml"):
            found = ("helm", name)
        if name in KUSTOMIZATION_FILES:
            found = ("kustomize", name)
    return found


def _glob_regex(pattern: str) -> str:
    """gobwas/glob without separators, as Argo CD matches directory include/exclude: `*` spans folders, `?` is one
    character, `[...]`/`[!...]` a class, `{a,b}` alternatives (nestable), `\\` escapes."""
    out: list[str] = []
    depth = index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        if char == "[":
            end = pattern.find("]", index + 1)
            if end <= index + 1:
                raise ValueError(f"unclosed or empty class in {pattern!r}")
            body = pattern[index + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            index = end + 1
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "{":
            out.append("(?:")
            depth += 1
        elif char == "}" and depth:
            out.append(")")
            depth -= 1
        elif char == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(char))
        index += 1
    if depth:
        raise ValueError(f"unclosed {{ in {pattern!r}")
    return "".join(out)


def glob_match(pattern: str, path: str) -> bool:
    """Whether Argo CD's directory glob matches a path relative to the source folder (a glob that does not compile
    matches nothing, as in Argo CD)."""
    try:
        return re.fullmatch(_glob_regex(pattern), path, re.DOTALL) is not None
    except (re.error, ValueError):
        return False


def directory_reads(directory: Any, relative: str) -> bool:
    """Whether a directory source with these settings (spec.source.directory) reads the file at `relative`."""
    settings = directory if isinstance(directory, dict) else {}
    if "/" in relative and not settings.get("recurse"):
        return False
    exclude, include = settings.get("exclude"), settings.get("include")
    if isinstance(exclude, str) and exclude and glob_match(exclude, relative):
        return False
    return not (isinstance(include, str) and include and not glob_match(include, relative))


def in_apps(root_app: dict[str, Any] | None, apps: str, relative: str) -> tuple[Severity, str]:
    """(severity, message) for a Kustomization at `relative` under the root Application's folder `apps`."""
    what = "is a kustomize Kustomization, not a Kubernetes object"
    if root_app is None:
        return "error", f"{what}: no root Application reads {apps}/ as it stands"
    name = root_app["metadata"]["name"]
    source = (root_app.get("spec") or {}).get("source")
    source = source if isinstance(source, dict) else {}
    tools = explicit_tools(source)
    if tools and tools != ["directory"]:
        return "error", (f"{what}: the root Application {name} names the tool {', '.join(tools)} instead of "
                         "nimgen's plain directory")
    if directory_reads(source.get("directory"), relative):
        return "error", (f"{what}: the root Application {name} reads {apps}/ as a plain directory, which Argo CD "
                         "never builds with kustomize, so it would apply this file as an object and the sync fails "
                         "(no metadata.name, and no cluster serves kustomize.config.k8s.io)")
    include = (source.get("directory") or {}).get("include")
    reads = f" reading only {include!r}" if isinstance(include, str) and include else ""
    return "warning", (f"{what}, and Argo CD ignores it: the root Application {name} reads {apps}/ as a plain "
                       f"directory (spec.source.directory: Argo CD never switches it to Kustomize){reads}; the file "
                       "has no effect")


def detected_in_root(root_app: dict[str, Any], apps: str, file: str) -> str:
    """The message for a root Application that names no tool over a folder holding a kustomization file."""
    name = root_app["metadata"]["name"]
    automated = ((root_app.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    prune = isinstance(automated, dict) and automated.get("prune") is True
    return (f"makes Argo CD build {apps}/ with Kustomize: the root Application {name} names no tool "
            f"(spec.source.directory), and Argo CD detects Kustomize from {file} at the top of the folder; it would "
            "apply only what this file lists" + (", and prune every Application it does not list" if prune else ""))


def beside_root(folder: str) -> str:
    """The message for a Kustomization beside root.yaml."""
    return (f"is a kustomize Kustomization, not a Kubernetes object, and nothing applies it: Terraform installs "
            f"root.yaml and root-project.yaml from {folder}/, and the root Application reads {folder}/apps/ as "
            "plain manifests; the file has no effect")


def in_chart(path: str, document: int) -> str:
    """The message for a Kustomization a chart renders (document: 1-based, in the template's output)."""
    return (f"{path} document {document}: is a kustomize Kustomization, not a Kubernetes object: Helm renders every "
            "file under templates/, and Argo CD, which runs helm template for this Application and never kustomize, "
            "would apply it and fail; move it out of templates/")


def chart_as_kustomize(relative: str, file: str) -> str:
    """The message for a chart folder Argo CD would build with Kustomize."""
    return (f"{relative} holds {file} beside its Chart.yaml and the Application names no tool (spec.source.helm): "
            f"Argo CD builds it with Kustomize, not as a Helm chart; remove {relative}/{file} or set spec.source.helm")
