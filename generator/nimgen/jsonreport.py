"""JSON reports: one shape for every command's `--output json`.

Keys are camelCase, like Kubernetes objects and the environment file (`gpuLimit`), whatever the Python
names behind them, and a unit suffix is spelled out (`latency_s` is `latencySeconds`, `tokens_per_s`
`tokensPerSecond`); key order is kept as built, so output is stable.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Only identifier-like keys are renamed: keys that are data (paths, model names) pass through.
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


_UNITS = (("_per_s", "PerSecond"), ("_s", "Seconds"))


def camel(key: str) -> str:
    """`gpus_per_replica` -> `gpusPerReplica`, `ttft_p95_s` -> `ttftP95Seconds`; anything else unchanged."""
    if not _SNAKE.match(key):
        return key
    for suffix, spelled in _UNITS:
        if key.endswith(suffix):
            return camel(key[: -len(suffix)]) + spelled
    first, *rest = key.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(value: Any) -> Any:
    """`value` with every identifier-like mapping key in camelCase, recursively."""
    if isinstance(value, dict):
        return {camel(key) if isinstance(key, str) else key: camel_keys(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [camel_keys(item) for item in value]
    return value


def dumps(data: Any) -> str:
    """The report as indented JSON with camelCase keys and a final newline."""
    return json.dumps(camel_keys(data), indent=2, ensure_ascii=False) + "\n"
