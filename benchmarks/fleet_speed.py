"""Speed at fleet scale: render, check and validate of a 1,000-model environment, and `nimgen check` of
50 environments x 20 models when nothing changed, each beside its floor, in one run.

    python benchmarks/fleet_speed.py [--models 1000] [--environments 50] [--per-environment 20] [--repeat 3]
                                     [--schema-location DIR] [--skip-validate]

The floor of a tree is the same output files loaded and dumped once with libyaml (PyYAML's C loader and
dumper) in one process: what reading and writing them costs. Every nimgen figure is the wall time of the
real command in a fresh process (interpreter start-up included), best of --repeat.

Targets:
- render (into an empty repository) and check of 1,000 models: no slower than the floor;
- validate of 1,000 models: under 10 s, and under 5x the floor;
- check of 50 environments x 20 models when nothing changed: under a quarter of the floor of those files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_env import environment

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_SCHEMAS = PROJECT.parent / "shared" / "crd-schemas" / "strict"
NIMGEN = [sys.executable, "-m", "nimgen"]
# Renders reused by check go to a folder of this run's own (set in main).
ENV = dict(os.environ)


def write_environment(root: Path, name: str, models: int) -> Path:
    """root/environments/<name>.yaml: the synthetic environment under its own name and cluster."""
    document: dict[str, Any] = environment(models)
    document["name"] = name
    document["cluster"]["name"] = f"nim-{name}"
    path = root / "environments" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def floor(root: Path) -> float:
    """Load and dump every rendered YAML file of `root` once with libyaml, writing the dumps to a scratch tree."""
    files = sorted(p for folder in ("argocd", "charts") for p in (root / folder).rglob("*.yaml")
                   if "templates" not in p.parts)  # chart templates are Go templates, not YAML
    with tempfile.TemporaryDirectory(prefix="nimgen-floor-") as scratch:
        start = time.perf_counter()
        for index, path in enumerate(files):
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader))
            text = yaml.dump_all(documents, Dumper=yaml.CSafeDumper, sort_keys=False)
            Path(scratch, f"{index}.yaml").write_text(text, encoding="utf-8")
        return time.perf_counter() - start


def timed(args: list[str], cwd: Path, repeat: int, before: Any = None) -> float:
    """Best wall time of `nimgen ARGS` over `repeat` runs; `before` runs ahead of each (not timed)."""
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        done = subprocess.run([*NIMGEN, *args], cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"nimgen {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        best = min(best, seconds)
    return best


def verdict(value: float, limit: float) -> str:
    return "met" if value <= limit else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--environments", type=int, default=50)
    parser.add_argument("--per-environment", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--schema-location", default=str(DEFAULT_SCHEMAS))
    parser.add_argument("--skip-validate", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nimgen-fleet-") as tmp:
        ENV.pop("NIMGEN_NO_CACHE", None)
        ENV["NIMGEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        big = Path(tmp) / "big"
        env_file = write_environment(big, "bench", args.models)

        def empty() -> None:
            for folder in ("argocd", "charts"):
                shutil.rmtree(big / folder, ignore_errors=True)

        render = timed(["render", "-q", str(env_file)], big, args.repeat, before=empty)
        big_floor = floor(big)
        check = timed(["check", "--no-cache", str(env_file)], big, args.repeat)
        print(f"{args.models} models: floor {big_floor:.2f} s (libyaml load + dump of "
              f"{sum(1 for _ in (big / 'argocd').rglob('*.yaml'))} argocd files and the charts)")
        print(f"  render {render:.2f} s = {render / big_floor:.2f}x floor (target <= 1x: "
              f"{verdict(render, big_floor)})")
        print(f"  check  {check:.2f} s = {check / big_floor:.2f}x floor (target <= 1x: {verdict(check, big_floor)}; "
              "--no-cache: rendered in memory)")
        if not args.skip_validate:
            validate = timed(["validate", str(env_file), "--schema-location", args.schema_location], big, 1)
            print(f"  validate {validate:.2f} s = {validate / big_floor:.2f}x floor (target < 10 s: "
                  f"{verdict(validate, 10)}; < 5x floor: {verdict(validate, 5 * big_floor)})")

        fleet = Path(tmp) / "fleet"
        files = [write_environment(fleet, f"cluster-{index:02d}", args.per_environment)
                 for index in range(args.environments)]
        subprocess.run([*NIMGEN, "render", "-q", *map(str, files)], cwd=fleet, check=True, capture_output=True,
                       env=ENV)
        fleet_floor = floor(fleet)
        cold = timed(["check", "--no-cache"], fleet, 1)
        unchanged = timed(["check"], fleet, args.repeat)
        print(f"{args.environments} environments x {args.per_environment} models: floor {fleet_floor:.2f} s")
        print(f"  check when nothing changed {unchanged:.2f} s = {unchanged / fleet_floor:.2f}x floor "
              f"(target <= 0.25x: {verdict(unchanged, fleet_floor / 4)}); every environment rendered "
              f"(--no-cache) {cold:.2f} s")


if __name__ == "__main__":
    main()
