"""Pinned upstream charts rendered offline: the archives in charts/upstream/ (their record in SOURCES.md), each
chart rendered with nimgen's values and checked against Kubernetes' and the CRD schemas, `nimgen validate`
reading charts/upstream/ by default, and its check that every value path nimgen sets exists in the chart.

Tests that read the real archives take them from charts/upstream/, else from $NIMGEN_UPSTREAM_CHARTS, else from
../shared/upstream-charts/; without any they skip (they fail instead when NIMGEN_REQUIRE_UPSTREAM_CHARTS=1).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
from conftest import EXAMPLE_NAMES, PROJECT, example_environment, read_yaml
from helpers import run
from kube import crd_errors, crd_schema_path, kubernetes_errors
from nimgen import helm
from nimgen.gitops.charts import shipped_charts
from nimgen.gitops.ownership import Scope
from nimgen.validation import chartvalues, policy
from nimgen.validation.sources import UPSTREAM_CHARTS, cluster_api_versions
from nimgen.validation.yamldocs import documents
from nimgen.yamlio import dump, load_all_plain, load_plain
from test_validate import own

UPSTREAM = PROJECT / UPSTREAM_CHARTS
SOURCES = UPSTREAM / "SOURCES.md"


# --- what the examples pin, and what SOURCES.md records ------------------------------------------------------

def upstream_applications(root: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """(environment, file, Application) of every Application that installs a chart from a Helm repository."""
    found = []
    for name in EXAMPLE_NAMES:
        for path in sorted((root / "argocd" / name).rglob("*.yaml")):
            for doc in load_all_plain(path.read_text(encoding="utf-8")):
                if isinstance(doc, dict) and doc.get("kind") == "Application" and doc["spec"].get("source", {}).get(
                        "chart"):
                    found.append((name, path, doc))
    return found


def pins(root: Path) -> dict[str, tuple[str, str, str]]:
    """archive name -> (chart, version, Helm repository) of every upstream chart the examples install."""
    return {f"{s['chart']}-{s['targetRevision']}.tgz": (s["chart"], str(s["targetRevision"]), s["repoURL"])
            for _, _, app in upstream_applications(root) for s in [app["spec"]["source"]]}


def recorded() -> dict[str, dict[str, str]]:
    """SOURCES.md's archive table: archive name -> its columns."""
    rows: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            columns = []
        elif cells[0] == "archive":
            columns = cells
        elif columns and not set(cells[0]) <= {"-", " "}:
            rows[cells[0].strip("`")] = dict(zip(columns, cells, strict=True))
    return rows


def test_sources_record_every_pinned_chart(rendered_repo: Path) -> None:
    pinned, rows = pins(rendered_repo), recorded()
    assert {"kube-prometheus-stack", "prometheus-adapter", "dcgm-exporter", "nvidia-device-plugin"} <= {
        chart for chart, _, _ in pinned.values()}
    for archive, (chart, version, repository) in pinned.items():
        assert archive in rows, f"{archive}: no row in {SOURCES}"
        row = rows[archive]
        assert (row["chart"], row["version"], row["Helm repository"]) == (chart, version, repository)
        assert re.fullmatch(r"[0-9a-f]{64}", row["sha256"]), row
        assert re.search(r"\b[0-9a-f]{40}\b", row["source (tag, commit)"]), row


def test_render_cannot_write_charts_upstream() -> None:
    # charts/upstream/ is no chart nimgen ships, so no ownership record may name a file in it: render never
    # writes, deletes or cleans up there.
    assert "upstream" not in shipped_charts()
    for scope in (Scope("prod"), Scope("prod", bench=True)):
        assert PurePosixPath("charts/upstream") not in scope.roots()
        reason = scope.why_not(PurePosixPath("charts/upstream/kube-prometheus-stack-79.5.0.tgz"))
        assert reason is not None and reason.startswith("outside the folders this record owns"), reason


# --- the value-path check on small charts made here ----------------------------------------------------------

def package(folder: Path, name: str, version: str, files: dict[str, str | bytes]) -> Path:
    """A chart archive as `helm pull` writes it (every file under <name>/), made without Helm."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{name}-{version}.tgz"
    files = {"Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n", **files}
    with tarfile.open(archive, "w:gz") as tar:
        for relative, text in files.items():
            data = text if isinstance(text, bytes) else text.encode("utf-8")
            info = tarfile.TarInfo(f"{name}/{relative}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_value_paths_against_values_yaml_subcharts_and_schema(tmp_path: Path) -> None:
    database = package(tmp_path / "sub", "database", "1.0.0", {
        "values.yaml": "port: 5432\nauth: {user: app}\nglobal:\n  imageRegistry: ''\n"})
    schema = {"type": "object", "properties": {
        "extra": {"type": "object", "additionalProperties": {"type": "string"}},
        "closed": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "open": {"type": "object"},
        "ref": {"$ref": "#/$defs/ref"}},
        "$defs": {"ref": {"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]}}}
    archive = package(tmp_path / "cache", "app", "2.0.0", {
        "Chart.yaml": "apiVersion: v2\nname: app\nversion: 2.0.0\n"
                      "dependencies:\n- {name: database, alias: db, version: 1.0.0}\n",
        "values.yaml": "service:\n  port: 80\n  annotations: {}\ntolerations: []\nresources:\nname: app\n"
                       "db:\n  enabled: true\n",
        "values.schema.json": json.dumps(schema),
        "charts/database-1.0.0.tgz": database.read_bytes(),  # as `helm dependency build` leaves it
    })
    chart = chartvalues.load(archive)
    assert chart.name == "app" and set(chart.subcharts) == {"db"}

    def unknown(values: dict[str, Any]) -> list[str]:
        return [".".join(u.path) for u in chartvalues.unknown_paths(values, chart)]

    assert unknown({"service": {"port": 8080, "annotations": {"a.b/c": "d", "deep": {"er": 1}}},
                    "tolerations": [{"key": "k"}], "resources": {"limits": {"cpu": 1}}, "name": "x",
                    "db": {"enabled": False, "port": 1, "auth": {"user": "u"}},
                    "global": {"imageRegistry": "r.example.com"}}) == []
    # A map set where values.yaml documents a list or a scalar is free-form too: Helm replaces it whole.
    assert unknown({"tolerations": {"free": 1}, "name": {"free": 1}}) == []
    assert unknown({"servce": {"port": 1}, "service": {"prot": 1, "annotations": {}},
                    "db": {"prot": 1, "auth": {"usr": "u"}}, "global": {"imageRegistri": "r"}}) == [
        "servce", "service.prot", "db.prot", "db.auth.usr", "global.imageRegistri"]
    # The schema admits what it names or leaves open; a schema listing properties documents only those.
    assert unknown({"extra": {"anything": "x"}, "open": {"any": {"thing": 1}}, "closed": {"x": 1},
                    "ref": {"a": 1, "b": 2}}) == []
    assert unknown({"closed": {"y": 1}, "ref": {"c": 1}}) == ["closed.y", "ref.c"]


def fake_dcgm(cache: Path, version: str) -> Path:
    """A stand-in for the dcgm-exporter chart: the values nimgen sets documented, one ConfigMap rendered."""
    return package(cache, "dcgm-exporter", version, {
        "values.yaml": "serviceMonitor:\n  enabled: false\n  honorLabels: false\n  interval: 15s\n"
                       "resources: {}\ntolerations: []\naffinity: {}\n",
        "templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-probe\n"
                                    "data:\n  honorLabels: {{ .Values.serviceMonitor.honorLabels | quote }}\n"})


def findings(result: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(result.output)["findings"]
    return found


def validate_json(root: Path, schemas: Path, *args: str, env: str = "prod") -> tuple[dict[str, Any], list[dict]]:
    """Summary and findings of `nimgen validate` on one example environment of `root` ("*": all of them)."""
    files = [root / "environments" / f"{name}.yaml" for name in (EXAMPLE_NAMES if env == "*" else [env])]
    result = run("validate", *files, "--schema-location", str(schemas), "--output", "json", *args)
    assert result.exit_code in (0, 1), result.output
    document = json.loads(result.output)
    return document["summary"], document["findings"]


def about(found: list[dict[str, Any]], *apps: str) -> list[dict[str, Any]]:
    """The findings on these Applications: in what they render, or on the Application itself."""
    return [f for f in found if f["application"] in apps or f["object"] in {f"Application argocd/{a}" for a in apps}]


def offline_notices(found: list[dict[str, Any]]) -> dict[str, str]:
    return {f["application"]: f["message"] for f in found if "not rendered offline" in f["message"]}


DCGM_APP = "argocd/prod/apps/platform/dcgm-exporter.yaml"


def test_validate_reads_charts_upstream_by_default(repo_copy: Path, crd_schemas: Path, tmp_path: Path) -> None:
    version = str(read_yaml(repo_copy / DCGM_APP)["spec"]["source"]["targetRevision"])
    before, found = validate_json(repo_copy, crd_schemas)
    assert "dcgm-exporter" in offline_notices(found)
    assert offline_notices(found)["dcgm-exporter"].endswith(
        "(put its `helm pull` archive in charts/upstream/ or give --chart-cache DIR)")
    fake_dcgm(repo_copy / "charts" / "upstream", version)
    after, found = validate_json(repo_copy, crd_schemas)
    assert "dcgm-exporter" not in offline_notices(found)
    assert len(offline_notices(found)) == before["notices"] - 1 > 0  # the other charts: no archive here
    assert after["manifests"] == before["manifests"] + 1  # the stand-in's ConfigMap
    assert [f for f in about(found, "dcgm-exporter") if f["check"] in ("render", "chart-values")] == []
    # --chart-cache replaces the default.
    empty = tmp_path / "empty"
    empty.mkdir()
    _, found = validate_json(repo_copy, crd_schemas, "--chart-cache", str(empty))
    assert f"(not in the chart cache {empty})" in offline_notices(found)["dcgm-exporter"]


def test_validate_reports_a_misspelled_value_path(repo_copy: Path, crd_schemas: Path) -> None:
    app = read_yaml(repo_copy / DCGM_APP)
    fake_dcgm(repo_copy / "charts" / "upstream", str(app["spec"]["source"]["targetRevision"]))
    _, found = validate_json(repo_copy, crd_schemas)
    assert not [f for f in found if f["check"] == "chart-values"]  # what nimgen sets exists in the chart
    monitor = app["spec"]["source"]["helm"]["valuesObject"]["serviceMonitor"]
    monitor["honourLabels"] = monitor.pop("honorLabels")
    app["spec"]["source"]["helm"]["parameters"] = [{"name": "serviceMonitor.intervall", "value": "30s"}]
    (repo_copy / DCGM_APP).write_text(dump(app))
    own(repo_copy, DCGM_APP)
    result = run("validate", repo_copy / "environments/prod.yaml", "--schema-location", str(crd_schemas))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "[chart-values]" in line]
    assert lines == [
        ("error: prod/prod-root Application argocd/dcgm-exporter spec.source.helm.parameters[0].serviceMonitor."
         "intervall: [chart-values] chart dcgm-exporter 3.4.2 has no value serviceMonitor.intervall: Helm ignores it "
         "and renders as if it were not set"),
        ("error: prod/prod-root Application argocd/dcgm-exporter spec.source.helm.valuesObject.serviceMonitor."
         "honourLabels: [chart-values] chart dcgm-exporter 3.4.2 has no value serviceMonitor.honourLabels: Helm "
         "ignores it and renders as if it were not set")], result.output
    assert "hint: did you mean 'honorLabels'? set a value the chart's values.yaml documents " \
           "(dcgm-exporter-3.4.2.tgz)" in result.output


# --- the real archives ---------------------------------------------------------------------------------------

# Where the team's shared reference data would hold them (beside crd-schemas/), for checkouts without archives.
SHARED_ARCHIVES = Path(__file__).resolve().parents[2] / "shared" / "upstream-charts"


def _archive_folder() -> Path | None:
    configured = os.environ.get("NIMGEN_UPSTREAM_CHARTS")
    for candidate in (UPSTREAM, Path(configured) if configured else None, SHARED_ARCHIVES):
        if candidate is not None and candidate.is_dir() and any(candidate.glob("*.tgz")):
            return candidate
    return None


@pytest.fixture(scope="session")
def upstream_archives() -> Path:
    """The folder of the pinned charts' archives; skips (fails with NIMGEN_REQUIRE_UPSTREAM_CHARTS=1) without."""
    found = _archive_folder()
    if found is None:
        reason = f"no upstream chart archives in {UPSTREAM}, $NIMGEN_UPSTREAM_CHARTS or {SHARED_ARCHIVES}"
        if os.environ.get("NIMGEN_REQUIRE_UPSTREAM_CHARTS") == "1":
            pytest.fail(reason + " (NIMGEN_REQUIRE_UPSTREAM_CHARTS=1)")
        pytest.skip(reason)
    return found


def archive_files(archive: Path) -> dict[str, bytes]:
    """Every file of a chart archive by its path inside the archive."""
    with tarfile.open(archive) as tar:
        return {m.name: handle.read() for m in tar.getmembers() if m.isfile()
                for handle in [tar.extractfile(m)] if handle is not None}


def test_archives_are_the_recorded_pinned_versions(upstream_archives: Path, rendered_repo: Path) -> None:
    rows = recorded()
    for archive, (chart, version, _) in pins(rendered_repo).items():
        path = upstream_archives / archive
        assert path.is_file(), f"{archive} is missing from {upstream_archives}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rows[archive]["sha256"], archive
        files = archive_files(path)
        metadata = load_plain(files[f"{chart}/Chart.yaml"].decode())
        assert (metadata["name"], str(metadata["version"])) == (chart, version)
        # Every dependency is inside, at the version Chart.yaml pins (or its Chart.lock resolved).
        locked = {d["name"]: str(d["version"]) for d in
                  (load_plain(files[f"{chart}/Chart.lock"].decode()) if f"{chart}/Chart.lock" in files else {}).get(
                      "dependencies", [])}
        packaged = {meta["name"]: str(meta["version"]) for name, data in files.items()
                    if re.fullmatch(rf"{re.escape(chart)}/charts/[^/]+/Chart\.yaml", name)
                    for meta in [load_plain(data.decode())]}
        for dependency in metadata.get("dependencies") or []:
            name = dependency["name"]
            assert name in packaged, f"{archive}: dependency {name} is not packaged in charts/"
            assert fnmatch.fnmatchcase(packaged[name], str(dependency["version"])), (archive, name, packaged[name])
            assert packaged[name] == locked.get(name, packaged[name]), (archive, name)


def test_a_plain_equals_sign_reads_as_argo_cd_reads_it() -> None:
    # Prometheus Operator's AlertmanagerConfig CRD (in kube-prometheus-stack) lists `- =` as an enum member.
    assert documents("enum:\n- =\n- '!='\nop: =\n") == [{"enum": ["=", "!="], "op": "="}]


def chart_crds(archive: Path) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of a chart's crds/ folders, its subcharts' too (enabled or not): Argo CD applies them
    before the templates (helm template --include-crds)."""
    return [crd for name, data in sorted(archive_files(archive).items())
            if PurePosixPath(name).parent.name == "crds" and name.endswith((".yaml", ".yml"))
            for crd in documents(data.decode())  # Argo CD's reading: `- =` is the string "="
            if isinstance(crd, dict) and crd.get("kind") == "CustomResourceDefinition"]


def _validators(crds: list[dict[str, Any]]) -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> the schema a CRD gives its objects."""
    return {(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"]):
            jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])
            for crd in crds for version in crd["spec"]["versions"]}


def _objects(engine: helm.Engine, archive: Path, app: dict[str, Any], env_name: str) -> list[dict[str, Any]]:
    """What Argo CD applies for an upstream Application: its chart rendered with its release, namespace and
    values, for the cluster's Kubernetes version and API versions, as validate renders it."""
    env = example_environment(env_name)
    source = app["spec"]["source"]
    rendered = engine.template(archive, source["helm"]["valuesObject"], release=source["helm"]["releaseName"],
                               namespace=app["spec"]["destination"]["namespace"],
                               kube_version=env.kubernetes_version, api_versions=cluster_api_versions(env))
    # Argo CD's reading: the AlertmanagerConfig CRD's `- =` is the string "=".
    return [d for p, t in sorted(rendered.items()) if not p.endswith("NOTES.txt") for d in documents(t)
            if isinstance(d, dict)]


def test_each_pinned_chart_renders_and_passes_the_schemas(upstream_archives: Path, rendered_repo: Path,
                                                         helm_engine: helm.Engine, crd_schemas: Path,
                                                         helm_binary: helm.BinaryEngine) -> None:
    problems: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for env_name, _, app in upstream_applications(rendered_repo):
        source = app["spec"]["source"]
        archive = upstream_archives / f"{source['chart']}-{source['targetRevision']}.tgz"
        version = example_environment(env_name).kubernetes_version
        # shared/crd-schemas lacks some kinds kube-prometheus-stack renders (Prometheus, Alertmanager): those are
        # checked against the CRDs the chart itself ships.
        crds = chart_crds(archive)
        own_crds = _validators(crds)
        objects = _objects(helm_engine, archive, app, env_name)
        # The engine renders the CRDs `helm template --include-crds` prints, as Argo CD applies them.
        by_binary = [d for t in helm_binary.template(archive, app["spec"]["source"]["helm"]["valuesObject"],
                                                     release="x", namespace="x", kube_version="1.33").values()
                     for d in documents(t) if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
        assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition") == sorted(
            d["metadata"]["name"] for d in by_binary), archive.name
        counts[f"{env_name}/{source['chart']}"] = len(objects)
        for obj in objects:
            key = (obj["apiVersion"], obj["kind"])
            if crd_schema_path(obj, crd_schemas).is_file():
                errors = crd_errors(obj, crd_schemas)
            elif key in own_crds:
                errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in own_crds[key].iter_errors(obj)]
            else:
                errors = kubernetes_errors(obj, version)
            if errors:
                problems[f"{env_name}/{app['metadata']['name']} {obj['kind']} {obj['metadata']['name']}"] = errors
    assert problems == {}
    assert counts["prod/kube-prometheus-stack"] > 100 and counts["prod/prometheus-adapter"] > 5
    assert counts["prod/dcgm-exporter"] > 3 and counts["dev/nvidia-device-plugin"] >= 1


def test_validate_renders_the_examples_offline(upstream_archives: Path, repo_copy: Path, crd_schemas: Path) -> None:
    upstream = {app["metadata"]["name"] for _, _, app in upstream_applications(repo_copy)}
    before, _ = validate_json(repo_copy, crd_schemas, env="*")
    shutil.copytree(upstream_archives, repo_copy / UPSTREAM_CHARTS, dirs_exist_ok=True)
    after, found = validate_json(repo_copy, crd_schemas, env="*")
    assert before["notices"] >= 5 and offline_notices(found) == {}
    assert after["manifests"] > before["manifests"] + 100
    assert [f for f in about(found, *upstream) if f["check"] in ("render", "chart-values")] == []
    # Every chart rendered, the examples pass every rule; what a chart cannot meet is waived where it is, each
    # waiver matching one finding (none stale, none hiding two).
    assert [f"{f['application']} {f['object']} {f['path']}: {f['message']}" for f in found
            if f["severity"] == "error"] == []
    waived = sorted((f["environment"], f["application"], f["object"].split(" ")[0], f["check"]) for f in found
                    if "(waived: " in f["message"])
    assert waived == sorted((name, app, ref.kind, f"policy/{rule}") for name in EXAMPLE_NAMES
                            for (app, rule, ref, _), _ in policy.waivers(example_environment(name)).items())
    # A misspelled path in a real chart's values: the Grafana subchart of kube-prometheus-stack.
    relative = "argocd/prod/apps/platform/kube-prometheus-stack.yaml"
    app = read_yaml(repo_copy / relative)
    admin = app["spec"]["source"]["helm"]["valuesObject"]["grafana"]["admin"]
    admin["existingSecrets"] = admin.pop("existingSecret")
    (repo_copy / relative).write_text(dump(app))
    own(repo_copy, relative)
    _, found = validate_json(repo_copy, crd_schemas)
    assert [(f["application"], f["path"], f["hint"].split("?")[0]) for f in found if f["check"] == "chart-values"] == [
        ("prod-root", "spec.source.helm.valuesObject.grafana.admin.existingSecrets", "did you mean 'existingSecret'")]


def test_envoy_gateways_configuration_is_passed_on_whole(repo_copy: Path, crd_schemas: Path) -> None:
    """gateway-helm writes config.envoyGateway into its EnvoyGateway configuration as it is: keys its values.yaml
    does not list (extensionManager, rateLimit) are that API's, not misspellings; a key outside it still is one."""
    app_file = "argocd/prod/apps/platform/envoy-gateway.yaml"
    app = read_yaml(repo_copy / app_file)
    package(repo_copy / "charts" / "upstream", "gateway-helm", str(app["spec"]["source"]["targetRevision"]), {
        "values.yaml": "config:\n  envoyGateway:\n    gateway: {controllerName: x}\n    provider: {type: Kubernetes}\n"
                       "createNamespace: false\ntopologyInjector:\n  enabled: true\n"
                       "certgen:\n  job:\n    resources: {}\n",
        "templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: envoy-gateway-config\n"
                                    "data:\n  envoy-gateway.yaml: {{ .Values.config.envoyGateway | toJson | quote }}\n"})
    _, found = validate_json(repo_copy, crd_schemas)
    assert [f for f in about(found, "envoy-gateway") if f["check"] == "chart-values"] == []
    assert "extensionManager" in app["spec"]["source"]["helm"]["valuesObject"]["config"]["envoyGateway"]
    app["spec"]["source"]["helm"]["valuesObject"]["topologyInjecter"] = {"enabled": False}
    (repo_copy / app_file).write_text(dump(app))
    own(repo_copy, app_file)
    _, found = validate_json(repo_copy, crd_schemas)
    assert [f["path"] for f in about(found, "envoy-gateway") if f["check"] == "chart-values"] == [
        "spec.source.helm.valuesObject.topologyInjecter"]
