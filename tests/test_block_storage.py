"""Block claims never rely on a default StorageClass: nimgen's encrypted gp3 class, and the EBS driver in terraform/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
import pytest
from conftest import PROJECT, example_environment
from helpers import VALID, write_env
from kube import application_objects, kubernetes_errors
from nimgen import helm
from nimgen.components import blockstorage
from nimgen.environment.load import load_environment
from nimgen.gitops import applications
from nimgen.gitops.tree import render_environment

WEBUI = "addons:\n  openWebUI: {enabled: true}\n"


def _env(tmp_path: Path, text: str) -> Any:
    return load_environment(write_env(tmp_path, text), tmp_path)


def _claims(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    for obj in objects:
        found += obj.get("spec", {}).get("volumeClaimTemplates", [])
    return found


def test_prod_renders_the_class_for_open_webui(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    prod = example_environment("prod")
    app = applications.by_name(prod)["block-storage"]
    assert app["spec"]["destination"]["namespace"] == "kube-system"
    assert "CreateNamespace=true" not in app["spec"]["syncPolicy"]["syncOptions"]
    assert int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < int(
        applications.by_name(prod)["open-webui"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    [storage_class] = application_objects(helm_engine, rendered_repo, app)
    assert kubernetes_errors(storage_class, "1.33") == []
    assert storage_class["metadata"]["name"] == "nimgen-gp3"
    assert storage_class["provisioner"] == "ebs.csi.aws.com"
    assert storage_class["parameters"] == {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"}
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["reclaimPolicy"] == "Delete" and storage_class["allowVolumeExpansion"] is True
    webui = application_objects(helm_engine, rendered_repo, applications.by_name(prod)["open-webui"])
    [claim] = _claims(webui)
    assert claim["spec"]["storageClassName"] == "nimgen-gp3"


def test_every_claim_of_the_examples_names_a_class(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    for name in ("dev", "prod"):
        for app in applications.by_name(example_environment(name)).values():
            if app["spec"]["source"].get("path"):  # nimgen's own charts (upstream ones are rendered elsewhere)
                for claim in _claims(application_objects(helm_engine, rendered_repo, app)):
                    assert claim["spec"].get("storageClassName"), (name, app["metadata"]["name"], claim)


def test_a_claim_template_cache_uses_the_class_and_lists_its_users(tmp_path: Path) -> None:
    text = VALID + "    cache: {type: claimTemplate, size: 200Gi}\n" + WEBUI
    env = _env(tmp_path, text)
    assert env.models[0].cache_storage_class == "nimgen-gp3"
    assert blockstorage.claims_using(env) == ["model llama3-8b-instruct", "Open WebUI"]
    app = applications.by_name(env)["block-storage"]
    assert {"name": "Used by", "value": "model llama3-8b-instruct, Open WebUI"} in app["spec"]["info"]
    values = applications.by_name(env)["llama3-8b-instruct"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["cache"] == {"type": "claimTemplate", "size": "200Gi", "storageClassName": "nimgen-gp3"}


def test_own_classes_render_no_nimgen_class(tmp_path: Path) -> None:
    text = (VALID + "    cache: {type: claimTemplate, storageClassName: fast-local}\n"
            + "addons:\n  openWebUI: {enabled: true, persistence: {storageClassName: io2-retain}}\n")
    env = _env(tmp_path, text)
    assert blockstorage.claims_using(env) == []
    assert "block-storage" not in applications.by_name(env)
    assert not any(str(path).startswith("charts/block-storage/") for path in render_environment(env))
    assert env.open_webui.storage_class == "io2-retain"


def test_no_block_claim_no_class(tmp_path: Path) -> None:
    env = _env(tmp_path, VALID + "    cache: {type: emptyDir}\n")
    assert "block-storage" not in applications.by_name(env)


def test_name_key_and_reclaim_policy_come_from_the_environment(tmp_path: Path) -> None:
    key = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    text = VALID.replace("models:\n", "storage:\n  blockStorage: {storageClassName: team-gp3, kmsKeyId: "
                         f"'{key}', reclaimPolicy: Retain}}\nmodels:\n") + WEBUI
    env = _env(tmp_path, text)
    values = applications.by_name(env)["block-storage"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["storageClass"] == {"name": "team-gp3", "type": "gp3", "kmsKeyId": key, "fsType": "ext4",
                                      "reclaimPolicy": "Retain"}
    assert env.open_webui.storage_class == "team-gp3"


def test_a_bad_key_arn_is_refused(tmp_path: Path) -> None:
    from helpers import run

    text = VALID.replace("models:\n", "storage:\n  blockStorage: {kmsKeyId: my-key}\nmodels:\n")
    result = run("render", write_env(tmp_path, text))
    assert result.exit_code == 1
    assert "$.storage.blockStorage.kmsKeyId" in result.output and "use a key ARN" in result.output


def test_the_chart_lints_strict(rendered_repo: Path, helm_engine: helm.Engine) -> None:
    values = blockstorage.values(example_environment("prod"))
    findings = helm_engine.lint(rendered_repo / blockstorage.CHART.path, values, kube_version="1.33")
    assert [f for f in findings if f.severity != "info"] == []


def test_terraform_installs_the_ebs_driver_with_pod_identity() -> None:
    eks = hcl2.loads((PROJECT / "terraform" / "eks.tf").read_text(encoding="utf-8"))
    text = (PROJECT / "terraform" / "eks.tf").read_text(encoding="utf-8")
    assert "aws-ebs-csi-driver = {" in text
    assert 'role_arn        = aws_iam_role.ebs_csi.arn\n        service_account = "ebs-csi-controller-sa"' in text
    roles = [block for block in eks.get("resource", []) if "aws_iam_role_policy_attachment" in block]
    attached = str(roles)
    assert "AmazonEBSCSIDriverPolicy" in attached and "aws_iam_role.ebs_csi.name" in attached


@pytest.mark.parametrize("reclaim", ["Delete", "Retain"])
def test_the_chart_schema_admits_only_known_values(reclaim: str) -> None:
    import json

    import jsonschema

    schema = json.loads((PROJECT / "charts" / "block-storage" / "values.schema.json").read_text())
    good = {"storageClass": {"name": "x", "type": "gp3", "kmsKeyId": "", "fsType": "ext4", "reclaimPolicy": reclaim}}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"storageClass": {**good["storageClass"], "encrypted": "false"}}, schema)
