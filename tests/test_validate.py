"""`nimgen validate` on committed trees: clean examples, then one broken thing at a time with its exact finding."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import run
from nimgen.yamlio import dump, dump_all, load_plain

Edit = Callable[[Path], None]



def validate(root: Path, schemas: Path, *args: str, env: str = "prod") -> Any:
    files = [] if env == "*" else [root / "environments" / f"{env}.yaml"]
    return run("validate", *files, "--schema-location", str(schemas), *args)


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = load_plain(path.read_text())
    change(document)
    path.write_text(dump(document))


def model_app(root: Path, name: str = "llama3-8b-instruct") -> Path:
    return root / "argocd/prod/apps/models" / f"{name}.yaml"


def values(app: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = app["spec"]["source"]["helm"]["valuesObject"]
    return result


def own(root: Path, relative: str, env: str = "prod") -> None:
    """Record a file in the environment's ownership record with its current hash, as a render would."""
    record = root / "argocd" / env / "generated-files.txt"
    digest = "sha256:" + hashlib.sha256((root / relative).read_bytes()).hexdigest()[:16]
    lines = [line for line in record.read_text().splitlines() if line.partition("  ")[0] != relative]
    record.write_text("\n".join([*lines, f"{relative}  {digest}"]) + "\n")


def add_manifests(root: Path, *objects: dict[str, Any]) -> None:
    """Manifests committed beside the Applications (the root Application applies them too), recorded as
    nimgen's so that only the check under test speaks (an unrecorded file is an ownership error)."""
    (root / "argocd/prod/apps/extra.yaml").write_text(dump_all(list(objects)))
    own(root, "argocd/prod/apps/extra.yaml")


def deployment(name: str = "probe", **pod: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "registry.example.com/app:1.2.3",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                 "livenessProbe": {"httpGet": {"path": "/", "port": 8080}}}
    container.update(pod.pop("container", {}))
    spec = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}, "containers": [container], **pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "nim"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def test_example_environments_are_clean(rendered_repo: Path, crd_schemas: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(rendered_repo)
    result = run("validate", "--schema-location", str(crd_schemas))
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    # The pinned upstream charts are not in the repository (charts/upstream/SOURCES.md): one notice each.
    assert summary.endswith(", 0 errors, 8 notices"), summary
    manifests, applications = (int(part.split()[0]) for part in summary.split(", ")[:2])
    # prod: 2 models, 14 platform (Open WebUI and the gateway's four included); dev: 1, 2
    assert applications == 19 and manifests > 40
    assert "not rendered offline: chart kube-prometheus-stack 79.5.0" in result.output


class Cases(dict[str, tuple[Edit, str]]):
    """Broken trees by name, each with the finding it must produce (shared by the validate test modules)."""

    def add(self, name: str, expected: str) -> Callable[[Edit], Edit]:
        """Decorator registering an edit that breaks a copy of the rendered repository."""
        def register(edit: Edit) -> Edit:
            self[name] = (edit, expected)
            return edit
        return register


def errors(root: Path, schemas: Path, *args: str) -> list[str]:
    """The error lines of a validate run that must fail (exit 1: neither a pass nor an internal error)."""
    result = validate(root, schemas, *args)
    assert result.exit_code == 1, result.output
    return [line for line in result.output.splitlines() if line.startswith("error:")]


BROKEN = Cases()
case = BROKEN.add


@case("schema", "error: prod/prod-root Deployment nim/probe spec: [schema] Additional properties are not allowed "
                "('replica' was unexpected)")
def _schema(root: Path) -> None:
    broken = deployment()
    broken["spec"]["replica"] = 2
    add_manifests(root, broken)


@case("application-schema", "error: prod/prod-root Application argocd/llama3-8b-instruct spec: [schema] Additional "
                            "properties are not allowed ('sourcce' was unexpected)")
def _application_schema(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: app["spec"].update(sourcce={}))


@case("service-selector", "error: prod/prod-root Service nim/orphan spec.selector: [service-selector] selects no pod: no "
                          "pod template in namespace nim has labels {'app': 'nobody'}")
def _service(root: Path) -> None:
    add_manifests(root, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "orphan", "namespace": "nim"},
                         "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]}})


@case("claim", "error: prod/llama3-8b-instruct StatefulSet nim/llama3-8b-instruct "
               "spec.template.spec.volumes[1].persistentVolumeClaim.claimName: [claim] mounts claim 'no-such-claim', "
               "which no manifest of the environment creates in namespace nim")
def _claim(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: values(app)["cache"].update(existingClaim="no-such-claim"))


@case("scale-target", "error: prod/prod-root HorizontalPodAutoscaler nim/ghost spec.scaleTargetRef: [scale-target] scales "
                      "Deployment nim/ghost, which the environment does not create")
def _scale_target(root: Path) -> None:
    add_manifests(root, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "ghost", "namespace": "nim"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ghost"},
                                  "minReplicas": 1, "maxReplicas": 2}})


@case("servicemonitor", "error: prod/prod-root ServiceMonitor nim/wrong-port spec.endpoints[0].port: [servicemonitor] port "
                        "'metrics' is not a named port of the Services it selects")
def _service_monitor(root: Path) -> None:
    add_manifests(root, {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                         "metadata": {"name": "wrong-port", "namespace": "nim"},
                         "spec": {"selector": {"matchLabels": {"app.kubernetes.io/instance": "llama3-8b-instruct"}},
                                  "endpoints": [{"port": "metrics"}]}})


@case("project-namespace", "error: prod/prod-root Application argocd/llama3-8b-instruct spec.destination.namespace: "
                           "[project] deploys to namespace 'elsewhere', which AppProject prod does not admit")
def _project_namespace(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: app["spec"]["destination"].update(namespace="elsewhere"))


@case("project-kind", "error: prod/llama3-8b-instruct HorizontalPodAutoscaler nim/llama3-8b-instruct: [project] "
                      "autoscaling/HorizontalPodAutoscaler is not in AppProject prod's namespaceResourceWhitelist")
def _project_kind(root: Path) -> None:
    def drop_hpa(project: dict[str, Any]) -> None:
        kinds = project["spec"]["namespaceResourceWhitelist"]
        project["spec"]["namespaceResourceWhitelist"] = [k for k in kinds if k["kind"] != "HorizontalPodAutoscaler"]
    edit_yaml(root / "argocd/prod/apps/project.yaml", drop_hpa)


@case("nodepool", "error: prod/llama3-8b-instruct StatefulSet nim/llama3-8b-instruct spec.template.spec: [nodepool] its "
                  "pods fit no NodePool")
def _node_pool(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: values(app).update(nodePool="nonexistent"))


@case("sync-wave", "error: prod/llama3-8b-instruct StatefulSet nim/llama3-8b-instruct: [sync-wave] Application "
                   "llama3-8b-instruct (wave 0) needs a NodePool from gpu-nodepools (wave 5), which does not sync "
                   "before it")
def _sync_wave(root: Path) -> None:
    edit_yaml(root / "argocd/prod/apps/platform/gpu-nodepools.yaml",
              lambda app: app["metadata"]["annotations"].update({"argocd.argoproj.io/sync-wave": "5"}))


@case("cel", "error: prod/prod-root NodePool broken spec.template.spec.requirements: [cel] requirements with operator 'In' "
             "must have a value defined")
def _cel(root: Path) -> None:
    add_manifests(root, {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "broken"},
                         "spec": {"template": {"spec": {
                             "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"},
                             "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                                               "values": []}]}}}})


@case("pinned-image", "error: prod/prod-root Deployment nim/probe spec.template.spec.containers[0].image: "
                      "[policy/pinned-image] image 'registry.example.com/app' is not pinned to a version")
def _pinned(root: Path) -> None:
    # The model chart itself refuses a floating NIM tag; anything else applied must be pinned too.
    add_manifests(root, deployment(container={"image": "registry.example.com/app"}))


@case("resources", "error: prod/prod-root Deployment nim/probe spec.template.spec.containers[0].resources: "
                   "[policy/resources] container 'app' sets no requests.cpu, limits.memory")
def _resources(root: Path) -> None:
    add_manifests(root, deployment(container={"resources": {"requests": {"memory": "64Mi"}}}))


@case("probes", "error: prod/prod-root Deployment nim/probe spec.template.spec.containers[0]: [policy/probes] container "
                "'app' has no livenessProbe")
def _probes(root: Path) -> None:
    broken = deployment()
    del broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    add_manifests(root, broken)


@case("non-root", "error: prod/prod-root Deployment nim/probe spec.template.spec.containers[0].securityContext: "
                  "[policy/non-root] container 'app' may run as root")
def _non_root(root: Path) -> None:
    add_manifests(root, deployment(securityContext={}))


@case("secret-in-values", "error: prod/prod-root Application argocd/llama3-8b-instruct "
                          "spec.source.helm.valuesObject.env.NGC_TOKEN_COPY: [policy/no-plaintext-secret] an NGC API "
                          "key is in the manifest")
def _secret_in_values(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: values(app)["env"].update(NGC_TOKEN_COPY="nvapi-" + "x" * 60))


@case("secret-object", "error: prod/prod-root Secret nim/ngc data: [policy/no-plaintext-secret] a Secret with its values "
                       "would be committed to Git")
def _secret_object(root: Path) -> None:
    add_manifests(root, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ngc", "namespace": "nim"},
                         "data": {"NGC_API_KEY": "bnZhcGktc2VjcmV0"}})


@case("missing-schema", "error: prod/prod-root Widget nim/w: [schema] no schema for Widget (example.com/v1); looked in:")
def _missing_schema(root: Path) -> None:
    add_manifests(root, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "nim"}})


@case("chart-failure", "error: prod/llama3-8b-instruct Application argocd/llama3-8b-instruct spec.source: [render] "
                       "helm template failed: values don't meet the specifications of the schema")
def _chart_failure(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: values(app).update(gpu={"count": "two"}))


@case("service-target-port", "error: prod/prod-root Service nim/by-port spec.ports[0].targetPort: [service-selector] "
                             "targetPort 'grpc' is no container port of the pods it selects")
def _service_port(root: Path) -> None:
    add_manifests(root, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "by-port", "namespace": "nim"},
                         "spec": {"selector": {"app.kubernetes.io/instance": "llama3-8b-instruct"},
                                  "ports": [{"port": 80, "targetPort": "grpc"}]}})


@case("servicemonitor-selector", "error: prod/prod-root ServiceMonitor nim/nothing spec.selector: [servicemonitor] "
                                 "selects no Service")
def _monitor_selector(root: Path) -> None:
    add_manifests(root, {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                         "metadata": {"name": "nothing", "namespace": "nim"},
                         "spec": {"selector": {"matchLabels": {"app": "nobody"}}, "endpoints": [{"port": "http"}]}})


@case("project-repo", "error: prod/prod-root Application argocd/llama3-8b-instruct spec.source.repoURL: [project] "
                      "source https://github.com/someone-else/charts.git is not in AppProject prod's sourceRepos")
def _project_repo(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: app["spec"]["source"].update(repoURL="https://github.com/someone-else/charts.git"))


@case("project-cluster-kind", "error: prod/model-storage StorageClass nimgen-efs: [project] cluster-scoped "
                              "storage.k8s.io/StorageClass is not in AppProject prod-platform's "
                              "clusterResourceWhitelist")
def _project_cluster_kind(root: Path) -> None:
    def drop(project: dict[str, Any]) -> None:
        kinds = project["spec"]["clusterResourceWhitelist"]
        project["spec"]["clusterResourceWhitelist"] = [k for k in kinds if k["kind"] != "StorageClass"]
    edit_yaml(root / "argocd/prod/apps/platform/project.yaml", drop)


@case("claim-wave", "error: prod/llama3-8b-instruct StatefulSet nim/llama3-8b-instruct: [sync-wave] Application "
                    "llama3-8b-instruct (wave 0) needs a PersistentVolumeClaim from model-storage (wave 5), which does "
                    "not sync before it")
def _claim_wave(root: Path) -> None:
    edit_yaml(root / "argocd/prod/apps/platform/model-storage.yaml",
              lambda app: app["metadata"]["annotations"].update({"argocd.argoproj.io/sync-wave": "5"}))


@case("volume-mount", "error: prod/prod-root Deployment nim/probe spec.template.spec.containers[0].volumeMounts[0].name: "
                      "[claim] mounts volume 'cache', which is neither a volume of the pod nor a claim template")
def _volume_mount(root: Path) -> None:
    add_manifests(root, deployment(container={"volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}))


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_one_broken_thing(name: str, repo_copy: Path, crd_schemas: Path) -> None:
    edit, expected = BROKEN[name]
    edit(repo_copy)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert any(line.startswith(expected) for line in errors), "\n".join(errors)


def test_missing_schemas_can_be_ignored(repo_copy: Path, crd_schemas: Path) -> None:
    # A kind whose CRD the tree installs (kube-prometheus-stack) but whose schema the locations lack.
    add_manifests(repo_copy, {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
                              "metadata": {"name": "p", "namespace": "monitoring"}})
    assert "[schema] no schema for Prometheus" in validate(repo_copy, crd_schemas).output
    result = validate(repo_copy, crd_schemas, "--ignore-missing-schemas")
    assert result.exit_code == 0, result.output
    assert "notice: prod/prod-root Prometheus monitoring/p: [schema] no schema for Prometheus" in result.output


def test_json_and_junit_carry_the_same_findings(repo_copy: Path, crd_schemas: Path) -> None:
    broken = deployment(container={"image": "registry.example.com/app:latest"})
    orphan = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "orphan", "namespace": "nim"},
              "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]}}
    add_manifests(repo_copy, broken, orphan)
    as_json = validate(repo_copy, crd_schemas, "--output", "json")
    assert as_json.exit_code == 1
    document = json.loads(as_json.output)
    errors = [f for f in document["findings"] if f["severity"] == "error"]
    assert {f["check"] for f in errors} == {"policy/pinned-image", "service-selector"}
    assert document["summary"]["errors"] == len(errors) and document["summary"]["ok"] is False
    assert all(rule["reason"] for rule in document["unevaluatedCelRules"])
    junit = validate(repo_copy, crd_schemas, "--output", "junit")
    assert junit.exit_code == 1
    suites = ET.fromstring(junit.output)
    failures = [f for case in suites.iter("testcase") for f in case.findall("failure")]
    text = "\n".join(f.text or "" for f in failures)
    assert int(suites.get("failures", "0")) == len(errors)
    for finding in errors:
        assert finding["message"] in text
    cases = {case.get("name") for case in suites.iter("testcase")}
    # Every Application is a test case, the passing ones included.
    assert {"llama3-8b-instruct", "gpu-nodepools", "prod-root"} <= cases
