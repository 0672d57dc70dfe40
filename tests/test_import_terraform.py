"""`nimgen import-terraform`: Terraform outputs into an environment file, comments and order kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_ENVIRONMENTS
from helpers import run, tree_digest
from nimgen.commands.import_terraform import OUTPUTS
from nimgen.environment.load import load_environment
from syrupy.assertion import SnapshotAssertion

VALUES = {
    "cluster_name": "nim-prod-eu",
    "region": "eu-west-1",
    "kubernetes_version": "1.34",
    "karpenter_node_role": "Karpenter-nim-prod-eu-2026112512",
    "karpenter_discovery_tag": "nim-prod-eu",
    "efs_file_system_id": "fs-0abc1234def567890",
    "ngc_api_key_secret_name": "nim-prod-eu/ngc-api-key",
    "cluster_secret_store_name": "aws-secrets-manager",
    "grafana_admin_secret_name": "nim-prod-eu/grafana-admin",
    "open_webui_secret_name": "nim-prod-eu/open-webui",
    "gateway_api_keys_secret_name": "nim-prod-eu/gateway-api-keys",
}


def outputs(tmp_path: Path, values: dict[str, Any] | None = None, **entries: Any) -> Path:
    """An outputs file in `terraform output -json` form (plus an output nimgen does not read)."""
    document = {name: {"sensitive": False, "type": "string", "value": value}
                for name, value in (values or VALUES).items()}
    document["cluster_endpoint"] = {"sensitive": False, "type": "string", "value": "https://EXAMPLE.eks.amazonaws.com"}
    document.update(entries)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document, indent=2))
    return path


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE_ENVIRONMENTS, root / "environments")
    return root


def test_prod_gets_every_output_and_keeps_its_comments(repo: Path, tmp_path: Path,
                                                       snapshot: SnapshotAssertion) -> None:
    env_file = repo / "environments/prod.yaml"
    before = env_file.read_text()
    result = run("import-terraform", outputs(tmp_path), env_file)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "  ~ cluster.name: nim-prod -> nim-prod-eu",
        "  ~ cluster.region: us-west-2 -> eu-west-1",
        "  ~ cluster.kubernetesVersion: 1.33 -> 1.34",
        "  ~ cluster.karpenter.nodeRole: KarpenterNodeRole-nim-prod -> Karpenter-nim-prod-eu-2026112512",
        "  ~ cluster.karpenter.discoveryTag: nim-prod -> nim-prod-eu",
        "  ~ storage.modelCache.efs.fileSystemId: fs-0123456789abcdef0 -> fs-0abc1234def567890",
        "  ~ ngc.externalSecret.key: nim-prod/ngc-api-key -> nim-prod-eu/ngc-api-key",
        "  ~ observability.grafanaAdminExternalSecret: nim-prod/grafana-admin -> nim-prod-eu/grafana-admin",
        "  ~ addons.openWebUI.externalSecret: nim-prod/open-webui -> nim-prod-eu/open-webui",
        "  ~ gateway.auth.apiKeys.externalSecret: nim-prod/gateway-api-keys -> nim-prod-eu/gateway-api-keys",
        f"next: nimgen render {env_file}",
    ]
    after = env_file.read_text()
    assert after == snapshot
    # Every comment and every top-level key survives, in order.
    comments = [line.split("#", 1)[1] for line in before.splitlines() if "#" in line]
    assert comments == [line.split("#", 1)[1] for line in after.splitlines() if "#" in line]
    keys = [line.split(":")[0] for line in before.splitlines() if line[:1].isalpha()]
    assert keys == [line.split(":")[0] for line in after.splitlines() if line[:1].isalpha()]
    env = load_environment(env_file, repo)
    assert (env.cluster_name, env.region, env.kubernetes_version) == ("nim-prod-eu", "eu-west-1", "1.34")
    assert env.karpenter is not None and env.karpenter.node_role == VALUES["karpenter_node_role"]
    assert env.model_cache is not None and env.model_cache.file_system_id == VALUES["efs_file_system_id"]
    assert env.ngc.external_secret is not None and env.ngc.external_secret.key == VALUES["ngc_api_key_secret_name"]
    assert env.observability is not None and env.observability.grafana_admin_remote == "nim-prod-eu/grafana-admin"
    assert env.open_webui is not None and env.open_webui.secret_remote == "nim-prod-eu/open-webui"
    assert env.gateway is not None and env.gateway.api_keys_remote == "nim-prod-eu/gateway-api-keys"
    again = run("import-terraform", outputs(tmp_path), env_file)
    assert again.exit_code == 0 and "already up to date" in again.output and env_file.read_text() == after


def test_opt_in_keys_are_not_forced_on_an_environment(repo: Path, tmp_path: Path) -> None:
    env_file = repo / "environments/dev.yaml"
    result = run("import-terraform", outputs(tmp_path), env_file)
    assert result.exit_code == 0, result.output
    assert "  skipped efs_file_system_id: the environment does not set storage.modelCache" in result.output
    assert "  skipped ngc_api_key_secret_name: the environment does not set ngc.externalSecret" in result.output
    assert ("  skipped grafana_admin_secret_name: the environment does not set "
            "observability.grafanaAdminExternalSecret") in result.output
    text = env_file.read_text()
    assert "storage:" not in text and "externalSecret" not in text  # dev keeps its per-pod cache


def test_missing_keys_are_created(repo: Path, tmp_path: Path) -> None:
    env_file = repo / "environments/dev.yaml"
    text = env_file.read_text()
    env_file.write_text(text.replace("  karpenter:\n    nodeRole: KarpenterNodeRole-nim-dev\n"
                                     "    discoveryTag: nim-dev\n", ""))
    result = run("import-terraform", outputs(tmp_path), env_file)
    assert result.exit_code == 0, result.output
    assert "  + cluster.karpenter.nodeRole: Karpenter-nim-prod-eu-2026112512" in result.output
    assert load_environment(env_file, repo).karpenter is not None


def test_dry_run_writes_nothing(repo: Path, tmp_path: Path) -> None:
    before = tree_digest(repo)
    result = run("import-terraform", "--dry-run", outputs(tmp_path), repo / "environments/prod.yaml")
    assert result.exit_code == 0 and "would change 10 keys" in result.output
    assert tree_digest(repo) == before


@pytest.mark.parametrize(("change", "message"), [
    ({"drop": "efs_file_system_id"}, "lacks the outputs efs_file_system_id"),
    ({"sensitive": "ngc_api_key_secret_name"}, "output ngc_api_key_secret_name is marked sensitive"),
    ({"value": ("ngc_api_key_secret_name", "nvapi-" + "k" * 40)}, "looks like a secret value"),
    ({"value": ("efs_file_system_id", "not-an-fs-id")}, "fileSystemId"),
    ({"value": ("region", ["us-west-2"])}, "output region must be a string"),
])
def test_bad_outputs_change_nothing(repo: Path, tmp_path: Path, change: dict[str, Any], message: str) -> None:
    values = dict(VALUES)
    entries: dict[str, Any] = {}
    if "drop" in change:
        del values[change["drop"]]
    if "value" in change:
        name, value = change["value"]
        values[name] = value
    if "sensitive" in change:
        entries[change["sensitive"]] = {"sensitive": True, "type": "string", "value": "x"}
    before = tree_digest(repo)
    result = run("import-terraform", outputs(tmp_path, values, **entries), repo / "environments/prod.yaml")
    assert result.exit_code == 1
    assert message in result.output
    assert tree_digest(repo) == before


def test_not_json(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "outputs.json"
    bad.write_text("cluster_name = nim-prod\n")
    result = run("import-terraform", bad, repo / "environments/prod.yaml")
    assert result.exit_code == 1 and "not JSON" in result.output and "terraform output -json" in result.output


def test_contract_names_environment_keys_the_schema_knows() -> None:
    from nimgen.environment.load import environment_schema

    schema = environment_schema()
    for output, path in OUTPUTS.items():
        node = schema
        for key in path:
            node = node["properties"][key] if "properties" in node else node
            if "$ref" in node:
                node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        assert node, output


def test_outputs_can_come_from_stdin(repo: Path, tmp_path: Path) -> None:
    """`terraform output -json | nimgen import-terraform - ENV_FILE`, as the README shows."""
    from click.testing import CliRunner
    from nimgen.cli import main

    env_file = repo / "environments/prod.yaml"
    piped = CliRunner().invoke(main, ["import-terraform", "-", str(env_file)], input=outputs(tmp_path).read_text())
    assert piped.exit_code == 0, piped.output
    assert "  ~ cluster.name: nim-prod -> nim-prod-eu" in piped.output
    assert "cluster:\n  name: nim-prod-eu" in env_file.read_text()
    broken = CliRunner().invoke(main, ["import-terraform", "-", str(env_file)], input="{not json")
    assert broken.exit_code == 1
    assert "<stdin>:1:2: not JSON" in broken.stderr and "terraform output -json" in broken.stderr


def test_a_cluster_without_gateway_clients_leaves_the_keys_alone(repo: Path, tmp_path: Path) -> None:
    env_file = repo / "environments/prod.yaml"
    values = {**VALUES, "gateway_api_keys_secret_name": None}  # Terraform's output without gateway_api_clients
    result = run("import-terraform", outputs(tmp_path, values), env_file)
    assert result.exit_code == 0, result.output
    assert "gateway.auth.apiKeys" not in result.output.split("next:")[0].replace("skipped", "")
    assert "gateway_api_keys_secret_name: terraform created none (gateway_api_clients is empty)" in result.output
    env = load_environment(env_file, repo)
    assert env.gateway is not None and env.gateway.api_keys_remote == "nim-prod/gateway-api-keys"
    # A module applied before the output existed lacks it: the same as null.
    values.pop("gateway_api_keys_secret_name")
    older = run("import-terraform", outputs(tmp_path, values), env_file)
    assert older.exit_code == 0 and "gateway_api_keys_secret_name: terraform created none" in older.output
    other = outputs(tmp_path, {**VALUES, "open_webui_secret_name": None})
    refused = run("import-terraform", other, env_file)
    assert refused.exit_code == 1 and "output open_webui_secret_name must be a string, got NoneType" in refused.output
