"""Everything nimgen renders passes checkov's Kubernetes checks, bar the ones skipped in policy/checkov.yaml.

"Everything" is what Argo CD applies from this repository: the Applications and AppProjects, and each
nimgen chart (nim-llm per model, gpu-nodepools, model-storage, nim-observability) rendered with its
Application's values, as Argo CD renders it. Upstream charts (kube-prometheus-stack, ...) are not ours.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

# checkov is in nimgen[test]: imported directly, so a broken test install fails instead of skipping.
from checkov.common.checks_infra.registry import get_graph_checks_registry
from checkov.kubernetes.checks.resource.registry import registry as resource_registry
from checkov.kubernetes.runner import Runner
from checkov.runner_filter import RunnerFilter
from conftest import EXAMPLE_NAMES, example_environment
from nimgen import helm
from nimgen.yamlio import load_all_plain, load_plain

SKIPS: list[dict[str, Any]] = load_plain(files("nimgen").joinpath("policy/checkov.yaml").read_text(encoding="utf-8"))
SKIP_IDS = [entry["id"] for entry in SKIPS]


def _write_manifests(root: Path, engine: helm.Engine, out: Path) -> list[Path]:
    """Each environment's Argo CD YAML, and each nimgen chart rendered with its Application's values."""
    written = []
    for env_name in EXAMPLE_NAMES:
        kube_version = example_environment(env_name).kubernetes_version
        for path in sorted((root / "argocd" / env_name).rglob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            target = out / f"{env_name}--{'--'.join(path.relative_to(root / 'argocd' / env_name).parts)}"
            target.write_text(text, encoding="utf-8")
            written.append(target)
            for app in load_all_plain(text):
                source = app.get("spec", {}).get("source", {}) if app.get("kind") == "Application" else {}
                if "helm" not in source or not source.get("path", "").startswith("charts/"):
                    continue  # the root Application (a folder of YAML) or an upstream chart
                rendered = engine.template(root / source["path"], source["helm"]["valuesObject"],
                                           release=source["helm"]["releaseName"],
                                           namespace=app["spec"]["destination"]["namespace"], kube_version=kube_version)
                manifests = [text for name, text in sorted(rendered.items()) if not name.endswith("NOTES.txt")
                             and text.strip()]
                target = out / f"{env_name}--rendered--{app['metadata']['name']}.yaml"
                target.write_text("\n---\n".join(manifests), encoding="utf-8")
                written.append(target)
    return written


@pytest.fixture(scope="module")
def manifest_dir(rendered_repo: Path, helm_engine: helm.Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("checkov")
    written = _write_manifests(rendered_repo, helm_engine, out)
    rendered = {p.name.split("--rendered--")[1] for p in written if "--rendered--" in p.name}
    assert {"gpu-nodepools.yaml", "model-storage.yaml", "nim-observability.yaml"} <= rendered
    assert {f"{m.name}.yaml" for env in EXAMPLE_NAMES for m in example_environment(env).models} <= rendered
    return out


def _scan(folder: Path, skip: list[str]) -> Any:
    report = Runner().run(root_folder=str(folder),
                          runner_filter=RunnerFilter(framework=["kubernetes"], skip_checks=skip or None,
                                                     show_progress_bar=False))
    assert report.parsing_errors == [], report.parsing_errors
    return report


def _describe(checks: list[Any]) -> str:
    return "\n".join(sorted(f"{c.check_id} {c.check_name}: {c.resource} ({Path(c.file_path).name})" for c in checks))


def test_everything_rendered_passes_checkov_with_the_listed_skips(manifest_dir: Path) -> None:
    report = _scan(manifest_dir, SKIP_IDS)
    assert report.passed_checks, "checkov found nothing to check"
    assert report.failed_checks == [], "checkov checks failed:\n" + _describe(report.failed_checks)
    # Skips live in policy/checkov.yaml only, never as checkov.io/skip annotations on a resource.
    assert report.skipped_checks == [], "skipped outside policy/checkov.yaml:\n" + _describe(report.skipped_checks)


def test_every_skip_has_a_reason_and_is_a_known_check() -> None:
    assert SKIPS and len(SKIP_IDS) == len(set(SKIP_IDS))
    for entry in SKIPS:
        assert set(entry) == {"id", "reason"}, entry
        assert isinstance(entry["reason"], str) and len(entry["reason"].split()) >= 10, entry["id"]
    graph_registry = get_graph_checks_registry("kubernetes")
    if not graph_registry.checks:
        graph_registry.load_checks()
    known = {check.id for checks in resource_registry.checks.values() for check in checks}
    known |= {check.id for check in graph_registry.checks}
    assert [i for i in SKIP_IDS if i not in known] == [], "checkov has no such check"


def test_every_skip_is_still_needed(manifest_dir: Path) -> None:
    failing = {check.check_id for check in _scan(manifest_dir, []).failed_checks}
    assert [i for i in SKIP_IDS if i not in failing] == [], "these checks pass now: drop them from the skip list"
