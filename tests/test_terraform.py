"""terraform/: the EKS cluster an environment runs on, checked offline (no terraform binary, no registry).

HCL is parsed with the `hcl2` module. checkov depends on bridgecrew's fork of python-hcl2
(bc-python-hcl2), which installs under the same import name `hcl2` and whose names (`START_LINE`) checkov
imports; python-hcl2 7 and later lack those names, so the two cannot share an environment. These tests use
whichever `hcl2` is installed and read the value layouts of bc-python-hcl2 and of python-hcl2 7 and 8
(see `_attr` and `_unquote`).

Checked here: every file parses; variables, locals and modules are declared where used and used where
declared; secrets are never set in a tfvars file; the outputs nimgen imports (nimgen.terraform.OUTPUTS)
exist; providers, modules and charts are pinned; Argo CD gets the Application health check nimgen's sync
waves need; the root Application Terraform installs is the one nimgen rendered; the tfvars agree with the
environment files; and checkov's Terraform checks pass, bar the skips listed with reasons in
terraform/.checkov.yaml.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# hcl2 comes with checkov (bc-python-hcl2), which nimgen[test] declares: imported directly, so a broken test
# install fails instead of skipping.
import hcl2
import pytest
import yaml
from nimgen.commands.import_terraform import OUTPUTS

ROOT = Path(__file__).resolve().parents[1]
TF_DIR = ROOT / "terraform"
TF_FILES = sorted(TF_DIR.glob("*.tf"))
TFVARS_FILES = sorted(TF_DIR.glob("*.tfvars"))
ENVIRONMENTS = [path.stem for path in TFVARS_FILES]

# Older python-hcl2 releases (and bc-python-hcl2) wrap every attribute value in a one-item list; newer
# ones keep string values' quotes and block labels' quotes.
_WRAPS = hcl2.loads("probe = 1\n")["probe"] == [1]
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_REFERENCE = {kind: re.compile(rf"(?<![\w.]){kind}\.([A-Za-z_][\w-]*)") for kind in ("var", "local", "module")}
_META = {"__start_line__", "__end_line__", "__is_block__", "__comments__", "__inline_comments__"}


def _unquote(value: Any) -> Any:
    """value with string literals unquoted, at any depth (python-hcl2 8 keeps their quotes)."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(item) for item in value]
    if isinstance(value, dict):
        return {_unquote(key): _unquote(item) for key, item in value.items() if key not in _META}
    return value


def _attr(body: dict[str, Any], key: str, default: Any = None) -> Any:
    """An attribute of a block body, without the parser's list wrapping or quotes."""
    if key not in body:
        return default
    value = body[key]
    if _WRAPS and isinstance(value, list) and len(value) == 1:
        value = value[0]
    return _unquote(value)


def _blocks(tree: dict[str, Any], kind: str) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(labels, body) of each `kind` block: ("name",) for variable/output/module, ("type", "name") for resource."""
    depth = {"resource": 2, "data": 2}.get(kind, 1)

    def walk(node: dict[str, Any], labels: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
        for label, body in node.items():
            if label in _META:
                continue
            if len(labels) + 1 == depth:
                yield (*labels, _unquote(label)), body
            else:
                yield from walk(body, (*labels, _unquote(label)))

    for entry in tree.get(kind, []):
        yield from walk(entry, ())


def _strings(node: Any, skip_keys: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every string (expressions included: the parser keeps them as `${...}` text) under node."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in skip_keys:
                yield from _strings(key)
                yield from _strings(value, skip_keys)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, skip_keys)


def _references(node: Any, kind: str, skip_keys: frozenset[str] = frozenset()) -> set[str]:
    return {match for text in _strings(node, skip_keys) for match in _REFERENCE[kind].findall(text)}


@functools.cache
def _parsed(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(encoding="utf-8"))


def _config() -> dict[str, dict[str, Any]]:
    return {path.name: _parsed(path) for path in TF_FILES}


def _all(kind: str) -> dict[tuple[str, ...], dict[str, Any]]:
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for tree in _config().values():
        for labels, body in _blocks(tree, kind):
            assert labels not in found, f"{kind} {'.'.join(labels)} is declared twice"
            found[labels] = body
    return found


def _variables() -> dict[str, dict[str, Any]]:
    return {labels[0]: body for labels, body in _all("variable").items()}


def _tfvars(path: Path) -> dict[str, Any]:
    tree = _parsed(path)
    return {key: _attr(tree, key) for key in tree if key not in _META}


def _locals() -> dict[str, Any]:
    declared: dict[str, Any] = {}
    for tree in _config().values():
        for entry in tree.get("locals", []):
            for name in entry:
                if name not in _META:
                    assert name not in declared, f"local.{name} is declared twice"
                    declared[name] = _attr(entry, name)
    return declared


def _environment_file(env: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "environments" / f"{env}.yaml").read_text(encoding="utf-8"))


def _root_application(env: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "argocd" / env / "root.yaml").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------------
# Files


def test_the_module_has_its_files() -> None:
    names = {path.name for path in TF_FILES}
    assert {"versions.tf", "variables.tf", "outputs.tf", "vpc.tf", "eks.tf", "karpenter.tf", "efs.tf",
            "secrets.tf", "argocd.tf"} <= names
    assert ENVIRONMENTS == ["dev", "prod"]
    assert (TF_DIR / "README.md").is_file() and (TF_DIR / ".checkov.yaml").is_file()


@pytest.mark.parametrize("path", TF_FILES + TFVARS_FILES, ids=lambda path: path.name)
def test_every_file_parses(path: Path) -> None:
    assert _parsed(path), f"{path.name} parsed to nothing"


def test_variables_and_outputs_live_in_their_files() -> None:
    for name, tree in _config().items():
        if name != "variables.tf":
            assert "variable" not in tree, f"{name} declares variables: keep them in variables.tf"
        if name != "outputs.tf":
            assert "output" not in tree, f"{name} declares outputs: keep them in outputs.tf"


# --------------------------------------------------------------------------------------------------------
# Variables, locals, modules


def test_every_variable_has_a_description_and_a_type() -> None:
    for name, body in _variables().items():
        assert _attr(body, "description"), f"variable {name} has no description"
        assert _attr(body, "type"), f"variable {name} has no type"


def test_every_referenced_variable_is_declared_and_every_declared_one_is_used() -> None:
    declared = set(_variables())
    referenced = _references(_config(), "var")
    assert referenced - declared == set(), "referenced but not declared in variables.tf"
    # A variable's own description, error message or validation is no use of it.
    used = set()
    for tree in _config().values():
        used |= _references({key: value for key, value in tree.items() if key != "variable"}, "var")
    for body in _variables().values():
        used |= _references(body, "var", frozenset({"description", "error_message", "validation"}))
    assert declared - used == set(), "declared in variables.tf but never used"


@pytest.mark.parametrize("path", TFVARS_FILES, ids=lambda path: path.name)
def test_tfvars_set_only_declared_variables_and_no_secret(path: Path) -> None:
    variables = _variables()
    assigned = set(_tfvars(path))
    assert assigned - set(variables) == set(), f"{path.name} sets undeclared variables"
    sensitive = {name for name, body in variables.items() if _attr(body, "sensitive") is True}
    assert assigned & sensitive == set(), f"{path.name} sets sensitive variables: supply them as TF_VAR_*"
    text = path.read_text(encoding="utf-8")
    assert "nvapi-" not in text and "ngc_api_key" not in re.sub(r"#.*", "", text)


def test_the_ngc_api_key_is_sensitive_has_no_default_and_stays_out_of_state() -> None:
    key = _variables()["ngc_api_key"]
    assert _attr(key, "sensitive") is True
    assert "default" not in key, "ngc_api_key must be supplied (TF_VAR_ngc_api_key), never defaulted"
    assert _attr(key, "ephemeral") is True
    version = _all("resource")[("aws_secretsmanager_secret_version", "ngc_api_key")]
    assert "secret_string" not in version, "the key would be stored in the state: use secret_string_wo"
    assert _attr(version, "secret_string_wo") == "${var.ngc_api_key}"
    # Write-only arguments need Terraform 1.11.
    required = _attr(_config()["versions.tf"]["terraform"][0], "required_version")
    assert required == ">= 1.11"


def test_every_referenced_module_and_local_is_declared_and_every_local_is_used() -> None:
    modules = {labels[0] for labels in _all("module")}
    assert _references(_config(), "module") - modules == set(), "module.X names an undeclared module"
    local_names = set(_locals())
    referenced = _references(_config(), "local")
    assert referenced - local_names == set(), "local.X names an undeclared local value"
    assert local_names - referenced == set(), "local values nothing uses"


# --------------------------------------------------------------------------------------------------------
# The contract with `nimgen import-terraform`


def _output_names(text: str) -> set[str]:
    return {labels[0] for labels, _ in _blocks(hcl2.loads(text), "output")}


def _missing_contract_outputs(outputs_tf: str) -> set[str]:
    return set(OUTPUTS) - _output_names(outputs_tf)


def _without_output(outputs_tf: str, name: str) -> str:
    removed, count = re.subn(rf'(?ms)^output "{re.escape(name)}" \{{\n.*?^\}}\n', "", outputs_tf)
    assert count == 1, f"output {name} not found once in outputs.tf"
    return removed


OUTPUTS_TF = (TF_DIR / "outputs.tf").read_text(encoding="utf-8")


def test_outputs_include_every_output_nimgen_imports() -> None:
    assert _missing_contract_outputs(OUTPUTS_TF) == set()


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_the_contract_check_notices_a_removed_output(name: str) -> None:
    before = _missing_contract_outputs(OUTPUTS_TF)
    assert _missing_contract_outputs(_without_output(OUTPUTS_TF, name)) == before | {name}


def test_contract_outputs_are_plain_values() -> None:
    outputs = {labels[0]: body for labels, body in _blocks(hcl2.loads(OUTPUTS_TF), "output")}
    for name in OUTPUTS:
        assert _attr(outputs[name], "value"), f"output {name} has no value"
        assert _attr(outputs[name], "sensitive") is not True, f"`terraform output -json` would hide {name}"
    assert _attr(outputs["karpenter_node_role"], "value") == "${module.karpenter.node_iam_role_name}"
    assert _attr(outputs["karpenter_discovery_tag"], "value") == "${local.discovery_tag}"
    assert _attr(outputs["cluster_secret_store_name"], "value") == "${var.cluster_secret_store_name}"
    assert _attr(_variables()["cluster_secret_store_name"], "default") == "aws-secrets-manager"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tfvars_agree_with_the_environment_file(env: str) -> None:
    tfvars = _tfvars(TF_DIR / f"{env}.tfvars")
    cluster = _environment_file(env)["cluster"]
    assert tfvars["environment"] == env == _environment_file(env)["name"]
    assert (tfvars["cluster_name"], tfvars["region"], tfvars["kubernetes_version"]) == (
        cluster["name"], cluster["region"], str(cluster["kubernetesVersion"]))
    # What the environment file expects of Karpenter is what Terraform names and tags.
    role_template = _locals()["karpenter_node_role_name"]
    assert role_template.replace("${var.cluster_name}", tfvars["cluster_name"]) == cluster["karpenter"]["nodeRole"]
    assert _locals()["discovery_tag"] == "${var.cluster_name}"
    assert cluster["karpenter"]["discoveryTag"] == tfvars["cluster_name"]
    assert tfvars["gitops_repo_url"] == _root_application(env)["spec"]["source"]["repoURL"]
    assert all(zone.startswith(tfvars["region"]) for zone in tfvars["availability_zones"])
    # An environment that reads the NGC key from Secrets Manager names the secret Terraform creates.
    external = (_environment_file(env).get("ngc") or {}).get("externalSecret")
    if external:
        (secret,) = [body for labels, body in _blocks(_parsed(TF_DIR / "secrets.tf"), "resource")
                     if labels == ("aws_secretsmanager_secret", "ngc_api_key")]
        name = _attr(secret, "name").replace("${var.cluster_name}", tfvars["cluster_name"])
        assert external["key"] == name
        assert external.get("store", "aws-secrets-manager") == _attr(_variables()["cluster_secret_store_name"],
                                                                      "default")
    # External Secrets may read every alert receiver's secret the environment names.
    receivers = ((_environment_file(env).get("observability") or {}).get("alerting") or {}).get("receivers") or []
    readable = set(tfvars.get("alerting_secret_names") or [])
    assert {receiver["externalSecret"] for receiver in receivers} <= readable
    # Alertmanager may publish to every SNS topic the environment's receivers name, from its namespace.
    assert {r["topicArn"] for r in receivers if r.get("type") == "sns"} <= set(tfvars.get("alerting_sns_topic_arns") or [])
    observability = _environment_file(env).get("observability") or {}
    assert observability.get("namespace", "monitoring") == tfvars.get("monitoring_namespace", "monitoring")
    # The gateway's clients each get a key in the secret Terraform creates, and the environment reads that secret.
    api_keys = ((_environment_file(env).get("gateway") or {}).get("auth") or {}).get("apiKeys") or {}
    assert list(tfvars.get("gateway_api_clients") or []) == list(api_keys.get("clients") or [])
    if api_keys:
        (secret,) = [body for labels, body in _blocks(_parsed(TF_DIR / "secrets.tf"), "resource")
                     if labels == ("aws_secretsmanager_secret", "gateway_api_keys")]
        assert api_keys["externalSecret"] == _attr(secret, "name").replace("${var.cluster_name}", tfvars["cluster_name"])


def test_external_secrets_may_read_the_alert_receivers_secrets() -> None:
    """Each name in alerting_secret_names becomes a secret ARN (with Secrets Manager's 6-character suffix) the
    External Secrets role may read; without names there is no statement (an empty resource list is invalid)."""
    text = (TF_DIR / "secrets.tf").read_text()
    statement = text.split('dynamic "statement"', 1)[1].split("\n  }\n", 1)[0]
    assert "for_each = length(var.alerting_secret_names) > 0 ? [1] : []" in statement
    assert '"secretsmanager:GetSecretValue"' in statement
    assert "for name in var.alerting_secret_names" in statement
    assert ':secret:${name}-??????"' in statement and 'startswith(name, "arn:") ? name' in statement
    assert "alerting_secret_names" in _variables()


# --------------------------------------------------------------------------------------------------------
# Pinning


def test_terraform_and_providers_are_pinned() -> None:
    terraform = _config()["versions.tf"]["terraform"][0]
    assert _attr(terraform, "required_version", "").startswith(">= ")
    (block,) = terraform["required_providers"]
    providers = {name: _attr(block, name) for name in block if name not in _META}
    assert set(providers) == {"aws", "helm", "kubernetes", "random"}
    for name, spec in providers.items():
        source, version = spec["source"], spec["version"]
        assert source == f"hashicorp/{name}" and version.startswith("~> "), name
    assert providers["aws"]["version"].removeprefix("~> ").split(".")[0] in {"5", "6"}


def test_every_registry_module_is_pinned_to_an_exact_version() -> None:
    modules = _all("module")
    assert {labels[0] for labels in modules} == {"vpc", "eks", "karpenter", "aws_lb_controller_pod_identity"}
    versions = {}
    for (name,), body in modules.items():
        source = _attr(body, "source")
        assert source.startswith("terraform-aws-modules/"), f"module {name}: {source}"
        versions[name] = _attr(body, "version")
        assert versions[name] and _SEMVER.match(versions[name]), f"module {name} is not pinned exactly"
    assert versions["eks"] == versions["karpenter"], "the karpenter submodule comes from the eks module's release"
    assert versions["eks"].startswith("21.") and versions["vpc"].startswith("6.")
    # Its AWS Load Balancer Controller policy holds every action of the controller's v3.5.0 iam_policy.json.
    assert versions["aws_lb_controller_pod_identity"] == "2.8.1"


def test_every_helm_release_is_pinned() -> None:
    chart_versions = _locals()["chart_versions"]
    assert all(_SEMVER.match(version) for version in chart_versions.values()), chart_versions
    assert chart_versions["karpenter"].startswith("1.")
    repositories = {
        "karpenter": "oci://public.ecr.aws/karpenter",
        "karpenter-crd": "oci://public.ecr.aws/karpenter",
        "external-secrets": "https://charts.external-secrets.io",
        "argo-cd": "https://argoproj.github.io/argo-helm",
        "argocd-apps": "https://argoproj.github.io/argo-helm",
        "aws-load-balancer-controller": "https://aws.github.io/eks-charts",
    }
    releases = {labels[1]: body for labels, body in _all("resource").items() if labels[0] == "helm_release"}
    assert {_attr(body, "chart") for body in releases.values()} == set(repositories)
    for name, body in releases.items():
        assert _attr(body, "repository") == repositories[_attr(body, "chart")], name
        version = re.fullmatch(r"\$\{local\.chart_versions\.(\w+)\}", _attr(body, "version") or "")
        assert version and version.group(1) in chart_versions, f"helm_release {name} is not pinned"


# --------------------------------------------------------------------------------------------------------
# Argo CD


def _argocd_values() -> dict[str, Any]:
    release = _all("resource")[("helm_release", "argocd")]
    (values,) = _attr(release, "values")
    path = re.fullmatch(r'\$\{file\(\\?"\$\{path\.module\}/([^"\\]+)\\?"\)\}', values)
    assert path, f"argo-cd values should come from a YAML file: {values}"
    return yaml.safe_load((TF_DIR / path.group(1)).read_text(encoding="utf-8"))


def test_argocd_assesses_the_health_of_child_applications() -> None:
    lua = _argocd_values()["configs"]["cm"]["resource.customizations.health.argoproj.io_Application"]
    assert "obj.status.health" in lua
    assert 'hs.status = "Progressing"' in lua and "hs.status = obj.status.health.status" in lua
    assert lua.rstrip().endswith("return hs")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_root_application_terraform_installs_is_nimgens(env: str) -> None:
    app = _root_application(env)
    project = yaml.safe_load((ROOT / "argocd" / env / "root-project.yaml").read_text(encoding="utf-8"))
    assert app["kind"] == "Application" and app["spec"]["project"] == project["metadata"]["name"] == f"{env}-root"
    assert app["spec"]["source"]["path"] == f"argocd/{env}/apps"
    assert app["spec"]["source"]["directory"]["recurse"] is True
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    # argocd.tf copies these fields into the argocd-apps chart; anything else nimgen renders would be lost.
    assert set(app["metadata"]) <= {"name", "namespace", "labels", "annotations", "finalizers"}
    assert set(app["spec"]) <= {"project", "source", "destination", "syncPolicy"}
    assert _locals()["root_application_file"] == "${path.module}/../argocd/${var.environment}/root.yaml"
    values = _attr(_all("resource")[("helm_release", "root_application")], "values")[0]
    for field in ("project", "source", "destination", "syncPolicy", "finalizers", "additionalLabels",
                  "additionalAnnotations"):
        assert field in values, f"argocd.tf does not pass {field} to argocd-apps"
    # The root's AppProject goes through the same release, every field of it that nimgen renders.
    assert _locals()["root_project_file"] == "${path.module}/../argocd/${var.environment}/root-project.yaml"
    assert set(project["metadata"]) <= {"name", "namespace", "labels", "finalizers"}
    assert set(project["spec"]) == {"description", "sourceRepos", "destinations", "clusterResourceWhitelist",
                                    "namespaceResourceWhitelist"}
    passed = values.split("'projects': {", 1)[1].split("'applications': {", 1)[0]
    for field in (*project["spec"], "finalizers", "additionalLabels", "namespace"):
        assert f"'{field}': '${{" in passed, f"argocd.tf does not pass the root project's {field} to argocd-apps"


def test_the_gitops_repository_secret_takes_credentials_from_variables() -> None:
    secret = _all("resource")[("kubernetes_secret_v1", "gitops_repository")]
    text = "".join(_strings(secret))
    assert "argocd.argoproj.io/secret-type" in text and "repository" in text
    assert {"gitops_repo_url", "gitops_repo_username", "gitops_repo_password"} <= _references(secret, "var")
    assert _attr(_variables()["gitops_repo_password"], "sensitive") is True


# --------------------------------------------------------------------------------------------------------
# checkov


CHECKOV_CONFIG = TF_DIR / ".checkov.yaml"


def _checkov_skips() -> dict[str, str]:
    """Skipped check id -> the reason written beside it in terraform/.checkov.yaml."""
    config = yaml.safe_load(CHECKOV_CONFIG.read_text(encoding="utf-8"))
    skips = config["skip-check"]
    assert len(skips) == len(set(skips)), "a check is skipped twice"
    reasons = {}
    for line in CHECKOV_CONFIG.read_text(encoding="utf-8").splitlines():
        entry = re.match(r"^\s*-\s*(CKV\w+)\s*(?:#\s*(.*))?$", line)
        if entry:
            reasons[entry.group(1)] = (entry.group(2) or "").strip()
    assert set(reasons) == set(skips)
    return reasons


def test_every_checkov_skip_has_a_reason_and_is_listed_in_one_place() -> None:
    for check, reason in _checkov_skips().items():
        assert len(reason.split()) >= 8, f"{check} needs a reason (a comment on its line)"
    for path in TF_FILES:
        assert "checkov:skip" not in path.read_text(encoding="utf-8"), f"{path.name}: skip in .checkov.yaml"


def test_checkov_passes_with_exactly_the_listed_skips() -> None:
    from checkov.runner_filter import RunnerFilter
    from checkov.terraform.runner import Runner

    # One run without skips: passing with the skips means the failures are exactly the skipped checks,
    # and a skip whose check passes again is stale.
    report = Runner().run(root_folder=str(TF_DIR), runner_filter=RunnerFilter(
        framework=["terraform"], download_external_modules=False, show_progress_bar=False))
    assert report.parsing_errors == [], report.parsing_errors
    assert len(report.passed_checks) > 50, "checkov checked (almost) nothing"
    failed = {check.check_id for check in report.failed_checks}
    details = "\n".join(sorted(f"{c.check_id} {c.check_name}: {c.resource} ({Path(c.file_path).name})"
                               for c in report.failed_checks))
    assert failed - set(_checkov_skips()) == set(), f"checkov failures:\n{details}"
    assert set(_checkov_skips()) - failed == set(), "skips whose checks pass now: remove them"
    checked = {check.resource for check in report.passed_checks}
    assert {"aws_efs_file_system.model_cache", "aws_secretsmanager_secret.ngc_api_key",
            "aws_iam_role.external_secrets", "aws_kms_key.secrets"} <= checked


# --------------------------------------------------------------------------------------------------------
# README


def test_the_readme_says_how_to_apply_and_import() -> None:
    readme = (TF_DIR / "README.md").read_text(encoding="utf-8")
    for step in ("export TF_VAR_ngc_api_key=", "terraform init", "terraform workspace select -or-create prod",
                 "terraform apply -var-file=prod.tfvars",
                 "output -json > outputs.json && nimgen import-terraform outputs.json environments/prod.yaml"):
        assert step in readme, step
    assert "checkov" in readme and "not downloaded" in readme


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_node_pools_sync_into_the_namespace_terraform_installs_karpenter_in(env: str) -> None:
    """The Application's destination exists before the first sync; no empty `karpenter` namespace appears."""
    karpenter = _locals()["karpenter"]
    karpenter = karpenter[0] if isinstance(karpenter, list) else karpenter
    app = yaml.safe_load((ROOT / "argocd" / env / "apps" / "platform" / "gpu-nodepools.yaml").read_text())
    assert app["spec"]["destination"]["namespace"] == _unquote(karpenter["namespace"]) == "kube-system"
    assert not any(option.startswith("CreateNamespace") for option in app["spec"]["syncPolicy"]["syncOptions"])


def test_alertmanager_publishes_to_sns_as_the_serviceaccount_nimgen_names() -> None:
    from nimgen.components import alerting

    text = (TF_DIR / "alerting.tf").read_text()
    assert f'service_account = "{alerting.ALERTMANAGER_SERVICE_ACCOUNT}"' in text
    assert "namespace       = var.monitoring_namespace" in text
    assert _attr(_variables()["monitoring_namespace"], "default") == "monitoring"
    # Publishing only, to the listed topics only; no role at all without a topic (an empty resource list is invalid).
    statement = text.split('sid       = "PublishAlerts"', 1)[1].split("}", 1)[0]
    assert 'actions   = ["sns:Publish"]' in statement and "resources = var.alerting_sns_topic_arns" in statement
    for resource in ("aws_iam_role", "aws_iam_role_policy", "aws_eks_pod_identity_association"):
        block = text.split(f'resource "{resource}"', 1)[1].split("\n}\n", 1)[0]
        assert "count" in block and "length(var.alerting_sns_topic_arns) > 0 ? 1 : 0" in block, resource

