"""Secrets from AWS Secrets Manager through External Secrets Operator (NGC, Grafana, Open WebUI), and secret values
refused in output."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import example_environment, make_repo
from helpers import VALID, run, write_env
from kube import application_objects, crd_errors, kubernetes_errors
from nimgen import helm
from nimgen.components import platformsecrets
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.gitops.ownership import content_hash
from nimgen.gitops.tree import SecretInOutputError, _refuse_secrets

SECRET_KEY = "nim/test/ngc-api-key"


def _env(tmp_path: Path, extra: str = "") -> Any:
    text = VALID.replace("models:\n", f"ngc:\n  externalSecret: {{key: {SECRET_KEY}{extra}}}\nmodels:\n")
    text += "  - name: mistral-7b\n    image: nvcr.io/nim/mistralai/mistral-7b-instruct-v0.3:1.12.0\n" \
            "    nodePool: a10g\n    namespace: nim-b\n"
    return load_environment(write_env(tmp_path, text), tmp_path)


def test_external_secrets_for_every_model_namespace(tmp_path: Path, rendered_repo: Path, helm_engine: helm.Engine,
                                                   crd_schemas: Path) -> None:
    env = _env(tmp_path)
    app = applications.by_name(env)["platform-secrets"]
    assert crd_errors(app, crd_schemas) == []
    objects = application_objects(helm_engine, rendered_repo, app)
    for obj in objects:
        if obj["apiVersion"].startswith("external-secrets.io/"):
            assert crd_errors(obj, crd_schemas) == [], obj["kind"]
        else:
            assert kubernetes_errors(obj, "1.33") == [], obj["kind"]
    assert not [o for o in objects if o["kind"] == "Secret"]  # External Secrets makes them in the cluster
    [store] = [o for o in objects if o["kind"] == "ClusterSecretStore"]
    assert store["spec"]["provider"]["aws"] == {"service": "SecretsManager", "region": "us-west-2"}
    assert store["spec"]["conditions"] == [{"namespaces": ["nim", "nim-b"]}]  # only these Secrets' namespaces
    externals = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "ExternalSecret"}
    assert set(externals) == {(ns, name) for ns in ("nim", "nim-b") for name in ("ngc-api", "ngc-secret")}
    api = externals[("nim-b", "ngc-api")]["spec"]
    assert api["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "aws-secrets-manager"}
    assert api["data"] == [{"secretKey": "NGC_API_KEY", "remoteRef": {"key": SECRET_KEY}}]
    pull = externals[("nim", "ngc-secret")]["spec"]
    assert pull["target"]["template"]["type"] == "kubernetes.io/dockerconfigjson"
    config = pull["target"]["template"]["data"][".dockerconfigjson"]
    # An External Secrets template (valid JSON once it has run in the cluster): the key is filled in there.
    assert config.startswith('{"auths":{"nvcr.io":{"username":"$oauthtoken","password":"{{ .apikey }}",')
    assert '"auth":"{{ printf "%s:%s" "$oauthtoken" .apikey | b64enc }}"' in config
    assert pull["data"] == [{"secretKey": "apikey", "remoteRef": {"key": SECRET_KEY}}]
    # No shared cache here, so this chart creates the model namespaces itself.
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"} == {"nim", "nim-b"}


def test_synced_before_the_models_and_admitted_by_the_platform_project(tmp_path: Path, crd_schemas: Path) -> None:
    env = _env(tmp_path)
    app = applications.by_name(env)["platform-secrets"]

    def wave(obj: dict[str, Any]) -> int:
        return int(obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])

    assert all(wave(app) < wave(applications.by_name(env)[model.name]) for model in env.models)
    project = applications.platform_project(env)
    assert crd_errors(project, crd_schemas) == []
    assert {"group": "external-secrets.io", "kind": "ClusterSecretStore"} in project["spec"]["clusterResourceWhitelist"]
    assert {"group": "external-secrets.io", "kind": "ExternalSecret"} in project["spec"]["namespaceResourceWhitelist"]
    assert {"nim", "nim-b"} <= {d["namespace"] for d in project["spec"]["destinations"]}


def test_property_and_region(tmp_path: Path) -> None:
    values = platformsecrets.values(_env(tmp_path, ", property: ngc_api_key, region: eu-west-1"))
    assert values["ngc"]["remote"] == {"key": SECRET_KEY, "property": "ngc_api_key"}
    assert values["store"]["region"] == "eu-west-1"


def test_prod_example_uses_external_secrets(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    env = example_environment("prod")
    assert env.ngc.external_secret is not None
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(env)["platform-secrets"])
    # It creates the namespaces of its Secrets at wave -18 (model-storage then leaves nim out): one owner each.
    assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace") == [
        "monitoring", "nim", "nim-gateway", "open-webui"]
    assert (rendered_repo / "argocd/prod/apps/platform/platform-secrets.yaml").is_file()
    assert not (rendered_repo / "argocd/dev/apps/platform/platform-secrets.yaml").exists()
    externals = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"] for o in objects
                 if o["kind"] == "ExternalSecret"}
    assert set(externals) == {("nim", "ngc-api"), ("nim", "ngc-secret"), ("monitoring", "grafana-admin"),
                              ("open-webui", "open-webui"), ("nim-gateway", "gateway-api-keys"),
                              ("open-webui", "open-webui-gateway-api-key")}
    assert externals[("monitoring", "grafana-admin")]["data"] == [
        {"secretKey": key, "remoteRef": {"key": "nim-prod/grafana-admin", "property": key}}
        for key in ("admin-user", "admin-password")]
    assert [d["secretKey"] for d in externals[("open-webui", "open-webui")]["data"]] == [
        "WEBUI_SECRET_KEY", "WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD"]
    # Open WebUI's own gateway key: its client's entry of the gateway's secret, in its namespace.
    assert externals[("open-webui", "open-webui-gateway-api-key")]["data"] == [
        {"secretKey": "open-webui", "remoteRef": {"key": "nim-prod/gateway-api-keys", "property": "open-webui"}}]
    [store] = [o for o in objects if o["kind"] == "ClusterSecretStore"]
    assert store["spec"]["conditions"] == [{"namespaces": ["monitoring", "nim", "nim-gateway", "open-webui"]}]


@pytest.mark.parametrize(("line", "what"), [
    ("value: nvapi-" + "Ab1" * 20, "an NGC API key"),
    ("aws: AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
    ("key: -----BEGIN OPENSSH PRIVATE KEY-----", "a private key"),
    ('.dockerconfigjson: \'{"auths":{"nvcr.io":{"username":"$oauthtoken","password":"s3cret"}}}\'',
     "a registry credential"),
])
def test_rendered_output_with_a_secret_is_refused(line: str, what: str) -> None:
    tree = {PurePosixPath("argocd/e/apps/x.yaml"): f"# header\nkind: ConfigMap\n{line}\n"}
    with pytest.raises(SecretInOutputError) as caught:
        _refuse_secrets(tree)
    assert f"argocd/e/apps/x.yaml:3: {what}" in caught.value.render()


def test_templated_pull_secret_is_not_a_secret() -> None:
    template = '{"auths":{"nvcr.io":{"username":"$oauthtoken","password":"{{ .apikey }}"}}}'
    _refuse_secrets({PurePosixPath("charts/c/t.yaml"): template})  # a placeholder, not a credential


def test_secret_in_environment_file_changes_nothing(tmp_path: Path) -> None:
    path = write_env(tmp_path, VALID.replace("models:\n", "description: nvapi-" + "x" * 40 + "\nmodels:\n"))
    result = run("render", path)
    assert result.exit_code == 1
    assert "environments/test.yaml:8:14: $.description: an NGC API key is in the environment file" in result.output
    assert not (tmp_path / "argocd").exists()


def test_grafanas_secret_syncs_before_the_monitoring_stack() -> None:
    """kube-prometheus-stack's Grafana waits for its admin Secret: it must come from an earlier wave."""
    apps = applications.by_name(example_environment("prod"))

    def wave(name: str) -> int:
        return int(apps[name]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])

    values = apps["kube-prometheus-stack"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    assert wave("platform-secrets") < wave("kube-prometheus-stack") < wave("open-webui")


def test_platform_secrets_alone_need_no_ngc_key(tmp_path: Path, rendered_repo: Path, helm_engine: helm.Engine) -> None:
    text = VALID.replace("models:\n", "observability:\n  enabled: true\n  grafanaAdminExternalSecret: team/grafana\n"
                                      "models:\n") + "addons:\n  openWebUI: {enabled: true, externalSecret: team/webui}\n"
    env = load_environment(write_env(tmp_path, text), tmp_path)
    values = platformsecrets.values(env)
    assert values["ngc"]["enabled"] is False and values["ngc"]["namespaces"] == []
    assert [(s["namespace"], s["name"], s["remoteKey"]) for s in values["secrets"]] == [
        ("monitoring", "grafana-admin", "team/grafana"), ("open-webui", "open-webui", "team/webui")]
    objects = application_objects(helm_engine, rendered_repo, applications.by_name(env)["platform-secrets"])
    assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ExternalSecret") == ["grafana-admin",
                                                                                               "open-webui"]


def test_without_external_secrets_nothing_is_rendered(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, VALID + "addons:\n  openWebUI: {enabled: true}\n"), tmp_path)
    assert "platform-secrets" not in applications.by_name(env)


def test_a_retired_chart_is_removed_by_render(tmp_path: Path) -> None:
    """A repository rendered when the chart was ngc-secrets: its record lists those files, render deletes them."""
    root = make_repo(tmp_path / "repo")
    assert run("render", root / "environments" / "prod.yaml").exit_code == 0
    record = root / "argocd" / "prod" / "generated-files.txt"
    old = root / "charts" / "ngc-secrets"
    shutil.copytree(root / "charts" / "platform-secrets", old)
    lines = record.read_text().splitlines()
    lines += [f"charts/ngc-secrets/{p.relative_to(old).as_posix()}  {content_hash(p.read_bytes())}"
              for p in sorted(old.rglob("*")) if p.is_file()]
    record.write_text("\n".join(lines) + "\n")
    result = run("render", root / "environments" / "prod.yaml")
    assert result.exit_code == 0, result.output
    assert "delete  charts/ngc-secrets/values.yaml" in result.output
    assert not old.exists()
