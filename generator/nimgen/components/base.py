"""What a platform component declares: its Applications, their charts, the rights they need, its checks.

A component says *what* it needs; `nimgen.gitops.applications` turns that into Argo CD objects and
AppProjects, and `nimgen.gitops.tree` into files. Neither knows any component by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal

from nimgen.model import Environment, Prerequisite, Ref, Waiver

Kind = tuple[str, str]  # (API group, kind)
Project = Literal["models", "platform"]
# The reporting callback of environment checks: add(path, message, hint, key=..., warning=...).
Add = Callable[..., None]


def setting(value: Any) -> dict[str, Any]:
    """A setting of a (maybe schema-invalid) document as a mapping, for checks: {} for anything else."""
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Chart:
    """Where an Application's chart comes from: a chart nimgen ships (no `repo`), or a pinned upstream one."""

    name: str
    repo: str = ""  # upstream Helm repository URL
    version: str = ""

    @property
    def local(self) -> bool:
        """Whether nimgen ships this chart (written to charts/<name>/ and rendered from this repository)."""
        return not self.repo

    @property
    def path(self) -> str:
        """Repository folder of a local chart."""
        return f"charts/{self.name}"


@dataclass(frozen=True)
class AppSpec:
    """One child Application of the root, as a component asks for it."""

    name: str  # Application name and Helm release name
    chart: Chart
    values: dict[str, Any]
    namespace: str  # destination namespace
    wave: int  # sync wave inside the root Application
    info: tuple[tuple[str, str], ...]  # shown in Argo CD's UI
    labels: dict[str, str] = field(default_factory=dict)  # replaces the environment label when set
    sync_options: tuple[str, ...] = ()  # beyond CreateNamespace and PruneLast
    # False for a namespace that exists before Argo CD syncs (then nothing creates an empty one by mistake).
    create_namespace: bool = True
    # Fields Argo CD must not fight over (RespectIgnoreDifferences is added with them).
    ignore_differences: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Grants:
    """What a component's Applications create, for the AppProject they sync through.

    The namespaces of the component's Applications are admitted anyway; `namespaces` adds the others
    its charts write into (a claim in each model namespace, kube-system Services).
    """

    cluster_kinds: tuple[Kind, ...] = ()
    namespaced_kinds: tuple[Kind, ...] = ()
    namespaces: tuple[str, ...] = ()


class Component:
    """A platform component. Subclasses override what they use; the defaults declare nothing.

    Register an instance in `nimgen.components.registry.COMPONENTS`: the order there is the order of
    its kinds in the AppProject and of its notes in the environment README.
    """

    # Applications of this component sync through the environment's own project ("models") or its
    # platform project.
    project: ClassVar[Project] = "platform"
    # Every Application name it may create, enabled or not: a model may never take one.
    application_names: ClassVar[tuple[str, ...]] = ()
    # README templates under templates/readme/, by slot: "platform" (how the platform syncs),
    # "prerequisites" (what must exist before a sync), "before-models" and "after-models" (own sections).
    readme: ClassVar[dict[str, str]] = {}
    # How the environment README names this component in the sync-wave order ("" for no mention).
    sync_label: ClassVar[str] = ""
    # Value paths of its upstream charts whose maps the chart passes on whole (into a configuration file of the
    # software's own), by chart name: that software's API documents their keys, not the chart's values.yaml.
    open_values: ClassVar[dict[str, tuple[str, ...]]] = {}

    def enabled(self, env: Environment) -> bool:
        """Whether the environment uses this component."""
        return False

    def applications(self, env: Environment) -> list[AppSpec]:
        """The Applications it renders (only called when enabled)."""
        return []

    def grants(self, env: Environment) -> Grants:
        """Kinds and extra namespaces its Applications create (only called when enabled)."""
        return Grants()

    def readme_context(self, env: Environment) -> dict[str, Any]:
        """Names its README templates use besides `env` (only called when enabled)."""
        return {}

    def charts(self, env: Environment) -> tuple[str, ...]:
        """Charts nimgen ships for it (written under charts/): by default, those its Applications use."""
        return tuple(dict.fromkeys(app.chart.name for app in self.applications(env) if app.chart.local))

    def files(self, env: Environment) -> dict[PurePosixPath, str]:
        """Generated files beyond its charts and Applications (repository-relative path -> text)."""
        return {}

    def prerequisites(self, env: Environment) -> tuple[Prerequisite, ...]:
        """Objects its settings say exist already (an existing Secret, claim or StorageClass): provided by someone."""
        return ()

    def needs(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        """Objects its upstream charts read, by Application (what nimgen passes as existingSecret-style values):
        charts rendered offline show their references themselves, these are checked even when they are not."""
        return {}

    def run_time_objects(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        """Objects its upstream charts' own programs create once they run (a hook Job's Secrets), by Application:
        no manifest shows them, yet what reads them will find them."""
        return {}

    def generated_secrets(self, env: Environment) -> dict[str, tuple[Ref, ...]]:
        """Secrets its upstream charts render with values they generate at render time (a self-signed
        certificate), by Application: no value of them is in Git or in the environment file."""
        return {}

    def policy_waivers(self, env: Environment) -> dict[str, tuple[Waiver, ...]]:
        """Serving-safety rules containers of its upstream charts cannot meet (a device plugin must run as root),
        by Application, each with its reason: no value nimgen could set would meet them."""
        return {}

    def crds(self, env: Environment) -> dict[str, tuple[str, ...]]:
        """API groups whose CRDs its upstream charts install, by Application (known even when not rendered offline)."""
        return {}

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        """Cross-field checks of its settings in a layered (maybe schema-invalid) environment document."""
