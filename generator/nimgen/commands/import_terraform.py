"""`nimgen import-terraform`: the cluster facts Terraform outputs, written into an environment file.

The contract between `terraform/outputs.tf` and nimgen is OUTPUTS: each output nimgen reads and the
environment-file key it fills. Tests hold both sides to it. The file is edited round-trip
(ruamel.yaml): comments, key order and quoting survive, and only the keys that change are touched.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from nimgen import secrets
from nimgen.environment.load import DEFAULTS_FILE, load_environment
from nimgen.errors import UserError
from nimgen.gitops.writer import replace_file
from nimgen.repository import default_root, display_path

# terraform output name -> environment-file key path it fills.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "cluster_name": ("cluster", "name"),
    "region": ("cluster", "region"),
    "kubernetes_version": ("cluster", "kubernetesVersion"),
    "karpenter_node_role": ("cluster", "karpenter", "nodeRole"),
    "karpenter_discovery_tag": ("cluster", "karpenter", "discoveryTag"),
    "efs_file_system_id": ("storage", "modelCache", "efs", "fileSystemId"),
    "ngc_api_key_secret_name": ("ngc", "externalSecret", "key"),
    "cluster_secret_store_name": ("ngc", "externalSecret", "store"),
    "grafana_admin_secret_name": ("observability", "grafanaAdminExternalSecret"),
    "open_webui_secret_name": ("addons", "openWebUI", "externalSecret"),
    "gateway_api_keys_secret_name": ("gateway", "auth", "apiKeys", "externalSecret"),
}
# Outputs Terraform leaves null when the cluster has no such thing (no gateway clients: no API keys' secret); a
# module applied before they existed lacks them, which counts as null.
NULLABLE = frozenset({"gateway_api_keys_secret_name"})
# Outputs filled only where the environment already uses what they describe: a shared EFS cache or
# NGC credentials from Secrets Manager are choices of the environment, not facts of the cluster.
OPT_IN: dict[str, tuple[str, ...]] = {
    "efs_file_system_id": ("storage", "modelCache"),
    "ngc_api_key_secret_name": ("ngc", "externalSecret"),
    "cluster_secret_store_name": ("ngc", "externalSecret"),
    "grafana_admin_secret_name": ("observability", "grafanaAdminExternalSecret"),
    "open_webui_secret_name": ("addons", "openWebUI", "externalSecret"),
    "gateway_api_keys_secret_name": ("gateway", "auth", "apiKeys"),
}


@dataclass(frozen=True)
class Change:
    """One key import-terraform sets (before is None for a new key)."""

    output: str
    path: tuple[str, ...]
    before: Any
    after: str

    def render(self) -> str:
        key = ".".join(self.path)
        return f"  + {key}: {self.after}" if self.before is None else f"  ~ {key}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class Skipped:
    """An output not written, and why."""

    output: str
    reason: str


def read_outputs(source: Path | str) -> dict[str, str]:
    """The values of `terraform output -json` that nimgen consumes; UserError on anything unusable.

    `source` is the file, or the text itself (read from stdin by `nimgen import-terraform -`).
    """
    path = source if isinstance(source, Path) else "<stdin>"
    try:
        document = json.loads(source.read_text(encoding="utf-8") if isinstance(source, Path) else source)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}",
                        hint="write it with: terraform output -json > outputs.json") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected the object `terraform output -json` prints")
    missing = sorted(set(OUTPUTS) - set(document) - NULLABLE)
    if missing:
        raise UserError(f"{path} lacks the outputs {', '.join(missing)}",
                        hint="apply the terraform/ module of this repository (its outputs.tf declares them), "
                             "then run terraform output -json again")
    values: dict[str, str] = {}
    for name in OUTPUTS:
        if name not in document:
            continue  # a nullable output a module from before it does not have: as if it were null
        entry = document[name]
        if not isinstance(entry, dict) or "value" not in entry:
            raise UserError(f"{path}: output {name} is not of the form {{\"value\": ...}}")
        if entry.get("sensitive"):
            raise UserError(f"{path}: output {name} is marked sensitive; nimgen writes no secret into Git",
                            hint="output the name of the secret, never its value")
        value = entry["value"]
        if value is None and name in NULLABLE:
            continue
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"{path}: output {name} must be a string, got {type(value).__name__}")
        text = str(value)
        if secrets.secret_in_text(text):
            raise UserError(f"{path}: output {name} looks like a secret value; nimgen writes no secret into Git")
        values[name] = text
    return values


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order, flow style and quotes are kept
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def apply(text: str, values: dict[str, str], shown: str) -> tuple[str, list[Change], list[Skipped]]:
    """`text` with the outputs written in, what changed, and what was left out."""
    yaml = _yaml()
    try:
        document = yaml.load(text)
    except YAMLError as error:
        raise UserError(f"{shown}: invalid YAML: {error}") from None
    if not isinstance(document, CommentedMap):
        raise UserError(f"{shown}: an environment file is a mapping")
    changes: list[Change] = []
    skipped: list[Skipped] = []
    for output, path in OUTPUTS.items():
        anchor = OPT_IN.get(output)
        if anchor and _get(document, anchor) is None:
            skipped.append(Skipped(output, f"the environment does not set {'.'.join(anchor)}"))
            continue
        if output not in values:
            skipped.append(Skipped(output, "terraform created none (gateway_api_clients is empty)"))
            continue
        node = document
        for key in path[:-1]:
            if not isinstance(node.get(key), CommentedMap):
                node[key] = CommentedMap()
            node = node[key]
        before = node.get(path[-1])
        if before is not None and str(before) == values[output]:
            continue
        node[path[-1]] = values[output]
        changes.append(Change(output, path, None if before is None else str(before), values[output]))
    if not changes:
        return text, changes, skipped
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue(), changes, skipped


def _get(document: Any, path: tuple[str, ...]) -> Any:
    node = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def import_terraform(outputs_file: Path | str, env_file: Path, *, dry_run: bool = False
                     ) -> tuple[list[Change], list[Skipped]]:
    """Write the Terraform outputs into `env_file` (unless `dry_run`), after checking the result is valid."""
    root = default_root(env_file)
    values = read_outputs(outputs_file)
    shown = display_path(env_file, root)
    try:
        text = env_file.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read {shown}: {error}") from None
    updated, changes, skipped = apply(text, values, shown)
    if changes:
        _check(updated, env_file, root)
        if not dry_run:
            replace_file(env_file, updated)
    return changes, skipped


def _check(text: str, env_file: Path, root: Path) -> None:
    """Load the updated file beside a copy of its defaults: refuse (ConfigError) what would not render."""
    with tempfile.TemporaryDirectory(prefix="nimgen-import-") as staging:
        folder = Path(staging) / "environments"
        folder.mkdir()
        defaults = env_file.parent / DEFAULTS_FILE
        if defaults.is_file():
            shutil.copy(defaults, folder / DEFAULTS_FILE)
        (folder / env_file.name).write_text(text, encoding="utf-8")
        load_environment(folder / env_file.name, Path(staging))
