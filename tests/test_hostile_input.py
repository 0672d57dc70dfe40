"""Every string of an environment file is attacker input.

The JSON schema is walked to find every string field. Identifier fields (a pattern, an enum, or an image
reference) must refuse YAML and Go-template metacharacters with the field's $.path; the few free-text
fields must reach the objects the real Helm engine renders (and the Argo CD files) exactly as written.
"""

from __future__ import annotations

import copy
import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_ENVIRONMENTS
from helpers import run, tree_digest, write_env
from kube import application_objects
from nimgen import helm
from nimgen.environment.load import environment_schema, load_environment
from nimgen.errors import ConfigError, json_path
from nimgen.gitops.tree import render_environment
from nimgen.yamlio import dump, load_plain

# An environment that sets every string field of the schema at least once (the coverage test holds it to that).
FULL = textwrap.dedent("""\
    name: hostile
    description: marker
    cluster:
      name: nim-hostile
      region: us-west-2
      kubernetesVersion: "1.33"
      devicePlugin: auto
      karpenter: {nodeRole: KarpenterNodeRole-nim, discoveryTag: nim-hostile}
    gitops:
      repoURL: https://github.com/example/nim-gitops.git
      targetRevision: main
      namespace: argocd
      destinationServer: https://kubernetes.default.svc
    ngc:
      apiKeySecret: ngc-api
      apiKeySecretKey: NGC_API_KEY
      imagePullSecret: ngc-secret
      externalSecret: {store: aws-secrets-manager, key: nim/ngc-api-key, property: apiKey, region: us-west-2,
                       refreshInterval: 1h}
    nodePools:
      - {name: a10g, instanceFamilies: [g5], capacityTypes: [on-demand], architecture: amd64, gpuLimit: 16,
         amiFamily: al2023, amiVersion: v20251112, diskSize: 300Gi, consolidateAfter: 30m, expireAfter: 720h,
         terminationGracePeriod: 2h, disruptionBudget: 10%, minGpuMemory: 20Gi}
      - {name: l40s, instanceTypes: [g6e.xlarge], gpuLimit: 4, amiVersion: v20251112,
         capacityTypes: [reserved, on-demand], reservedHourlyUsd: 1.5,
         capacityReservations: [{id: cr-0123456789abcdef0, instanceType: g6e.xlarge, instances: 1},
                                {tags: {team: ml}, ownerID: "123456789012", instanceType: g6e.xlarge, instances: 1}]}
    storage:
      modelCache: {efs: {fileSystemId: fs-0123456789abcdef0}, size: 500Gi, storageClassName: nimgen-efs,
                   claimName: nim-model-cache}
      blockStorage: {storageClassName: nimgen-gp3, reclaimPolicy: Delete,
                     kmsKeyId: "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
    observability:
      enabled: true
      namespace: monitoring
      metricsPath: /v1/metrics
      scrapeInterval: 30s
      prometheusStack: {chartVersion: 79.5.0, storage: {size: 50Gi, retention: 15d, retentionSize: 40GiB,
                                                      storageClassName: nimgen-gp3, alertmanagerSize: 1Gi}}
      prometheusAdapter: {chartVersion: 4.13.0}
      dcgmExporter: {chartVersion: 3.4.2}
      keda: {chartVersion: 2.20.2}
      prometheusUrl: http://prometheus-operated.monitoring.svc:9090
      grafanaAdminSecret: grafana-admin
      grafanaAdminExternalSecret: nim/grafana-admin
      alerting:
        repeatInterval: 4h
        receivers:
          - {name: team, type: slack, externalSecret: nim/alerting/slack, channel: "#nim-alerts",
             severities: [critical, warning]}
          - {name: ops, type: sns, topicArn: "arn:aws:sns:us-west-2:123456789012:nim-alerts"}
    addons:
      openWebUI: {enabled: true, namespace: open-webui, image: "ghcr.io/open-webui/open-webui:v0.7.2",
                  secret: open-webui, externalSecret: nim/open-webui, persistence: {size: 10Gi, storageClassName: gp3},
                  resources: {cpu: 500m, memory: 2Gi}}
    gateway:
      enabled: true
      namespace: nim-gateway
      hostname: llm.example.com
      scheme: internet-facing
      sourceRanges: [10.0.0.0/8]
      tls: {acmCertificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"}
      auth: {apiKeys: {externalSecret: nim/gateway-api-keys, clients: [team-a], secret: gateway-api-keys}}
      rateLimits: {tokensPerMinutePerClient: 1000, tokensPerMinutePerModel: 500}
    prerequisites:
      - {kind: Secret, namespace: nim, name: hf-token, description: synced from the team vault}
    modelDefaults:
      servedModelName: meta/default
      nodePool: a10g
      namespace: nim
      workload: StatefulSet
      precision: bf16
      env: {NIM_DEFAULT: marker}
      secretEnv: {HF_TOKEN: {secret: hf-token, key: token}}
      resources: {cpu: "4", memory: 24Gi}
      sharedMemory: 2Gi
      autoscaling: {engine: hpa, metric: num_requests_running}
    models:
      - name: llama3-8b-instruct
        image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3
        servedModelName: meta/llama3-8b-instruct
        replicas: {min: 1, max: 2}
        env: {NIM_MAX_MODEL_LEN: marker}
        cache: {type: existingClaim, claimName: nim-model-cache, subPath: llama3-8b-instruct}
        profile: 8835c31752fbc67ef658b20a9f78e056914fdef0660206d82f252d62fd96064d
        cacheWarmup: {profiles: [8835c31752fbc67ef658b20a9f78e056914fdef0660206d82f252d62fd96064d]}
        gateway: {name: llama3, aliases: [llama3-8b], tokensPerMinute: 100}
      - name: llama3-8b-b
        image: nvcr.io/nim/meta/llama3-8b-instruct:1.0.3
        cache: {type: claimTemplate, size: 50Gi, storageClassName: gp3}
        gateway: {name: llama3-b}
      - name: llama-3-1-8b-l40s
        image: nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3
        nodePool: l40s
        gateway: {enabled: false}
        profile: {engine: tensorrt_llm, precision: bf16, kind: throughput, tensorParallel: 1, lora: false}
""")

# What a free-text field must survive: YAML structure, comments, anchors, tags, block scalars, flow
# collections, Go templates (Helm's and External Secrets'), quotes, and characters YAML escapes.
HOSTILE_TEXT = ("line one\nkey: value # not a comment\n  tags: {Name: '*'}\n- item\n"
                "{{ .Release.Name }} {{- fail \"boom\" }} {{`raw`}}\n'single' \"double\" `back` * &anchor *alias "
                "!!binary !tag\n| pipe > fold % @ , [ ] ? \\ \t tab\x85next\u2028sep ")

# For identifier fields: each must be refused, with the field's path. A valid value plus a newline tests
# whole-string matching; the rest carry one metacharacter class each.
HOSTILE_IDS = ["\n", "a\n  tags: {Name: '*'}", "a: b", "a #b", "{{ .Release.Name }}", "a'b\"c", "*", "&a !b",
               "- a", "a|b"]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _is_string(node: dict[str, Any]) -> bool:
    kinds = node.get("type")
    return kinds == "string" or (isinstance(kinds, list) and "string" in kinds) or (
        "enum" in node and all(isinstance(v, str) for v in node["enum"]))


def _is_identifier(node: dict[str, Any]) -> bool:
    return "pattern" in node or "enum" in node or "x-format" in node


def _schema_strings(schema: dict[str, Any], node: dict[str, Any]) -> Iterator[int]:
    """id() of every string-valued schema node (and of every propertyNames node)."""
    node = _resolve(schema, node)
    if _is_string(node):
        yield id(node)
    for child in node.get("properties", {}).values():
        yield from _schema_strings(schema, child)
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(node.get(key), dict):
            yield from _schema_strings(schema, node[key])


def _fields(schema: dict[str, Any], node: dict[str, Any], doc: Any, path: list[Any]
            ) -> Iterator[tuple[list[Any], dict[str, Any], bool]]:
    """(path, schema node, is a key) of every string in `doc`, walking the schema alongside."""
    node = _resolve(schema, node)
    if _is_string(node) and isinstance(doc, str):
        yield path, node, False
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in node.get("properties", {}):
                yield from _fields(schema, node["properties"][key], value, [*path, key])
            elif isinstance(node.get("additionalProperties"), dict):
                if isinstance(node.get("propertyNames"), dict):
                    yield [*path, key], _resolve(schema, node["propertyNames"]), True
                yield from _fields(schema, node["additionalProperties"], value, [*path, key])
    if isinstance(doc, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(doc):
            yield from _fields(schema, node["items"], item, [*path, index])


# Fields that exclude each other (gateway.auth is apiKeys or oidc) are covered by variants of FULL.
VARIANTS = {"full": FULL, "oidc": FULL.replace(
    "auth: {apiKeys: {externalSecret: nim/gateway-api-keys, clients: [team-a], secret: gateway-api-keys}}",
    "auth: {oidc: {issuer: 'https://login.example.com/realms/ai', jwksUri: 'https://login.example.com/jwks',"
    " audiences: [nim], clientClaim: team}}").replace(
    'tls: {acmCertificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"}',
    "tls: {certManager: {issuer: letsencrypt, kind: Issuer}}")}


def _all_fields() -> list[tuple[str, list[Any], dict[str, Any], bool]]:
    """(variant, path, schema node, is a key) of every string of every variant; a path of FULL once."""
    schema = environment_schema()
    found, seen = [], set()
    for variant, text in VARIANTS.items():
        for path, node, is_key in _fields(schema, schema, load_plain(text), []):
            if (json_path(path), is_key) not in seen:
                seen.add((json_path(path), is_key))
                found.append((variant, path, node, is_key))
    return found


def _set(doc: Any, path: list[Any], value: str, *, key: bool = False) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if key:
        parent[value] = parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


def _load(root: Path, doc: Any) -> Any:
    text = dump(doc)
    assert load_plain(text) == doc, "the test's YAML writer must round-trip the hostile value"
    return load_environment(write_env(root, text, dedent=False), root)


def test_full_environment_is_valid_and_covers_every_string_field(tmp_path: Path) -> None:
    for variant, text in VARIANTS.items():
        env = _load(tmp_path / variant, load_plain(text))
        assert env.name == "hostile"
    schema = environment_schema()
    covered = {id(node) for _, _, node, _ in _all_fields()}
    missing = set(_schema_strings(schema, schema)) - covered
    assert not missing, "FULL lacks string fields of the schema: add them so they are tested"


IDENTIFIERS = [(variant, path, is_key) for variant, path, node, is_key in _all_fields() if _is_identifier(node)]


@pytest.mark.parametrize(("variant", "path", "is_key"), IDENTIFIERS,
                         ids=[json_path(p) + ("" if v == "full" else f" ({v})") for v, p, _ in IDENTIFIERS])
def test_identifier_fields_refuse_metacharacters_with_their_path(tmp_path: Path, variant: str, path: list[Any],
                                                                   is_key: bool) -> None:
    base = load_plain(VARIANTS[variant])
    original = path[-1] if is_key else _get(base, path)
    for hostile in HOSTILE_IDS:
        value = original + hostile if hostile == "\n" else hostile
        doc = _set(base, path, value, key=is_key)
        with pytest.raises(ConfigError) as caught:
            _load(tmp_path, doc)
        where = json_path([*path[:-1], value]) if is_key else json_path(path)
        assert where in {p.path for p in caught.value.problems}, (value, caught.value.render())


def _get(doc: Any, path: list[Any]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


FREE_TEXT = [path for _, path, node, is_key in _all_fields() if not is_key and not _is_identifier(node)]


def test_free_text_fields_are_the_expected_few() -> None:
    # A new free-text field must be a deliberate choice: it needs quoting wherever it is rendered.
    assert sorted(json_path(p) for p in FREE_TEXT) == [
        "$.description", "$.modelDefaults.env.NIM_DEFAULT", "$.models[0].env.NIM_MAX_MODEL_LEN",
        "$.prerequisites[0].description"]


def _rendered(root: Path, engine: helm.Engine, doc: Any) -> dict[str, Any]:
    """Every parsed Argo CD file and every object Helm renders for its Applications of local charts."""
    env = _load(root, doc)
    tree = render_environment(env)
    out = root / "out"
    shutil.rmtree(out, ignore_errors=True)
    for relative, text in tree.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(text, encoding="utf-8")
    found: dict[str, Any] = {}
    for relative, text in sorted(tree.items()):
        if relative.parts[0] != "argocd" or relative.suffix != ".yaml":
            continue
        document = load_plain(text)
        found[str(relative)] = document
        source = document.get("spec", {}).get("source", {}) if document.get("kind") == "Application" else {}
        if "helm" in source and "path" in source and (out / source["path"]).is_dir():
            found[f"{relative}: helm"] = application_objects(engine, out, document)
    return found


def _replace(data: Any, old: str, new: str) -> Any:
    if isinstance(data, dict):
        return {_replace(k, old, new): _replace(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace(item, old, new) for item in data]
    return new if data == old else data


# Free text that only people read: it goes into the environment README, never into an object.
README_ONLY = ["$.prerequisites[0].description"]
IN_OBJECTS = [path for path in FREE_TEXT if json_path(path) not in README_ONLY]


@pytest.mark.parametrize("path", IN_OBJECTS, ids=[json_path(p) for p in IN_OBJECTS])
def test_free_text_reaches_rendered_objects_exactly(tmp_path: Path, helm_engine: helm.Engine,
                                                    path: list[Any]) -> None:
    marker = "nimgen-marker-7f3a"
    base = load_plain(FULL)
    expected = _replace(_rendered(tmp_path / "a", helm_engine, _set(base, path, marker)), marker, HOSTILE_TEXT)
    actual = _rendered(tmp_path / "b", helm_engine, _set(base, path, HOSTILE_TEXT))
    assert json.dumps(actual, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert HOSTILE_TEXT in set(_strings(actual)), "the value must reach some rendered object"


def test_readme_only_text_stays_on_its_line(tmp_path: Path) -> None:
    doc = _set(load_plain(FULL), ["prerequisites", 0, "description"], HOSTILE_TEXT)
    root = tmp_path / "repo"
    env_file = root / "environments" / "hostile.yaml"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(dump(doc))
    assert run("render", env_file).exit_code == 0
    readme = (root / "argocd" / "hostile" / "README.md").read_text()
    [line] = [line for line in readme.splitlines() if line.startswith("- `Secret nim/hf-token`: ")]
    assert line.endswith("; " + " ".join(HOSTILE_TEXT.split()))  # after the reason secretEnv gives


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)
    elif isinstance(data, str):
        yield data


def test_env_value_lands_in_the_container_verbatim(tmp_path: Path, helm_engine: helm.Engine) -> None:
    objects = _rendered(tmp_path, helm_engine, _set(load_plain(FULL), ["models", 0, "env", "NIM_MAX_MODEL_LEN"],
                                                     HOSTILE_TEXT))
    [workload] = [o for o in objects["argocd/hostile/apps/models/llama3-8b-instruct.yaml: helm"]
                  if o["kind"] == "StatefulSet"]
    env = {e["name"]: e.get("value") for e in workload["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NIM_MAX_MODEL_LEN"] == HOSTILE_TEXT
    assert env["NIM_DEFAULT"] == "marker"


def test_discovery_tag_with_newline_is_refused_through_import_terraform(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE_ENVIRONMENTS, root / "environments")
    outputs = {
        "cluster_name": "nim-prod", "region": "us-west-2", "kubernetes_version": "1.33",
        "karpenter_node_role": "KarpenterNodeRole-nim-prod",
        "karpenter_discovery_tag": "nim-prod\n      tags: {Name: '*'}",
        "efs_file_system_id": "fs-0123456789abcdef0", "ngc_api_key_secret_name": "nim-prod/ngc-api-key",
        "cluster_secret_store_name": "aws-secrets-manager", "grafana_admin_secret_name": "nim-prod/grafana-admin",
        "open_webui_secret_name": "nim-prod/open-webui",
    }
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps({k: {"sensitive": False, "value": v} for k, v in outputs.items()}))
    before = tree_digest(root)
    result = run("import-terraform", outputs_file, root / "environments/prod.yaml")
    assert result.exit_code == 1, result.output
    assert "$.cluster.karpenter.discoveryTag: invalid value" in result.output
    assert "Traceback" not in result.output
    assert tree_digest(root) == before
