"""Where `nimgen validate` gets schemas and charts: folders, kubeconform templates, URLs (fetched once), chart caches,
and a `helm` binary when the in-process engine is missing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import run
from nimgen import helm
from nimgen.validation.runner import Options
from nimgen.validation.runner import validate as run_validate
from nimgen.validation.schemas import SchemaLocation
from nimgen.yamlio import dump, load_plain
from test_validate import own

TEMPLATE = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"



@pytest.fixture()
def schema_server(crd_schemas: Path) -> Iterator[tuple[str, list[str]]]:
    """The CRD schema folder over HTTP on 127.0.0.1, recording every request path."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(crd_schemas)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def _prod(root: Path) -> Path:
    return root / "environments" / "prod.yaml"


def test_kubeconform_template_location(rendered_repo: Path, crd_schemas: Path) -> None:
    result = run("validate", _prod(rendered_repo), "--schema-location", f"{crd_schemas}/{TEMPLATE}")
    assert result.exit_code == 0, result.output


def test_location_from_the_environment(rendered_repo: Path, crd_schemas: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("NIMGEN_SCHEMA_LOCATION", str(crd_schemas))
    result = run("validate", _prod(rendered_repo))
    assert result.exit_code == 0, result.output


def test_unknown_template_variable_is_refused(rendered_repo: Path) -> None:
    result = run("validate", _prod(rendered_repo), "--schema-location", "/x/{{.Kind}}.json")
    assert result.exit_code == 1
    assert "error: schema location /x/{{.Kind}}.json uses unknown variables: Kind" in result.output


def test_url_schemas_are_fetched_once_into_the_cache(rendered_repo: Path, schema_server: Any, tmp_path: Path,
                                                     monkeypatch: Any) -> None:
    base, requests = schema_server
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = run("validate", _prod(rendered_repo), "--schema-location", f"{base}/{TEMPLATE}")
    assert first.exit_code == 0, first.output
    fetched = sorted(requests)
    assert "/argoproj.io/application_v1alpha1.json" in fetched and len(fetched) == len(set(fetched))
    assert list((tmp_path / "cache" / "nimgen" / "schemas").glob("*.json"))
    requests.clear()
    second = run("validate", _prod(rendered_repo), "--schema-location", f"{base}/{TEMPLATE}")
    assert second.exit_code == 0 and requests == []  # everything came from the cache
    assert second.output == first.output


def test_offline_catalog_names_the_missing_schema(rendered_repo: Path, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # Port 9 (discard) on 127.0.0.1 has no server here: the fetch fails the way it does offline.
    result = run("validate", _prod(rendered_repo), "--schema-location", f"http://127.0.0.1:9/{TEMPLATE}")
    assert result.exit_code == 1
    assert (f"[schema-location] cannot reach the schema location http://127.0.0.1:9/{TEMPLATE}" in result.output)
    assert "hint: offline or air-gapped: give --schema-location DIR or set NIMGEN_SCHEMA_LOCATION=DIR" in result.output


def test_external_chart_from_the_chart_cache(repo_copy: Path, crd_schemas: Path, tmp_path: Path) -> None:
    import helm_python

    chart = repo_copy / "charts" / "nim-observability"
    version = load_plain((chart / "Chart.yaml").read_text())["version"]
    cache = tmp_path / "charts"
    cache.mkdir()
    helm_python.package(str(chart), destination=str(cache))
    assert (cache / f"nim-observability-{version}.tgz").is_file()
    before = run("validate", _prod(repo_copy), "--schema-location", str(crd_schemas))
    # The dashboards Application taking its chart from a Helm repository instead of this one (recorded as
    # nimgen's, so that only rendering speaks).
    relative = "argocd/prod/apps/platform/nim-observability.yaml"
    platform = load_plain((repo_copy / relative).read_text())
    platform["spec"]["source"] = {"repoURL": "https://prometheus-community.github.io/helm-charts",
                                  "chart": "nim-observability", "targetRevision": version,
                                  "helm": platform["spec"]["source"]["helm"]}
    (repo_copy / relative).write_text(dump(platform))
    own(repo_copy, relative)
    without = run("validate", _prod(repo_copy), "--schema-location", str(crd_schemas))
    assert without.exit_code == 0, without.output
    assert "notice: prod/nim-observability Application argocd/nim-observability: [render] not rendered " \
           "offline: chart nim-observability" in without.output
    cached = run("validate", _prod(repo_copy), "--schema-location", str(crd_schemas), "--chart-cache", str(cache))
    assert cached.exit_code == 0, cached.output
    assert "not rendered offline: chart nim-observability" not in cached.output
    count = [int(line.split()[0]) for line in (before.output, without.output, cached.output)
             for line in [line.splitlines()[-1]]]
    assert count[2] == count[1] + 1 == count[0]  # the dashboard ConfigMap, rendered from the archive


def test_helm_binary_engine_matches_the_in_process_one(rendered_repo: Path, crd_schemas: Path,
                                                       helm_binary: helm.BinaryEngine) -> None:
    # A real helm command line (conftest.helm_binary), not a stand-in built on the in-process engine.
    options = Options((SchemaLocation.parse(str(crd_schemas)),))
    binary = run_validate([_prod(rendered_repo)], options, engine=helm_binary)
    in_process = run_validate([_prod(rendered_repo)], options, engine=helm.engine())
    assert binary.manifests == in_process.manifests and binary.manifests > 30
    assert binary.sorted_findings() == in_process.sorted_findings()


def test_split_manifests_keeps_documents_of_one_template_together() -> None:
    text = "---\n# Source: c/templates/a.yaml\nkind: A\n---\n# Source: c/templates/b.yaml\nkind: B1\n" \
           "---\n# Source: c/templates/b.yaml\nkind: B2\n"
    assert helm.split_manifests(text) == {"c/templates/a.yaml": "kind: A\n",
                                          "c/templates/b.yaml": "kind: B1\n---\nkind: B2\n"}


def test_dump_roundtrip_helper_is_stable() -> None:
    assert load_plain(dump({"a": [1, {"b": "c"}]})) == {"a": [1, {"b": "c"}]}
