"""The committed Argo CD tree as the root Application reads it: documents, each checked for the shape of an object.

Anything that is not a Kubernetes object at all (invalid YAML, a list or a scalar where an object belongs, an
empty document, no apiVersion or kind, no metadata, an Application whose spec is not a mapping) becomes a
finding placed at its file and line, and stays out of the manifests the other checks read: they may rely on
that shape. A kustomize Kustomization is said to be one, with what Argo CD does with it where it lies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nimgen.model import Environment
from nimgen.validation import kustomize
from nimgen.validation.findings import Finding, Severity, object_ref
from nimgen.validation.yamldocs import AliasBombError, documents

APPLICATION = ("argoproj.io/v1alpha1", "Application")
APP_PROJECT = ("argoproj.io/v1alpha1", "AppProject")
# What Argo CD's directory source reads (the root Application applies apps/ this way).
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
NO_ROOT = "<no root Application>"


@dataclass
class Applied:
    """One manifest and where it comes from."""

    obj: dict[str, Any]
    application: str  # the Application that applies it ("" for what is applied by hand: the root Application)
    file: str  # repository-relative file (for Argo CD manifests) or chart template path


def is_application(applied: Applied) -> bool:
    """An Application synced by the root Application (not the root itself)."""
    return (applied.obj.get("apiVersion"), applied.obj.get("kind")) == APPLICATION and bool(applied.application)


class TreeError(Exception):
    """The committed tree cannot be read as Argo CD would (missing folder, broken YAML)."""


def yaml_type(value: Any) -> str:
    """What a YAML value is, in YAML's words: mapping, list, string, null, int, ..."""
    return {dict: "mapping", list: "list", str: "string", type(None): "null"}.get(type(value), type(value).__name__)


def shape_problem(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(field, message) of the first thing that makes a mapping no Kubernetes object, or None."""
    for key in ("apiVersion", "kind"):
        value = obj.get(key)
        if value is None or value == "":
            return key, f"has no {key}"
        if not isinstance(value, str):
            return key, f"{key} is a {yaml_type(value)}, not a string"
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return "metadata", "has no metadata" if metadata is None else f"metadata is a {yaml_type(metadata)}, not a mapping"
    name = metadata.get("name") or metadata.get("generateName")
    if name is None or name == "":
        return "metadata.name", "has no metadata.name"
    if not isinstance(name, str):
        return "metadata.name", f"metadata.name is a {yaml_type(name)}, not a string"
    if "namespace" in metadata and not isinstance(metadata["namespace"], str):
        return "metadata.namespace", "metadata.namespace is not a string"
    for key in ("labels", "annotations"):
        if metadata.get(key) is not None and not isinstance(metadata[key], dict):
            return f"metadata.{key}", f"metadata.{key} is a {yaml_type(metadata[key])}, not a mapping"
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return "spec", f"spec is a {yaml_type(spec)}, not a mapping"
    if (obj.get("apiVersion"), obj.get("kind")) == APPLICATION:
        if spec is None:
            return "spec", "Application has no spec"
        if spec.get("source") is not None and not isinstance(spec["source"], dict):
            return "spec.source", f"spec.source is a {yaml_type(spec['source'])}, not a mapping"
        sources = spec.get("sources")
        if sources is not None and not (isinstance(sources, list) and all(isinstance(s, dict) for s in sources)):
            return "spec.sources", "spec.sources is not a list of mappings"
    return None


def _line(nodes: list[yaml.Node], index: int, field: str = "") -> int:
    """1-based line of document `index`, or of the key `field` (dotted) inside it when it has one."""
    if index >= len(nodes):
        return 0
    node = nodes[index]
    line = int(node.start_mark.line) + 1
    for part in [p for p in field.split(".") if p]:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        if match is None:
            break
        line, node = int(match[0].start_mark.line) + 1, match[1]
    return line


def _nodes(text: str) -> list[yaml.Node]:
    # Parsed again only when a document needs a line number: the common, clean case never pays for it.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.compose_all(text, Loader=loader))


@dataclass
class ArgoTree:
    """What the root Application applies, the root Application itself first, and what could not be read."""

    manifests: list[Applied] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    root_name: str = ""


def _reading_order(path: Path, apps: Path) -> tuple[int, str]:
    # nimgen's layout syncs apps/*.yaml (projects) and apps/platform/ before apps/models/: read them first
    # so their renders start first.
    relative = path.relative_to(apps)
    return (0 if len(relative.parts) == 1 or relative.parts[0] == "platform" else 1, relative.as_posix())


# What to say of a Kustomization found in a file: (severity, message), or None when it is already said.
OnKustomization = Callable[[str], "tuple[Severity, str] | None"]


class _Reader:
    """Reads files into an ArgoTree, turning every unreadable document into a located finding."""

    def __init__(self, root: Path, env: Environment) -> None:
        self.root, self.env, self.tree = root, env, ArgoTree()
        self.on_read: Callable[[Applied], object] = lambda _: None

    def problem(self, file: str, line: int, message: str, application: str, obj: str = "",
                severity: Severity = "error", hint: str = "") -> None:
        self.tree.findings.append(Finding(
            severity, "tree", message, environment=self.env.name, application=application, obj=obj, file=file,
            line=line, hint=hint or "Argo CD cannot apply this as it stands; nimgen writes one Kubernetes object per "
                                    f"document: fix or remove it (run 'nimgen render {self.env.source}' for nimgen's "
                                    "own files)"))

    def kustomization_hint(self) -> str:
        return (f"remove it: nimgen writes argocd/{self.env.name}/ from {self.env.source}; describe the change there "
                f"and run 'nimgen render {self.env.source}'")

    def read(self, path: Path, application: str, on_kustomization: OnKustomization) -> list[Applied]:
        relative = path.relative_to(self.root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
            docs = documents(text)
        except (OSError, UnicodeDecodeError) as error:
            self.problem(relative, 0, f"cannot be read: {error}", application)
            return []
        except RecursionError:
            self.problem(relative, 0, "is nested too deeply to be a manifest", application)
            return []
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
            detail = " ".join(str(p) for p in (getattr(error, "context", None), getattr(error, "problem", None)) if p)
            message = str(error) if isinstance(error, AliasBombError) else f"is not valid YAML: {detail or error}"
            self.problem(relative, mark.line + 1 if mark else 0, message, application)
            return []
        found: list[Applied] = []
        nodes: list[yaml.Node] | None = None
        for index, doc in enumerate(docs):
            problem: tuple[str, str] | None
            if kustomize.is_kustomization(doc, path.name):
                said = on_kustomization(relative)
                if said is not None:
                    nodes = _nodes(text) if nodes is None else nodes
                    self.problem(relative, _line(nodes, index), said[1], application, severity=said[0],
                                 hint=self.kustomization_hint())
                continue
            if doc is None:
                problem = ("", f"document {index + 1} is empty: nimgen never writes one, so the file was edited")
            elif not isinstance(doc, dict):
                problem = ("", f"document {index + 1} is a {yaml_type(doc)}, not a Kubernetes object")
            else:
                problem = shape_problem(doc)
            if problem is None:
                found.append(Applied(doc, application, relative))
                self.on_read(found[-1])
                continue
            nodes = _nodes(text) if nodes is None else nodes
            obj = object_ref(doc) if isinstance(doc, dict) else ""
            self.problem(relative, _line(nodes, index, problem[0]), problem[1], application, obj)
        return found


def _root_tool(reader: _Reader, root_app: dict[str, Any] | None, apps: Path) -> str:
    """The kustomization file that makes Argo CD build apps/ with Kustomize (reported here), or ""."""
    source = ((root_app or {}).get("spec") or {}).get("source")
    if root_app is None or not isinstance(source, dict) or kustomize.explicit_tools(source):
        return ""
    tool, file = kustomize.detected_tool(apps)
    if tool != "kustomize":
        return ""
    relative = (apps / file).relative_to(reader.root).as_posix()
    reader.problem(relative, 0, kustomize.detected_in_root(root_app, f"argocd/{reader.env.name}/apps", file),
                   reader.tree.root_name, hint=reader.kustomization_hint())
    return relative


def manifest_files(root: Path, env: Environment) -> int:
    """How many manifest files argocd/<env>/apps/ holds (before reading any)."""
    apps = root / "argocd" / env.name / "apps"
    return sum(1 for p in apps.rglob("*") if p.suffix in MANIFEST_SUFFIXES) if apps.is_dir() else 0


def read_argocd(root: Path, env: Environment, on_read: Callable[[Applied], object] | None = None) -> ArgoTree:
    """What is applied by hand (root.yaml with the root Application, and any other manifest beside it, such as
    the root's AppProject), then every manifest under argocd/<env>/apps/ (the root Application's recursive
    directory). `on_read` gets each manifest as soon as its file is read (validate starts rendering meanwhile)."""
    reader = _Reader(root, env)
    if on_read is not None:
        reader.on_read = on_read
    folder = root / "argocd" / env.name
    folder_name = f"argocd/{env.name}"
    if not folder.is_dir():
        reader.problem(f"argocd/{env.name}", 0, f"argocd/{env.name}/ does not exist", "")
        return reader.tree
    root_file, apps = folder / "root.yaml", folder / "apps"
    if not root_file.is_file():
        reader.problem(root_file.relative_to(root).as_posix(), 0, "is missing: nothing would apply "
                       f"argocd/{env.name}/apps/", "")
    by_hand = sorted((p for p in folder.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file()),
                     key=lambda path: (path != root_file, path.name))
    for path in by_hand:
        reader.tree.manifests += reader.read(path, "", lambda _: ("warning", kustomize.beside_root(folder_name)))
    root_app = next((a.obj for a in reader.tree.manifests if (a.obj.get("apiVersion"), a.obj.get("kind")) == APPLICATION),
                    None)
    reader.tree.root_name = str(root_app["metadata"]["name"]) if root_app else ""
    if root_file.is_file() and not reader.tree.root_name:
        reader.problem(root_file.relative_to(root).as_posix(), 0, "holds no root Application: nothing would "
                       f"apply argocd/{env.name}/apps/", "")
    files = sorted((p for p in apps.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()),
                   key=lambda path: _reading_order(path, apps)) if apps.is_dir() else []
    detected = _root_tool(reader, root_app, apps) if apps.is_dir() else ""
    apps_name = f"argocd/{env.name}/apps"

    def in_apps(relative: str) -> tuple[Severity, str] | None:
        if relative == detected:
            return None  # said once, by _root_tool
        return kustomize.in_apps(root_app, apps_name, relative.removeprefix(apps_name + "/"))

    for path in files:
        reader.tree.manifests += reader.read(path, reader.tree.root_name or NO_ROOT, in_apps)
    return reader.tree


def iter_argocd_manifests(root: Path, env: Environment) -> Iterator[Applied]:
    """The manifests of read_argocd; TreeError for the first thing that could not be read (for `nimgen diff`)."""
    tree = read_argocd(root, env)
    errors = [finding for finding in tree.findings if finding.severity == "error"]
    if errors:
        first = errors[0]
        raise TreeError(f"{first.location or first.file}: {first.message}")
    yield from tree.manifests
