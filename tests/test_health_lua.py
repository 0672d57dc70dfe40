"""The Lua health checks terraform/values/argocd.yaml installs in Argo CD, run in a real Lua interpreter.

Argo CD (util/lua/lua.go, v3.4.2) runs a health check as one chunk in gopher-lua, a Lua 5.1, with only the
base, package and table libraries and an `os` that has `time` and `date`; the resource is the global `obj`
(its JSON turned into Lua tables: objects keyed by name, arrays from 1) and the chunk returns a table with
`status` and `message`. These tests do the same with lupa's Lua 5.1 and the same libraries, so a script
that calls string.* or math.* fails here as it would there.

The argoproj.io/Application check gates nimgen's sync waves: the root Application moves to the next wave
when every child Application of the current one reads Healthy, fails it on Degraded and waits otherwise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "terraform" / "values" / "argocd.yaml"
APPLICATION_KEY = "resource.customizations.health.argoproj.io_Application"

# Argo CD's own check, from docs/operator-manual/health.md ("Argocd App") in argoproj/argo-cd at tag v3.4.2
# (commit 0dc6b1b57dd5bb925d5b03c3d09419ab9fb4225e), unchanged on master at 37ee0097cf85: the values file
# must keep it verbatim and only add guards after it.
UPSTREAM = """\
hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil then
  if obj.status.health ~= nil then
    hs.status = obj.status.health.status
    if obj.status.health.message ~= nil then
      hs.message = obj.status.health.message
    end
  end
end
return hs
"""

# Argo CD maps any other status to Unknown (util/lua/lua.go isValidHealthStatusCode).
HEALTH_CODES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


# --------------------------------------------------------------------------------------------------------
# Running Lua the way Argo CD does


def to_lua(runtime: Any, value: Any) -> Any:
    """A Python value (parsed JSON/YAML) as Argo CD hands it to Lua: dicts and lists become tables."""
    if isinstance(value, dict):
        table = runtime.table()
        for key, item in value.items():
            table[key] = to_lua(runtime, item)
        return table
    if isinstance(value, list):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            table[index] = to_lua(runtime, item)
        return table
    return value


def sandbox() -> Any:
    """A Lua 5.1 with the libraries Argo CD opens for health checks, and no others."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    runtime.execute("""
        string, math, io, debug, coroutine = nil, nil, nil, nil, nil
        os = {time = os.time, date = os.date}
    """)
    return runtime


def run(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    runtime = sandbox()
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(script)
    assert result is not None and lua51.lua_type(result) == "table", f"the script returned {result!r}"
    return dict(result.items())


def loads(script: str) -> None:
    """Compiles `script` without running it; fails with Lua's message if it does not."""
    result = sandbox().globals().loadstring(script)
    function, error = result if isinstance(result, tuple) else (result, None)
    assert function is not None, error


# --------------------------------------------------------------------------------------------------------
# The values file


def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text(encoding="utf-8"))


def application_check() -> str:
    script = values()["configs"]["cm"][APPLICATION_KEY]
    assert isinstance(script, str)
    return script


def lua_snippets(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every Lua script in the values: health checks, actions (discovery.lua, action.lua), in the split keys
    (resource.customizations.health.<group_kind>, .actions.<group_kind>) or the legacy
    resource.customizations block, and anything else under a key ending in `.lua`."""
    if isinstance(node, dict):
        for key, item in node.items():
            path = f"{where}/{key}"
            if isinstance(item, str) and (key.startswith("resource.customizations.health.")
                                          or str(key).endswith(".lua")):
                yield path, item
            elif isinstance(item, str) and (key.startswith("resource.customizations.actions.")
                                            or key == "resource.customizations"):
                yield from lua_snippets(yaml.safe_load(item), path)
            else:
                yield from lua_snippets(item, path)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from lua_snippets(item, f"{where}[{index}]")


def test_the_harness_opens_only_what_argo_cd_opens() -> None:
    """Without this, a script using string.find would pass here and fail in Argo CD."""
    assert run("return {status = type(string) .. type(math) .. type(io), message = type(pairs)}", {}) == {
        "status": "nilnilnil", "message": "function"}
    with pytest.raises(lua51.LuaError):
        run('return {status = string.upper("healthy")}', {})
    assert sandbox().eval("_VERSION") == "Lua 5.1"


def test_the_application_check_is_upstreams_plus_guards() -> None:
    script = application_check()
    body = UPSTREAM.removesuffix("return hs\n")
    assert script.startswith(body), "Argo CD's snippet must stay verbatim at the top"
    assert script.rstrip().endswith("return hs")
    assert len(script) > len(UPSTREAM) + 200, "the guards are missing"


def test_every_lua_script_in_the_values_loads() -> None:
    found = dict(lua_snippets(values()))
    assert f"/configs/cm/{APPLICATION_KEY}" in found, found.keys()
    for path, script in found.items():
        try:
            loads(script)
        except AssertionError as error:
            raise AssertionError(f"{path} is not valid Lua 5.1: {error}") from None


def test_a_script_that_does_not_compile_is_caught() -> None:
    with pytest.raises(AssertionError, match="end"):
        loads(application_check().replace("return hs", "if true then return hs"))
    snippets = dict(lua_snippets({"configs": {"cm": {
        "resource.customizations.actions.apps_Deployment":
            "discovery.lua: |\n  return {}\ndefinitions:\n- name: x\n  action.lua: return obj\n",
        "resource.customizations": "example.com/Thing:\n  health.lua: return {}\n"}}}))
    assert sorted(snippets) == [
        "/configs/cm/resource.customizations.actions.apps_Deployment/definitions[0]/action.lua",
        "/configs/cm/resource.customizations.actions.apps_Deployment/discovery.lua",
        "/configs/cm/resource.customizations/example.com/Thing/health.lua",
    ]


# --------------------------------------------------------------------------------------------------------
# Fixtures: child Applications as the root's controller sees them


SOURCE: dict[str, Any] = {
    "repoURL": "https://github.com/example/nim-gitops.git",
    "targetRevision": "main",
    "path": "charts/nim-llm",
    "helm": {
        "releaseName": "llama-3-1-70b-instruct",
        "valuesObject": {
            "image": {"repository": "nvcr.io/nim/meta/llama-3.1-70b-instruct", "tag": "1.3.3", "digest": ""},
            "startupProbe": {"initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 357},
            "cacheWarmup": {"enabled": False},
        },
    },
}
SYNCED = "6b1f0c4e2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
NEWER = "9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"


def healthy() -> dict[str, Any]:
    """A reconciled child Application: compared against its current spec, synced, healthy."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "llama-3-1-70b-instruct", "namespace": "argocd",
                     "annotations": {"argocd.argoproj.io/sync-wave": "0"}},
        "spec": {"project": "prod", "source": copy.deepcopy(SOURCE),
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "nim"}},
        "status": {
            "health": {"status": "Healthy", "lastTransitionTime": "2026-09-01T10:00:00Z"},
            "sync": {"status": "Synced", "revision": SYNCED,
                     "comparedTo": {"source": copy.deepcopy(SOURCE),
                                    "destination": {"server": "https://kubernetes.default.svc",
                                                    "namespace": "nim"}}},
            "reconciledAt": "2026-09-01T10:05:00Z",
            "operationState": {
                "phase": "Succeeded", "message": "successfully synced (all tasks run)",
                "startedAt": "2026-09-01T09:40:00Z", "finishedAt": "2026-09-01T09:40:03Z",
                "operation": {"sync": {"revision": SYNCED}, "initiatedBy": {"automated": True}},
                "syncResult": {"revision": SYNCED, "source": copy.deepcopy(SOURCE)},
            },
        },
    }


def change(app: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Sets (or, with value None, deletes) the field at a dotted path, e.g. 'status.operationState.phase'."""
    *parents, last = path.split(".")
    node = app
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return app


def changed(*changes: tuple[str, Any]) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        app = healthy()
        for path, value in changes:
            change(app, path, value)
        return app
    return build


def operation(phase: str, message: str | None, **status: Any) -> Callable[[], dict[str, Any]]:
    """The child with its last (or current) sync operation in `phase`."""
    def build() -> dict[str, Any]:
        app = healthy()
        state = app["status"]["operationState"]
        state["phase"] = phase
        if message is None:
            state.pop("message")
        else:
            state["message"] = message
        if phase in ("Running", "Terminating"):
            app["operation"] = copy.deepcopy(state["operation"])
            if phase == "Running":
                state.pop("finishedAt")
        for path, value in status.items():
            change(app, path.replace("__", "."), value)
        return app
    return build


def multi_source(old_second_revision: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        app = healthy()
        chart = {"repoURL": "https://helm.ngc.nvidia.com/nvidia", "chart": "nim-llm",
                 "targetRevision": "1.7.0"}
        app["spec"].pop("source")
        app["spec"]["sources"] = [copy.deepcopy(SOURCE), chart]
        compared = app["status"]["sync"]["comparedTo"]
        compared.pop("source")
        compared["sources"] = [copy.deepcopy(SOURCE), dict(chart, targetRevision=old_second_revision)]
        return app
    return build


def hydrated() -> dict[str, Any]:
    app = healthy()
    app["spec"].pop("source")
    app["spec"]["sourceHydrator"] = {
        "drySource": {"repoURL": SOURCE["repoURL"], "path": "x", "targetRevision": "main"},
        "syncSource": {"targetBranch": "env/prod", "path": "x"},
    }
    return app


def stale_values() -> dict[str, Any]:
    """The root just applied new values for the model; the child has not compared them yet."""
    app = healthy()
    app["spec"]["source"]["helm"]["valuesObject"]["image"]["tag"] = "1.3.4"
    return app


RUNNING = "waiting for healthy state of apps/StatefulSet/llama-3-1-70b-instruct"
RETRYING = "one or more objects failed to apply. Retrying attempt #1 at 3:04PM."
FAILED = ('one or more objects failed to apply, reason: StatefulSet.apps "llama-3-1-70b-instruct" is '
          "invalid (retried 5 times).")
ERROR = "Failed to load application project: not found"
STALE = "spec.source changed since the last comparison, status not recomputed yet"
Build = Callable[[], dict[str, Any]]


def annotated(value: str, build: Build = healthy) -> Build:
    """The child with argocd.argoproj.io/refresh set (a key with dots, which change() would split)."""
    def annotate() -> dict[str, Any]:
        app = build()
        app["metadata"]["annotations"]["argocd.argoproj.io/refresh"] = value
        return app
    return annotate


failed = operation("Failed", FAILED, status__sync__status="OutOfSync")

# name: (child Application, expected status, expected message)
FIXTURES: dict[str, tuple[Build, str, str]] = {
    # Upstream's verdicts, kept.
    "healthy": (healthy, "Healthy", ""),
    "healthy with a health message": (
        changed(("status.health.message", "all replicas ready")), "Healthy", "all replicas ready"),
    "degraded": (
        changed(("status.health.status", "Degraded"), ("status.health.message", "Back-off pulling image")),
        "Degraded", "Back-off pulling image"),
    "progressing": (
        changed(("status.health.status", "Progressing"),
                ("status.health.message", "Waiting for 1 pods to be ready")),
        "Progressing", "Waiting for 1 pods to be ready"),
    "suspended": (changed(("status.health.status", "Suspended")), "Suspended", ""),
    "missing status": (changed(("status", None)), "Progressing", ""),
    "missing health": (changed(("status.health", None)), "Progressing", ""),
    "missing health, failed sync": (
        operation("Failed", FAILED, status__health=None, status__sync__status="OutOfSync"),
        "Progressing", ""),
    # Guard 1: the child's own sync is in flight, or requested.
    "running operation while health says Healthy": (
        operation("Running", RUNNING), "Progressing", f"sync operation Running: {RUNNING}"),
    "running operation while health says Degraded": (
        operation("Running", RUNNING, status__health__status="Degraded"),
        "Progressing", f"sync operation Running: {RUNNING}"),
    "failed attempt waiting for its retry": (
        operation("Running", RETRYING, status__operationState__finishedAt="2026-09-01T15:03:50Z"),
        "Progressing", f"sync operation Running: {RETRYING}"),
    "operation terminating on the sync timeout": (
        operation("Terminating", "operation is terminating due to timeout"),
        "Progressing", "sync operation Terminating: operation is terminating due to timeout"),
    "running operation without a message": (
        operation("Running", None), "Progressing", "sync operation Running"),
    "operation requested, not started": (
        changed(("operation", {"sync": {"revision": NEWER}})), "Progressing", "sync operation requested"),
    # Guard 2: a refresh was asked for and the status is not recomputed yet.
    "refresh annotation present": (
        annotated("normal"), "Progressing", "refresh requested (normal), status not recomputed yet"),
    "hard refresh annotation on a failed sync": (
        annotated("hard", failed), "Progressing", "refresh requested (hard), status not recomputed yet"),
    # Guard 3: the spec changed since the last comparison (the target differs from the compared one).
    "new targetRevision not compared yet": (
        changed(("spec.source.targetRevision", "v2")), "Progressing", STALE),
    "new model values not compared yet": (stale_values, "Progressing", STALE),
    "a values key removed, not compared yet": (
        changed(("spec.source.helm.valuesObject.cacheWarmup", {})), "Progressing", STALE),
    "never compared": (changed(("status.sync.comparedTo", None)), "Progressing", STALE),
    "multiple sources, one not compared yet": (multi_source("1.6.0"), "Progressing", STALE),
    "a newer commit that did not touch the child": (changed(("status.sync.revision", NEWER)), "Healthy", ""),
    "zero values Go leaves out of comparedTo": (
        changed(("spec.source.helm.skipCrds", False), ("spec.source.directory", {}),
                ("status.sync.comparedTo.source.ref", "")),
        "Healthy", ""),
    "multiple sources, all compared": (multi_source("1.7.0"), "Healthy", ""),
    "source hydrator (no spec.source)": (hydrated, "Healthy", ""),
    # Guard 4: the child's last sync failed and it is not in sync with Git.
    "failed operation": (failed, "Degraded", f"sync operation Failed: {FAILED}"),
    "errored operation": (
        operation("Error", ERROR, status__sync__status="Unknown"),
        "Degraded", f"sync operation Error: {ERROR}"),
    "failed operation without a message": (
        operation("Failed", None, status__sync__status="OutOfSync"), "Degraded", "sync operation Failed"),
    "failed operation, since synced by hand": (operation("Failed", FAILED), "Healthy", ""),
    "failed operation on a spec since changed": (
        operation("Failed", FAILED, status__sync__status="OutOfSync", spec__source__targetRevision="v2"),
        "Progressing", STALE),
}


@pytest.mark.parametrize("name", FIXTURES)
def test_the_application_health_check(name: str) -> None:
    build, status, message = FIXTURES[name]
    result = run(application_check(), build())
    assert result == {"status": status, "message": message}
    assert result["status"] in HEALTH_CODES


# The fixtures where a guard overrides the verdict upstream's snippet reads from status.health.
GUARDED = {
    "running operation while health says Healthy", "running operation while health says Degraded",
    "failed attempt waiting for its retry", "operation terminating on the sync timeout",
    "running operation without a message", "operation requested, not started",
    "refresh annotation present", "hard refresh annotation on a failed sync",
    "new targetRevision not compared yet", "new model values not compared yet",
    "a values key removed, not compared yet", "never compared", "multiple sources, one not compared yet",
    "failed operation", "errored operation", "failed operation without a message",
    "failed operation on a spec since changed",
}


@pytest.mark.parametrize("name", FIXTURES)
def test_the_guards_change_only_the_verdicts_they_are_for(name: str) -> None:
    """Upstream's snippet alone lets every guarded child through (or, running, fails it); everywhere else
    the guarded check says exactly what upstream's does."""
    build, _, _ = FIXTURES[name]
    upstream = run(UPSTREAM, build())
    ours = run(application_check(), build())
    if name in GUARDED:
        assert ours != upstream
        assert upstream["status"] in ({"Degraded"} if "Degraded" in name else {"Healthy"}), upstream
    else:
        assert ours == upstream


def test_guarded_names_are_fixtures() -> None:
    assert GUARDED <= set(FIXTURES)


def test_the_fixtures_do_not_share_state() -> None:
    first = healthy()
    first["spec"]["source"]["helm"]["valuesObject"]["image"]["tag"] = "x"
    compared = healthy()["status"]["sync"]["comparedTo"]["source"]
    assert compared["helm"]["valuesObject"]["image"]["tag"] == "1.3.3"
    assert SOURCE["helm"]["valuesObject"]["image"]["tag"] == "1.3.3"
