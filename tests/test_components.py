"""Platform components: every registered component keeps the rules, and a new one needs only its module.

The new component here is registered the way a contributor would (one more entry in the registry);
everything else (its Application, the platform project's rights, reserved names, checks, README) must
follow without touching gitops/ or environment/.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import pytest
from conftest import EXAMPLE_NAMES, PROJECT, example_environment
from nimgen.components import registry
from nimgen.components.base import Add, AppSpec, Chart, Component, Grants, Kind
from nimgen.errors import ConfigError
from nimgen.gitops import applications
from nimgen.gitops.charts import shipped_charts
from nimgen.gitops.tree import RenderError, render_environment
from nimgen.model import Environment
from nimgen.yamlio import load_plain

PACKAGE = PROJECT / "generator" / "nimgen"


class Gateway(Component):
    """A made-up upstream component: one Application, a cluster kind, one more namespace, one check."""

    application_names: ClassVar[tuple[str, ...]] = ("gateway",)
    sync_label: ClassVar[str] = "the gateway"
    kinds: ClassVar[tuple[Kind, ...]] = (("gateway.networking.k8s.io", "GatewayClass"),)

    def enabled(self, env: Environment) -> bool:
        return env.production

    def applications(self, env: Environment) -> list[AppSpec]:
        return [AppSpec("gateway", Chart("gateway-helm", "oci://example.com/charts", "1.2.3"), {"replicas": 2},
                        "gateway-system", -11, (("Purpose", "the front door"),),
                        sync_options=("ServerSideApply=true",),
                        ignore_differences=({"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]},))]

    def grants(self, env: Environment) -> Grants:
        return Grants(cluster_kinds=self.kinds, namespaced_kinds=(("apps", "Deployment"),),
                      namespaces=("gateway-routes",))

    def check(self, document: Any, models: list[Any], add: Add) -> None:
        if document.get("production") and len(models) > 1:
            add(["models"], "the gateway takes one model", "remove a model")


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Gateway:
    component = Gateway()
    monkeypatch.setattr(registry, "COMPONENTS", (*registry.COMPONENTS, component))
    return component


def _prod_without_check(monkeypatch: pytest.MonkeyPatch) -> Environment:
    monkeypatch.setattr(Gateway, "check", Component.check)
    return example_environment("prod")


def test_a_registered_component_gets_its_application_and_rights(gateway: Gateway,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env = _prod_without_check(monkeypatch)
    app = applications.by_name(env)["gateway"]
    assert app["spec"]["project"] == "prod-platform"
    assert app["spec"]["source"] == {"repoURL": "oci://example.com/charts", "chart": "gateway-helm",
                                     "targetRevision": "1.2.3",
                                     "helm": {"releaseName": "gateway", "valuesObject": {"replicas": 2}}}
    assert app["spec"]["destination"]["namespace"] == "gateway-system"
    assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-11"
    assert app["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true", "PruneLast=true",
                                                       "ServerSideApply=true", "RespectIgnoreDifferences=true"]
    assert app["spec"]["ignoreDifferences"] == [{"group": "apps", "kind": "Deployment",
                                                 "jsonPointers": ["/spec/replicas"]}]
    assert app["spec"]["info"] == [{"name": "Purpose", "value": "the front door"}]

    project = applications.platform_project(env)
    assert project is not None
    assert "oci://example.com/charts" in project["spec"]["sourceRepos"]
    namespaces = [d["namespace"] for d in project["spec"]["destinations"]]
    assert {"gateway-system", "gateway-routes"} <= set(namespaces) and namespaces == sorted(namespaces)
    assert project["spec"]["clusterResourceWhitelist"][-1] == {"group": "gateway.networking.k8s.io",
                                                               "kind": "GatewayClass"}
    assert {"group": "apps", "kind": "Deployment"} in project["spec"]["namespaceResourceWhitelist"]
    # The models' project gains nothing.
    assert "oci://example.com/charts" not in applications.app_project(env)["spec"]["sourceRepos"]

    tree = render_environment(env)
    assert load_plain(tree[PurePosixPath("argocd/prod/apps/platform/gateway.yaml")]) == app
    readme = tree[PurePosixPath("argocd/prod/README.md")]
    assert ("(projects first, then monitoring, then the gateway's controllers, then the gateway, then node pools, "
            "then models)") in readme


def test_a_disabled_component_renders_nothing_but_keeps_its_name(gateway: Gateway) -> None:
    dev = example_environment("dev")
    assert not dev.production
    assert "gateway" not in applications.by_name(dev)
    assert not any("gateway" in str(path) for path in render_environment(dev))
    assert registry.reserved_application_names("dev")["gateway"] == "the platform Application gateway"


def test_a_components_check_runs_when_the_environment_is_loaded(gateway: Gateway) -> None:
    with pytest.raises(ConfigError) as caught:
        example_environment("prod")
    [problem] = [p for p in caught.value.problems if p.path == "$.models"]
    assert (problem.message, problem.hint) == ("the gateway takes one model", "remove a model")


def test_a_component_may_only_generate_files_inside_a_chart(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _prod_without_check(monkeypatch)
    monkeypatch.setattr(Gateway, "files", lambda self, env: {PurePosixPath("README.md"): "x\n"})
    with pytest.raises(RenderError, match="a component generated README.md outside a chart"):
        render_environment(env)


@pytest.mark.parametrize("env_name", EXAMPLE_NAMES)
def test_every_application_name_is_reserved_by_its_component(env_name: str) -> None:
    env = example_environment(env_name)
    for component in registry.enabled(env):
        names = {spec.name for spec in component.applications(env)}
        if component.project == "models":
            assert names == {model.name for model in env.models}
        else:
            assert names <= set(component.application_names), type(component).__name__


def test_every_local_chart_is_shipped_with_a_values_schema() -> None:
    envs = [example_environment(name) for name in EXAMPLE_NAMES]
    charts = {chart for env in envs for component in registry.enabled(env) for chart in component.charts(env)}
    assert charts <= set(shipped_charts())
    for chart in charts:
        assert (PACKAGE / "charts" / chart / "values.schema.json").is_file(), chart


def test_every_readme_template_exists() -> None:
    for component in registry.COMPONENTS:
        for slot, template in component.readme.items():
            assert slot in {"platform", "prerequisites", "before-models", "after-models"}
            assert (PACKAGE / "templates" / template).is_file(), template


@pytest.mark.parametrize("module", ["gitops/applications.py", "gitops/tree.py", "gitops/writer.py"])
def test_gitops_names_no_component(module: str) -> None:
    """The GitOps assembly reads the registry and the declarations, never one component."""
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    imported = {f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    components = {name for name in imported if name.startswith("nimgen.components")}
    assert components <= {"nimgen.components.registry", "nimgen.components.base.AppSpec",
                          "nimgen.components.base.Component", "nimgen.components.base.Kind"}, components


def test_the_layout_shows_where_each_command_lives() -> None:
    commands = {path.stem for path in (PACKAGE / "commands").glob("*.py")}
    assert {"render", "check", "diff", "plan", "validate", "bench", "smoke", "import_terraform", "init"} <= commands
    oversized = {str(path.relative_to(PACKAGE)): lines for path in PACKAGE.rglob("*.py")
                 if (lines := len(Path(path).read_text(encoding="utf-8").splitlines())) > 420}
    assert oversized == {}
