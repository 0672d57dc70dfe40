"""A synthetic environment for benchmarks: N NIM models spread over six Karpenter GPU pools.

    python benchmarks/synthetic_env.py DIR [--models 100]

writes DIR/environments/bench.yaml; `nimgen render DIR/environments/bench.yaml` then renders it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

# (pool, instance selector, capacity types, model image, GPUs per replica)
POOLS: tuple[tuple[str, dict[str, Any], list[str], str, int], ...] = (
    ("a10g", {"instanceFamilies": ["g5"]}, ["spot", "on-demand"], "meta/llama3-8b-instruct:1.0.3", 1),
    ("a10g-od", {"instanceFamilies": ["g5"]}, ["on-demand"], "mistralai/mistral-7b-instruct-v0.3:1.12.0", 1),
    ("l4", {"instanceFamilies": ["g6"]}, ["spot", "on-demand"], "meta/llama-3.1-8b-instruct:1.8.4", 1),
    ("l40s", {"instanceFamilies": ["g6e"]}, ["on-demand"], "mistralai/mixtral-8x7b-instruct-v01:1.12.0", 4),
    ("a100", {"instanceTypes": ["p4d.24xlarge"]}, ["on-demand"], "meta/llama-3.1-70b-instruct:1.3.3", 8),
    ("h100", {"instanceTypes": ["p5.48xlarge"]}, ["on-demand"], "meta/llama-3.3-70b-instruct:1.13.1", 4),
)
NAMESPACES = ("nim-chat", "nim-search", "nim-agents", "nim-batch")


def environment(models: int) -> dict[str, Any]:
    """The environment document."""
    pools = [{"name": name, **selector, "capacityTypes": capacity, "gpuLimit": 4096, "amiVersion": "v20251112"}
             for name, selector, capacity, _, _ in POOLS]
    entries = []
    for index in range(models):
        pool, _, _, image, gpus = POOLS[index % len(POOLS)]
        entry: dict[str, Any] = {"name": f"model-{index:03d}", "image": f"nvcr.io/nim/{image}", "gpus": gpus,
                                 "nodePool": pool, "namespace": NAMESPACES[index % len(NAMESPACES)]}
        if index % 3 == 0:
            entry["replicas"] = {"min": 1, "max": 4}
            entry["autoscaling"] = {"metric": "num_requests_running", "target": 8}
        if gpus >= 4:
            entry["resources"] = {"cpu": "32", "memory": "256Gi"}
            entry["sharedMemory"] = "32Gi"
        entries.append(entry)
    return {
        "name": "bench",
        "cluster": {"name": "nim-bench", "region": "us-west-2", "kubernetesVersion": "1.33",
                    "karpenter": {"nodeRole": "KarpenterNodeRole-nim-bench", "discoveryTag": "nim-bench"}},
        "gitops": {"repoURL": "https://github.com/example/nim-gitops.git"},
        "nodePools": pools,
        "storage": {"modelCache": {"efs": {"fileSystemId": "fs-0123456789abcdef0"}, "size": "2Ti"}},
        "observability": {"enabled": True},
        "models": entries,
    }


def write(root: Path, models: int) -> Path:
    """Write root/environments/bench.yaml and return its path."""
    path = root / "environments" / "bench.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(environment(models), sort_keys=False), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    print(write(args.root, args.models))


if __name__ == "__main__":
    main()
