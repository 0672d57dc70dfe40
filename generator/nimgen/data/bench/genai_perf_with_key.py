"""Run `genai-perf profile ARGS...` with the gateway's API key as a header, and keep the key out of what it prints.

A Job of `nimgen bench --gateway` runs this with the Triton SDK image's python3. GenAI-Perf 0.0.10 logs the
perf_analyzer command line and writes every argument into its summary (`input_config`): the key would reach the
Job's log. Here it comes from NIMGEN_GATEWAY_API_KEY (a secretKeyRef), goes to GenAI-Perf as
`--header Authorization:Bearer KEY` (perf_analyzer's `-H` form), and is masked in the output and in the summary
NIMGEN_SUMMARY_FILE, which the Job prints next. Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

MASK = "[key]"


def masked(value: Any, key: str) -> Any:
    """A copy of a JSON value with every occurrence of `key` in its strings masked."""
    if isinstance(value, str):
        return value.replace(key, MASK)
    if isinstance(value, list):
        return [masked(item, key) for item in value]
    if isinstance(value, dict):
        return {name: masked(item, key) for name, item in value.items()}
    return value


def main(args: list[str]) -> int:
    """GenAI-Perf's exit code; 1 without a key."""
    key = os.environ.pop("NIMGEN_GATEWAY_API_KEY", "")  # the child processes get it as an argument only
    if not key:
        print("NIMGEN_GATEWAY_API_KEY is empty: no API key for the gateway", file=sys.stderr)
        return 1
    command = ["genai-perf", "profile", *args, "--header", f"Authorization:Bearer {key}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as run:
        assert run.stdout is not None
        for line in run.stdout:  # line by line: a key is never split between two reads
            sys.stdout.write(line.decode(errors="replace").replace(key, MASK))
            sys.stdout.flush()
    summary = os.environ.get("NIMGEN_SUMMARY_FILE", "")
    if summary and os.path.exists(summary):
        with open(summary, encoding="utf-8") as file:
            data = masked(json.load(file), key)
        with open(summary, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
