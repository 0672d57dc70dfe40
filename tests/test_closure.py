"""Bootstrap closure in `nimgen validate`: each class of "never becomes ready on an empty cluster", reproduced
on a copy of the committed prod tree, with its exact finding; the facts about terraform/ checked against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
import pytest
from conftest import PROJECT, example_environment
from helpers import VALID, write_env
from nimgen.components import registry
from nimgen.environment.load import load_environment
from nimgen.validation import closure
from nimgen.validation.manifests import Applied
from nimgen.validation.sources import AppResult
from test_validate import Cases, add_manifests, deployment, edit_yaml, model_app, validate, values

CLOSURE = Cases()
case = CLOSURE.add
PLATFORM = "argocd/prod/apps/platform"


def _wave(path: Path, wave: int) -> None:
    edit_yaml(path, lambda app: app["metadata"]["annotations"].update({"argocd.argoproj.io/sync-wave": str(wave)}))


@case("grafana-secret-too-late",
      "error: prod/kube-prometheus-stack Application argocd/kube-prometheus-stack spec.source.helm.valuesObject: "
      "[closure] needs Secret monitoring/grafana-admin, which platform-secrets (wave -10) creates no earlier than "
      "Application kube-prometheus-stack (wave -15)")
def _grafana_secret_too_late(root: Path) -> None:
    """Defect 2: Grafana's admin Secret arrives after the stack's wave, which then never becomes healthy."""
    _wave(root / PLATFORM / "platform-secrets.yaml", -10)


@case("default-storage-class",
      "error: prod/open-webui PersistentVolumeClaim open-webui/open-webui-data spec.storageClassName: [closure] claims a "
      "volume of the cluster's default StorageClass, which EKS clusters created on 1.30 or later do not have")
def _default_storage_class(root: Path) -> None:
    """Defect 3: a claim without a class stays Pending on a cluster with no default StorageClass."""
    edit_yaml(root / PLATFORM / "open-webui.yaml", lambda app: values(app)["persistence"].update(storageClassName=""))


@case("undeclared-secret",
      "error: prod/llama3-8b-instruct StatefulSet nim/llama3-8b-instruct "
      "spec.template.spec.containers[0].env[8].valueFrom.secretKeyRef.name: [closure] needs Secret nim/hf-token, which "
      "nothing creates: not the tree, not terraform/, not a declared prerequisite")
def _undeclared_secret(root: Path) -> None:
    edit_yaml(model_app(root), lambda app: values(app).update(
        secretEnv={"HF_TOKEN": {"secretName": "hf-token", "key": "token"}}))


@case("crd-too-late",
      "error: prod/llama3-8b-instruct ServiceMonitor nim/llama3-8b-instruct apiVersion: [closure] is a ServiceMonitor "
      "(monitoring.coreos.com/v1), whose CRD kube-prometheus-stack (wave 5) installs no earlier than Application "
      "llama3-8b-instruct (wave 0)")
def _crd_too_late(root: Path) -> None:
    _wave(root / PLATFORM / "kube-prometheus-stack.yaml", 5)


@case("no-crd",
      "error: prod/prod-root Widget nim/w apiVersion: [closure] is a Widget (example.com/v1), whose CRD nothing "
      "installs")
def _no_crd(root: Path) -> None:
    add_manifests(root, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "nim"}})


@case("no-namespace",
      "error: prod/prod-root Deployment elsewhere/probe metadata.namespace: [closure] needs Namespace elsewhere, which "
      "nothing creates")
def _no_namespace(root: Path) -> None:
    probe = deployment()
    probe["metadata"]["namespace"] = "elsewhere"
    add_manifests(root, probe)


@case("service-account-and-priority",
      "error: prod/prod-root Deployment nim/probe spec.template.spec.priorityClassName: [closure] needs PriorityClass "
      "gold, which nothing creates")
def _priority(root: Path) -> None:
    add_manifests(root, deployment(serviceAccountName="default", priorityClassName="gold"))


@case("configmap",
      "error: prod/prod-root Deployment nim/probe spec.template.spec.containers[0].envFrom[0].configMapRef.name: "
      "[closure] needs ConfigMap nim/settings, which nothing creates")
def _configmap(root: Path) -> None:
    add_manifests(root, deployment(container={"envFrom": [{"configMapRef": {"name": "settings"}},
                                                          {"secretRef": {"name": "maybe", "optional": True}}]}))


def test_an_application_that_only_creates_an_empty_namespace_is_flagged(repo_copy: Path, crd_schemas: Path) -> None:
    """Defect 5: gpu-nodepools renders only cluster-scoped objects but created namespace karpenter."""
    def back_to_karpenter(app: dict[str, Any]) -> None:
        app["spec"]["destination"]["namespace"] = "karpenter"
        app["spec"]["syncPolicy"]["syncOptions"].insert(0, "CreateNamespace=true")

    edit_yaml(repo_copy / PLATFORM / "gpu-nodepools.yaml", back_to_karpenter)
    output = validate(repo_copy, crd_schemas).output
    assert ("warning: prod/gpu-nodepools Application argocd/gpu-nodepools spec.destination.namespace: [closure] "
            "creates namespace karpenter (CreateNamespace=true) but puts none of its objects there") in output


@pytest.mark.parametrize("name", sorted(CLOSURE))
def test_each_class_is_caught(name: str, repo_copy: Path, crd_schemas: Path) -> None:
    edit, expected = CLOSURE[name]
    edit(repo_copy)
    result = validate(repo_copy, crd_schemas)
    assert result.exit_code == 1, result.output
    found = [line for line in result.output.splitlines() if line.startswith("error:") and "[closure]" in line]
    assert any(line.startswith(expected) for line in found), "\n".join(found)


def test_a_declared_prerequisite_resolves_the_reference(repo_copy: Path, crd_schemas: Path) -> None:
    _undeclared_secret(repo_copy)
    env_file = repo_copy / "environments" / "prod.yaml"
    env_file.write_text(env_file.read_text() + "prerequisites:\n  - {kind: Secret, namespace: nim, name: hf-token, "
                        "description: the platform team creates it from the Hugging Face vault}\n")
    result = validate(repo_copy, crd_schemas)
    assert "[closure]" not in result.output, result.output


def test_the_examples_need_nothing_undeclared(rendered_repo: Path, crd_schemas: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(rendered_repo)
    result = validate(rendered_repo, crd_schemas, env="*")
    assert "[closure]" not in result.output, result.output


def _objects(*objs: dict[str, Any], app: str = "a", wave: int = 0) -> tuple[list[Applied], list[AppResult]]:
    application = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                   "metadata": {"name": app, "namespace": "argocd",
                                "annotations": {"argocd.argoproj.io/sync-wave": str(wave)}},
                   "spec": {"destination": {"namespace": "nim"}, "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}}
    return [Applied(application, "root", "apps/a.yaml")], [AppResult(application, "apps/a.yaml",
                                                                      [Applied(o, app, "t.yaml") for o in objs])]


def test_units_same_application_orders_its_own_kinds(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, VALID + "    cache: {type: emptyDir}\n"), tmp_path)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "nim"}}
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "nim"},
             "spec": {"storageClassName": "nimgen-gp3"}}
    pod = deployment(imagePullSecrets=[{"name": "s"}])
    assert [f.message for f in closure.check(env, *_objects(secret, pod))] == []
    messages = [f.message for f in closure.check(env, *_objects(claim))]
    assert messages == [("needs StorageClass nimgen-gp3, which nothing creates: not the tree, not terraform/, not a "
                        "declared prerequisite")]
    # Built in, or made with every namespace: the default ServiceAccount, kube-root-ca.crt, system PriorityClasses.
    builtin = deployment(serviceAccountName="default", priorityClassName="system-node-critical",
                         volumes=[{"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}])
    assert closure.check(env, *_objects(builtin)) == []


def test_implied_prerequisites_of_dev_are_its_ngc_secrets() -> None:
    dev = example_environment("dev")
    implied = {str(p.ref) for component in registry.enabled(dev) for p in component.prerequisites(dev)}
    assert implied == {"Secret nim/ngc-api", "Secret nim/ngc-secret"}
    prod = example_environment("prod")  # every Secret of prod comes from Secrets Manager
    assert [p for component in registry.enabled(prod) for p in component.prerequisites(prod)] == []


def test_terraform_creates_what_closure_says_it_does() -> None:
    text = {path.name: path.read_text(encoding="utf-8") for path in (PROJECT / "terraform").glob("*.tf")}
    argocd_namespace = hcl2.loads(text["variables.tf"])["variable"]
    [default] = [v["argocd_namespace"]["default"] for v in argocd_namespace if "argocd_namespace" in v]
    default = default[0] if isinstance(default, list) else default  # older hcl2 releases wrap values in a list
    assert "create_namespace = true" in text["argocd.tf"] and "namespace        = var.argocd_namespace" in text["argocd.tf"]
    assert 'namespace       = "external-secrets"' in text["secrets.tf"] and "create_namespace = true" in text["secrets.tf"]
    assert {ref.name for ref in closure.TERRAFORM} == {str(default).strip('"'), "external-secrets"}
    assert "installCRDs = true" in text["secrets.tf"]  # external-secrets.io
    assert 'chart      = "karpenter-crd"' in text["karpenter.tf"]  # karpenter.sh, karpenter.k8s.aws
    assert 'chart            = "argo-cd"' in text["argocd.tf"]  # argoproj.io
    assert set(closure.TERRAFORM_CRD_GROUPS) == {"argoproj.io", "karpenter.sh", "karpenter.k8s.aws",
                                                 "external-secrets.io"}


def test_prerequisites_are_checked_and_listed_in_the_readme(tmp_path: Path) -> None:
    from helpers import run

    extra = ("prerequisites:\n  - {kind: StorageClass, name: io2-fast, description: created by the storage team}\n"
             "  - {kind: Secret, namespace: nim, name: hf-token, description: synced from the team vault}\n")
    result = run("render", write_env(tmp_path, VALID.replace("models:\n", extra + "models:\n")))
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "argocd" / "test" / "README.md").read_text()
    checklist = readme[readme.index("### Bootstrap checklist"):]
    assert "- `StorageClass io2-fast`: created by the storage team\n" in checklist
    assert "- `Secret nim/hf-token`: synced from the team vault\n" in checklist
    assert "- `Secret nim/ngc-api`: the NGC API key of the NIM pods" in checklist  # implied by ngc.apiKeySecret

    bad = ("prerequisites:\n  - {kind: StorageClass, namespace: nim, name: x, description: d}\n"
           "  - {kind: ConfigMap, name: y, description: d}\n")
    result = run("render", write_env(tmp_path, VALID.replace("models:\n", bad + "models:\n"), "bad.yaml"))
    assert result.exit_code == 1
    assert "$.prerequisites[0].namespace: a StorageClass is cluster-scoped: it has no namespace" in result.output
    assert "$.prerequisites[1]: a ConfigMap lives in a namespace: say which" in result.output


def test_validate_prints_the_bootstrap_order(rendered_repo: Path, crd_schemas: Path) -> None:
    import json

    result = validate(rendered_repo, crd_schemas, "--output", "json")
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["bootstrap"]["prod"]
    waves = [(step["wave"], step["application"]) for step in steps]
    assert waves == sorted(waves) and waves[0] == (-18, "platform-secrets")
    by_name = {step["application"]: step for step in steps}
    # ...the gateway's API keys among them, in the gateway's namespace.
    assert by_name["platform-secrets"]["creates"] == {"ClusterSecretStore": 1, "ExternalSecret": 6, "Namespace": 4}
    assert by_name["platform-secrets"]["waitsFor"] == ["CRDs external-secrets.io (terraform/)"]
    # Grafana's admin, and the class of Prometheus' and Alertmanager's volumes.
    assert by_name["kube-prometheus-stack"]["waitsFor"] == ["Secret monitoring/grafana-admin (platform-secrets)",
                                                            "StorageClass nimgen-gp3 (block-storage)"]
    # Open WebUI's own key and its gateway key.
    assert by_name["open-webui"]["waitsFor"] == ["Secret open-webui/open-webui (platform-secrets)",
                                                 "Secret open-webui/open-webui-gateway-api-key (platform-secrets)",
                                                 "StorageClass nimgen-gp3 (block-storage)"]
    assert "CRDs monitoring.coreos.com (kube-prometheus-stack)" in by_name["llama3-8b-instruct"]["waitsFor"]
    # The Gateway and its routes wait for the CRDs of the controllers that serve them.
    assert {"CRDs aigateway.envoyproxy.io (ai-gateway-crds)", "CRDs gateway.envoyproxy.io (envoy-gateway)",
            "CRDs gateway.networking.k8s.io (envoy-gateway)"} <= set(by_name["nim-gateway"]["waitsFor"])
    text = validate(rendered_repo, crd_schemas).output.splitlines()
    start = text.index("bootstrap order of prod on an empty cluster (after terraform/ and the root Application):")
    assert text[start + 1] == "  wave  -18  platform-secrets: creates 1 ClusterSecretStore, 6 ExternalSecret, 4 Namespace"
    assert text[start + 2] == "             waits for CRDs external-secrets.io (terraform/)"


def test_two_applications_waiting_for_each_other_are_a_cycle(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, VALID + "    cache: {type: emptyDir}\n"), tmp_path)

    def app(name: str) -> dict[str, Any]:
        return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name, "namespace": "argocd", "annotations": {"argocd.argoproj.io/sync-wave": "0"}},
                "spec": {"destination": {"namespace": "nim"}, "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}}

    def secret(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "nim"}}

    a, b = app("a"), app("b")
    results = [AppResult(a, "a.yaml", [Applied(secret("from-a"), "a", "t"),
                                       Applied(deployment("pa", imagePullSecrets=[{"name": "from-b"}]), "a", "t")]),
               AppResult(b, "b.yaml", [Applied(secret("from-b"), "b", "t"),
                                       Applied(deployment("pb", imagePullSecrets=[{"name": "from-a"}]), "b", "t")])]
    manifests = [Applied(a, "root", "a.yaml"), Applied(b, "root", "b.yaml")]
    messages = sorted(f.message for f in closure.check(env, manifests, results))
    assert messages == [
        "Applications a and b each wait for an object the other creates: a cycle no sync order resolves",
        "needs Secret nim/from-a, which a (wave 0) creates no earlier than Application b (wave 0)",
        "needs Secret nim/from-b, which b (wave 0) creates no earlier than Application a (wave 0)",
    ]
    one_way = [results[0], AppResult(b, "b.yaml", [Applied(secret("from-b"), "b", "t")])]
    assert not [f for f in closure.check(env, manifests, one_way) if "cycle" in f.message]


def test_projected_and_ephemeral_volumes(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, VALID + "    cache: {type: emptyDir}\n"), tmp_path)
    pod = deployment(volumes=[
        {"name": "p", "projected": {"sources": [{"secret": {"name": "tls"}}, {"configMap": {"name": "opt", "optional": True}}]}},
        {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}])
    found = {(f.path, f.message.split(",")[0]) for f in closure.check(env, *_objects(pod))}
    assert found == {
        ("spec.template.spec.volumes[0].projected.sources[0].secret.name", "needs Secret nim/tls"),
        ("spec.template.spec.volumes[1].ephemeral.volumeClaimTemplate.spec.storageClassName",
         "claims a volume of the cluster's default StorageClass"),
    }
