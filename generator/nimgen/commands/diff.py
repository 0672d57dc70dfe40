"""`nimgen diff`: what changing an environment file does to the cluster, base git ref vs work tree.

Both sides are rendered by this nimgen (the base is read through git, never checked out), expanded
into the Kubernetes objects Argo CD applies and compared as parsed data: key order, YAML formatting
and header comments never show up. The reports are in diffreport.py; what the changes restart or
replace (pods, nodes, objects with immutable fields) in diffeffects.py.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from nimgen import helm
from nimgen.commands.diffeffects import Replacement, replacements
from nimgen.commands.plan import ModelPlan, Plan, plan
from nimgen.environment.load import load_environment
from nimgen.errors import UserError
from nimgen.gitops.tree import RenderError, render_environment
from nimgen.gitrefs import Base, Repository, environment_at
from nimgen.jsonreport import camel
from nimgen.model import Environment, Model
from nimgen.repository import default_root, display_path
from nimgen.validation.sources import Renderer, is_application, iter_argocd_manifests

Change = Literal["added", "removed", "changed"]
SIGNS = {"added": "+", "removed": "-", "changed": "~"}


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of a Kubernetes object (sorted by kind, namespace, name, then API group)."""

    kind: str
    namespace: str
    name: str
    group: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class FieldChange:
    """One changed field (dotted path); `before` is None when added, `after` when removed."""

    path: str
    change: Change
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class ObjectChange:
    """An object added, removed or changed; `fields` lists a changed object's field changes."""

    key: ObjectKey
    change: Change
    application: str  # the Application that applies it ("" for the root Application)
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class ModelChange:
    """A model added, removed or changed, as the capacity plan sees it on each side."""

    name: str
    change: Change
    before: ModelPlan | None
    after: ModelPlan | None
    images: tuple[str, str]  # "" on the side without the model
    others: tuple[str, ...] = ()  # other settings that changed (camelCase names)


@dataclass
class Side:
    """One side: the environment (None when the file does not exist there) and what it applies."""

    env: Environment | None
    plan: Plan | None = None
    objects: dict[ObjectKey, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    external: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Diff:
    """Everything `nimgen diff` reports."""

    file: str  # the environment file, relative to its repository root
    base: Base
    before: Side
    after: Side
    models: tuple[ModelChange, ...]
    objects: tuple[ObjectChange, ...]
    unchanged: int

    @property
    def changed(self) -> bool:
        """Whether anything Argo CD applies changes: an object added, removed or changed (`--exit-code`)."""
        return bool(self.objects)

    @property
    def replacements(self) -> tuple[Replacement, ...]:
        """What the changes restart or replace: pods, nodes, objects with immutable fields."""
        return replacements(self.objects)


def diff(env_file: Path, base_ref: str | None = None, engine: helm.Engine | None = None) -> Diff:
    """Compare `env_file` at `base_ref` (default: the merge base of HEAD with the default branch) and now."""
    root = default_root(env_file)
    if not root.is_dir():
        raise UserError(f"{env_file.parent} does not exist")
    repo = Repository.containing(root)
    base = repo.resolve(base_ref) if base_ref else repo.merge_base()
    shown = display_path(env_file, root)
    before = Side(environment_at(repo, base, env_file, shown))
    after = Side(load_environment(env_file, root) if env_file.is_file() else None)
    if before.env is None and after.env is None:
        raise UserError(f"{shown} exists neither in the work tree nor at base {base.label} ({base.short})",
                        hint="check the path, or pass another --base REF")
    if engine is None:
        try:
            engine = helm.engine()
        except helm.HelmError as error:
            hint = "diff renders charts as Argo CD does: pip install 'nimgen[validate]'"
            raise UserError(str(error), hint=hint) from None
    for side in (before, after):
        _expand(side, engine)
    objects, unchanged = _object_changes(before, after)
    return Diff(shown, base, before, after, _model_changes(before, after), objects, unchanged)


def _expand(side: Side, engine: helm.Engine) -> None:
    """Render the side's tree into a temporary root and collect every object Argo CD would apply."""
    if side.env is None:
        return
    env = side.env
    side.plan = plan(env)
    with tempfile.TemporaryDirectory(prefix="nimgen-diff-") as tmp:
        root = Path(tmp)
        for path, text in render_environment(env).items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text, encoding="utf-8")
        with Renderer(root, env, engine, None) as renderer:
            manifests = list(iter_argocd_manifests(root, env))
            for applied in manifests:
                if is_application(applied):
                    renderer.submit(applied)
            results = list(renderer.results())
    for applied in [*manifests, *(obj for result in results for obj in result.objects)]:
        side.objects[object_key(applied.obj)] = (applied.application, applied.obj)
    for result in results:
        source = (result.app.get("spec") or {}).get("source") or {}
        if result.notice:
            chart = f"{source['chart']} {source.get('targetRevision', '')}" if source.get("chart") else ""
            side.external.add(f"{result.name} ({chart or result.notice})")
        if result.error:  # nimgen's charts with values checked against their schemas: a bug, not the input
            raise RenderError(f"{env.name}: Application {result.name}: {result.error}")


def object_key(obj: dict[str, Any]) -> ObjectKey:
    """(kind, namespace, name, API group) of a manifest."""
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    kind, namespace, name = (str(v or "") for v in (obj.get("kind"), meta.get("namespace"), meta.get("name")))
    return ObjectKey(kind, namespace, name, group)


def _object_changes(before: Side, after: Side) -> tuple[tuple[ObjectChange, ...], int]:
    changes: list[ObjectChange] = []
    for key in sorted(before.objects.keys() | after.objects.keys()):
        old, new = before.objects.get(key), after.objects.get(key)
        if old is None and new is not None:
            changes.append(ObjectChange(key, "added", new[0], None, new[1]))
        elif new is None and old is not None:
            changes.append(ObjectChange(key, "removed", old[0], old[1], None))
        elif old is not None and new is not None and (found := field_changes(old[1], new[1])):
            changes.append(ObjectChange(key, "changed", new[0], old[1], new[1], tuple(found)))
    both = len(before.objects.keys() & after.objects.keys())
    return tuple(changes), both - sum(change.change == "changed" for change in changes)


def _segment(key: Any) -> str:
    text = str(key)
    plain = text and text.replace("_", "").replace("-", "").isalnum()
    return f".{text}" if plain else f"[{json.dumps(text)}]"


def _named(items: list[Any]) -> dict[str, int] | None:
    """name -> index when every item is a map with a distinct string `name`, else None."""
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if any(not isinstance(name, str) for name in names) or len(set(names)) != len(names):
        return None
    return {str(name): index for index, name in enumerate(names)}


def field_changes(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Differences as dotted paths; lists of maps with a `name` are matched by name, other lists by index."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[FieldChange] = []
        for key in sorted(before.keys() | after.keys(), key=str):
            sub = (path + _segment(key)).lstrip(".")
            if key not in after:
                found.append(FieldChange(sub, "removed", before=before[key]))
            elif key not in before:
                found.append(FieldChange(sub, "added", after=after[key]))
            else:
                found += field_changes(before[key], after[key], sub)
        return found
    if isinstance(before, list) and isinstance(after, list):
        old, new = _named(before), _named(after)
        pairs: list[tuple[int | None, int | None]]
        if old is not None and new is not None:
            pairs = [(old.get(name), index) for name, index in new.items()]
            pairs += [(index, None) for name, index in old.items() if name not in new]
        else:
            pairs = [(i if i < len(before) else None, i if i < len(after) else None)
                     for i in range(max(len(before), len(after)))]
        found = []
        for i, j in pairs:  # the path shows the index in the list it is read from (after, else before)
            if i is None and j is not None:
                found.append(FieldChange(f"{path}[{j}]", "added", after=after[j]))
            elif j is None and i is not None:
                found.append(FieldChange(f"{path}[{i}]", "removed", before=before[i]))
            elif i is not None and j is not None:
                found += field_changes(before[i], after[j], f"{path}[{j}]")
        return found
    if before == after and isinstance(before, bool) == isinstance(after, bool):
        return []
    return [FieldChange(path, "changed", before, after)]


# Settings with their own column in the model table; any other changed setting is listed by name.
_SUMMARISED = {"name", "image", "gpus", "min_replicas", "max_replicas", "node_pool"}


def _model_changes(before: Side, after: Side) -> tuple[ModelChange, ...]:
    def index(side: Side) -> dict[str, tuple[Model, ModelPlan]]:
        if side.env is None or side.plan is None:
            return {}
        return {model.name: (model, row) for model, row in zip(side.env.models, side.plan.models)}

    old, new = index(before), index(after)
    found = []
    for name in sorted(old.keys() | new.keys()):
        (previous, old_row), (current, new_row) = old.get(name, (None, None)), new.get(name, (None, None))
        images = (str(previous.image) if previous else "", str(current.image) if current else "")
        if previous is None or current is None:
            change: Change = "added" if previous is None else "removed"
            found.append(ModelChange(name, change, old_row, new_row, images))
        elif previous != current:
            others = tuple(sorted(camel(f.name) for f in fields(Model)
                                  if f.name not in _SUMMARISED
                                  and getattr(previous, f.name) != getattr(current, f.name)))
            found.append(ModelChange(name, "changed", old_row, new_row, images, others))
    return tuple(found)
