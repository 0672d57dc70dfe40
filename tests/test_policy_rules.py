"""validate's serving-safety policy, rule by rule, on hand-built manifests (test_validate.py runs it on trees)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from nimgen.model import Environment, Ref
from nimgen.validation import policy
from nimgen.validation.findings import Finding
from nimgen.validation.manifests import Applied

ENV = cast(Environment, SimpleNamespace(name="dev"))  # the rules read only the environment's name


def container(name: str = "app", **fields: Any) -> dict[str, Any]:
    base = {"name": name, "image": "example.com/app:1.2.3",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
            "readinessProbe": {"httpGet": {"port": 8000}}, "livenessProbe": {"httpGet": {"port": 8000}}}
    return {**base, **fields}


def owner(kind: str = "Deployment", containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    pod = {"securityContext": {"runAsNonRoot": True}, "containers": containers or [container()], **spec}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "nim"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": pod}}}


def check(*objects: dict[str, Any], valid: bool = True) -> list[Finding]:
    applied = [Applied(o, "web", "chart") for o in objects]
    return policy.check(ENV, applied if valid else [], applied)


def found(*objects: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((f.check, f.path, f.message) for f in check(*objects))


def test_a_well_formed_workload_is_clean() -> None:
    assert check(owner()) == []


# ------------------------------------------------------------------ pinned images


@pytest.mark.parametrize("image", ["example.com/app:1.2.3", "example.com:5000/app:1.2.3", "app:1",
                                   "example.com/app@sha256:" + "a" * 64, "example.com/app:latest@sha256:" + "b" * 64])
def test_pinned_images(image: str) -> None:
    assert check(owner(containers=[container(image=image)])) == []


@pytest.mark.parametrize("image", ["example.com/app", "example.com/app:latest", "example.com:5000/app", "app", ""])
def test_unpinned_images(image: str) -> None:
    [finding] = check(owner(containers=[container(image=image)]))
    assert (finding.check, finding.path, finding.message) == (
        "policy/pinned-image", "spec.template.spec.containers[0].image", f"image {image!r} is not pinned to a version")
    assert finding.hint == "use an exact tag (e.g. :1.0.3) or a digest (@sha256:...)"
    assert (finding.environment, finding.application, finding.obj, finding.severity) == (
        "dev", "web", "Deployment nim/web", "error")


def test_init_containers_are_checked_too() -> None:
    assert found(owner(initContainers=[container("init", image="busybox")])) == [
        ("policy/pinned-image", "spec.template.spec.initContainers[0].image", "image 'busybox' is not pinned to a version")]


# ------------------------------------------------------------------ resources


@pytest.mark.parametrize(("resources", "missing"), [
    ({}, "requests.cpu, requests.memory, limits.memory"),
    ({"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}, "requests.memory"),
    ({"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}, "requests.cpu"),
    ({"requests": {"cpu": "1", "memory": "1Gi"}}, "limits.memory"),
    ({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1"}}, "limits.memory"),
])
def test_missing_resources(resources: dict[str, Any], missing: str) -> None:
    [finding] = check(owner(containers=[container(resources=resources)]))
    assert (finding.check, finding.path, finding.message) == (
        "policy/resources", "spec.template.spec.containers[0].resources", f"container 'app' sets no {missing}")
    assert finding.hint.startswith("set CPU and memory requests and a memory limit")


def test_container_without_resources_key() -> None:
    bare = container()
    del bare["resources"]
    assert [f.message for f in check(owner(containers=[bare]))] == [
        "container 'app' sets no requests.cpu, requests.memory, limits.memory"]


# ------------------------------------------------------------------ probes


@pytest.mark.parametrize(("drop", "missing"), [
    (("readinessProbe",), "readinessProbe"), (("livenessProbe",), "livenessProbe"),
    (("readinessProbe", "livenessProbe"), "readinessProbe or livenessProbe")])
@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_long_running_servers_need_probes(kind: str, drop: tuple[str, ...], missing: str) -> None:
    server = {k: v for k, v in container().items() if k not in drop}
    [finding] = check(owner(kind, containers=[container("sidecar"), server]))
    assert (finding.check, finding.path, finding.message) == (
        "policy/probes", "spec.template.spec.containers[1]", f"container 'app' has no {missing}")
    assert finding.hint.startswith("a server without probes gets traffic before it is ready")


def test_jobs_and_init_containers_need_no_probes() -> None:
    unprobed = {k: v for k, v in container().items() if not k.endswith("Probe")}
    assert check(owner("Job", containers=[unprobed])) == []
    assert check(owner(initContainers=[dict(unprobed, name="init")])) == []


# ------------------------------------------------------------------ non-root


@pytest.mark.parametrize(("pod_context", "context"), [
    ({"runAsNonRoot": True}, {}),
    ({"runAsUser": 1000}, {}),
    ({}, {"runAsNonRoot": True}),
    ({}, {"runAsUser": 1000}),
    ({"runAsUser": 0}, {"runAsUser": 1000}),  # the container's setting wins
])
def test_non_root(pod_context: dict[str, Any], context: dict[str, Any]) -> None:
    assert check(owner(containers=[container(securityContext=context)], securityContext=pod_context)) == []


@pytest.mark.parametrize(("pod_context", "context"), [
    ({}, {}),
    ({"runAsNonRoot": False}, {}),
    ({"runAsNonRoot": "true"}, {}),  # only a real boolean counts
    ({"runAsUser": 0}, {}),
    ({"runAsNonRoot": True}, {"runAsNonRoot": False}),  # a container may undo the pod's setting
    ({"runAsNonRoot": True}, {"runAsUser": 0}),
    ({"runAsUser": 1000}, {"runAsUser": 0}),
    ({}, {"runAsUser": 0, "runAsNonRoot": True}),
])
def test_may_run_as_root(pod_context: dict[str, Any], context: dict[str, Any]) -> None:
    [finding] = check(owner(containers=[container(securityContext=context)], securityContext=pod_context))
    assert (finding.check, finding.path, finding.message) == (
        "policy/non-root", "spec.template.spec.containers[0].securityContext", "container 'app' may run as root")
    assert finding.hint == "set runAsNonRoot: true (and a runAsUser) in the pod's securityContext"


def test_non_root_without_any_security_context() -> None:
    workload = owner()
    del workload["spec"]["template"]["spec"]["securityContext"]
    assert [f.check for f in check(workload)] == ["policy/non-root"]


# ------------------------------------------------------------------ secrets


def secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "nim"}, **fields}


@pytest.mark.parametrize("values", [{"data": {"k": "dmFsdWU="}}, {"stringData": {"k": "value"}}])
def test_secret_with_values(values: dict[str, Any]) -> None:
    [finding] = check(secret(**values))
    assert (finding.check, finding.path, finding.message) == (
        "policy/no-plaintext-secret", "data", "a Secret with its values would be committed to Git")
    assert finding.hint.startswith("reference secrets (an existing Secret, an ExternalSecret)")


def test_empty_secret_and_lookalikes_are_not_plaintext() -> None:
    assert check(secret()) == [] and check(secret(data={})) == []
    assert check({**secret(data={"k": "dmFsdWU="}), "apiVersion": "example.com/v1"}) == []


def test_credential_inside_a_manifest() -> None:
    key = "nvapi-" + "a1B2" * 16
    leaky = owner(containers=[container(env=[{"name": "NGC_API_KEY", "value": key}])])
    [finding] = check(leaky)
    assert (finding.check, finding.path, finding.message) == (
        "policy/no-plaintext-secret", "spec.template.spec.containers[0].env[0].value", "an NGC API key is in the manifest")
    assert finding.hint.startswith("move it to a Secret created outside Git")


def test_secret_rule_checks_manifests_that_failed_their_schema() -> None:
    key = "nvapi-" + "a1B2" * 16
    leaky = owner(containers=[container(image="busybox", env=[{"name": "NGC_API_KEY", "value": key}])])
    # The pod rules read only valid manifests; a secret is committed all the same.
    assert [f.check for f in check(leaky, valid=False)] == ["policy/no-plaintext-secret"]
    assert sorted(f.check for f in check(leaky)) == ["policy/no-plaintext-secret", "policy/pinned-image"]


def test_a_pod_rule_tripping_over_a_malformed_pod_is_a_finding() -> None:
    workload = owner(containers=[container(resources={"requests": 5, "limits": {"memory": "1Gi"}})])
    [finding] = check(workload)
    assert finding.check == "policy/resources" and finding.message.startswith("check could not finish: TypeError")


def test_every_pod_rule_runs_on_every_pod() -> None:
    bad = {"name": "app", "image": "busybox"}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "nim"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [bad]}}}}}}
    assert found(owner(containers=[bad], securityContext={}), cron) == [
        ("policy/non-root", "spec.jobTemplate.spec.template.spec.containers[0].securityContext",
         "container 'app' may run as root"),
        ("policy/non-root", "spec.template.spec.containers[0].securityContext", "container 'app' may run as root"),
        ("policy/pinned-image", "spec.jobTemplate.spec.template.spec.containers[0].image",
         "image 'busybox' is not pinned to a version"),
        ("policy/pinned-image", "spec.template.spec.containers[0].image", "image 'busybox' is not pinned to a version"),
        ("policy/probes", "spec.template.spec.containers[0]", "container 'app' has no readinessProbe or livenessProbe"),
        ("policy/resources", "spec.jobTemplate.spec.template.spec.containers[0].resources",
         "container 'app' sets no requests.cpu, requests.memory, limits.memory"),
        ("policy/resources", "spec.template.spec.containers[0].resources",
         "container 'app' sets no requests.cpu, requests.memory, limits.memory"),
    ]


def test_a_container_without_an_image_is_not_pinned() -> None:
    bare = {key: value for key, value in container().items() if key != "image"}
    [finding] = check(owner(containers=[bare]))
    assert (finding.check, finding.message) == ("policy/pinned-image", "image '' is not pinned to a version")


@pytest.mark.parametrize("where", ["pod", "container"])
def test_any_user_id_above_zero_is_not_root(where: str) -> None:
    """runAsUser: 1 is a non-root user like any other id above 0."""
    if where == "pod":
        workload = owner(securityContext={"runAsUser": 1})
    else:
        workload = owner(securityContext={}, containers=[container(securityContext={"runAsUser": 1})])
    assert check(workload) == []
    root = owner(securityContext={}, containers=[container(securityContext={"runAsUser": 0})])
    [finding] = check(root)
    assert (finding.check, finding.path) == ("policy/non-root", "spec.template.spec.containers[0].securityContext")


def test_init_containers_need_no_probes_but_the_containers_after_them_do() -> None:
    init = container("init")
    unprobed = {key: value for key, value in container("server").items() if not key.endswith("Probe")}
    workload = owner(containers=[unprobed], initContainers=[init, container("init-2")])
    assert found(workload) == [("policy/probes", "spec.template.spec.containers[0]",
                                "container 'server' has no readinessProbe or livenessProbe")]


def test_a_rule_tripping_over_a_malformed_manifest_is_a_finding_named_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container that is not a mapping trips every pod rule; each says so under its own name, for its
    environment, and the others still run."""
    findings = check(owner(containers=["not-a-container"]))  # type: ignore[list-item]
    assert sorted((f.check, f.environment) for f in findings) == [
        ("policy/non-root", "dev"), ("policy/pinned", "dev"), ("policy/probes", "dev"), ("policy/resources", "dev")]
    assert all(f.message.startswith("check could not finish: AttributeError") for f in findings)
    # A template that is not a mapping trips the pod search itself.
    broken = owner()
    broken["spec"]["template"] = ["not", "a", "template"]
    assert [(f.check, f.environment) for f in check(broken)] == [("policy", "dev")]

    def trips(_obj: object) -> object:
        raise TypeError("unexpected shape")

    monkeypatch.setattr(policy, "find_secrets", trips)
    leaky = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"password": "hunter2hunter2"}}
    assert [(f.check, f.environment) for f in check(leaky, valid=False)] == [("policy/no-plaintext-secret", "dev")]


def test_a_secret_a_chart_generates_as_it_renders_is_no_secret_in_git() -> None:
    cert = {"apiVersion": "v1", "kind": "Secret", "data": {"tls.crt": "LS0t"},
            "metadata": {"name": "self-signed-cert-for-mutating-webhook", "namespace": "envoy-ai-gateway-system"}}
    generated = frozenset({("ai-gateway", "envoy-ai-gateway-system", "self-signed-cert-for-mutating-webhook")})

    def secret_findings(application: str, obj: dict[str, Any]) -> list[str]:
        applied = [Applied(obj, application, "chart")]
        return [f.message for f in policy.check(ENV, applied, applied, generated) if f.check == "policy/no-plaintext-secret"]

    assert secret_findings("ai-gateway", cert) == []
    # The same Secret from another Application, or another Secret of that one, is refused as ever.
    assert secret_findings("nim-gateway", cert) == ["a Secret with its values would be committed to Git"]
    renamed = {**cert, "metadata": {**cert["metadata"], "name": "api-keys"}}
    assert secret_findings("ai-gateway", renamed) == ["a Secret with its values would be committed to Git"]



# ------------------------------------------------------------------ waivers


def test_a_waived_rule_is_a_notice_with_its_reason_for_that_container_only() -> None:
    plugin = container("plugin", securityContext={"runAsUser": 0})
    other = container("other")
    del plugin["readinessProbe"], plugin["livenessProbe"], other["livenessProbe"]
    daemon = owner("DaemonSet", [plugin, other])
    waived = {("web", "non-root", Ref("DaemonSet", "nim", "web"), "plugin"): "it must"}
    found = policy.check(ENV, [Applied(daemon, "web", "chart")], [], waived=waived)
    assert sorted((f.severity, f.check, f.message) for f in found) == [
        ("error", "policy/probes", "container 'other' has no livenessProbe"),
        ("error", "policy/probes", "container 'plugin' has no readinessProbe or livenessProbe"),
        ("notice", "policy/non-root", "container 'plugin' may run as root (waived: it must)")]
    # Another Application, workload or rule is not waived.
    for key in (("other", "non-root", Ref("DaemonSet", "nim", "web"), "plugin"),
                ("web", "non-root", Ref("Deployment", "nim", "web"), "plugin"),
                ("web", "probes", Ref("DaemonSet", "nim", "web"), "plugin")):
        found = policy.check(ENV, [Applied(daemon, "web", "chart")], [], waived={key: "it must"})
        assert ("error", "container 'plugin' may run as root") in [(f.severity, f.message) for f in found]


def test_a_waiver_names_init_containers_and_containers_apart() -> None:
    pod = owner(containers=[container("main")], initContainers=[container("main", securityContext={"runAsUser": 0})])
    waived = {("web", "non-root", Ref("Deployment", "nim", "web"), "main"): "mounts"}
    [finding] = policy.check(ENV, [Applied(pod, "web", "chart")], [], waived=waived)
    assert (finding.severity, finding.path) == ("notice", "spec.template.spec.initContainers[0].securityContext")
    [parsed] = policy.pods([Applied(pod, "web", "chart")])
    assert policy._container(parsed, "spec.template.spec.containers[0].image") == "main"
    assert policy._container(parsed, "spec.template.spec.containers[1]") == ""  # one past the last
    assert policy._container(parsed, "spec.template.spec.securityContext") == ""


def test_a_workload_named_only_by_generate_name_is_never_waived() -> None:
    job = owner("Job", [container("run", securityContext={"runAsUser": 0})])
    job["metadata"] = {"generateName": "web-", "namespace": "nim"}
    waived = {("web", "non-root", Ref("Job", "nim", "web-"), "run"): "no"}
    [finding] = policy.check(ENV, [Applied(job, "web", "chart")], [], waived=waived)
    assert (finding.severity, finding.message) == ("error", "container 'run' may run as root")
