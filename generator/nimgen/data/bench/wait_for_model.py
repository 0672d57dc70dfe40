"""Wait until a model answers, or give up: `URL SECONDS [MODEL]`.

The first container of a `nimgen bench` Job runs this with the Triton SDK image's python3 (standard library only).
Without MODEL, it polls URL, the model's readiness endpoint, until it answers 200. With MODEL, URL is the
gateway's `/v1/completions`, and it posts a one-token completion for MODEL until one succeeds: a model that scales
to zero starts on the gateway's requests (the first wakes it, the next get 503 until a replica serves), so a
readiness poll would wait for a replica nothing starts. The gateway key, if any, comes from
NIMGEN_GATEWAY_API_KEY and is never printed.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.request


def main(args: list[str]) -> int:
    """0 once the model answers; 1 after SECONDS without an answer."""
    url, seconds = args[0], int(args[1])
    model = args[2] if len(args) > 2 else ""
    interval = float(os.environ.get("NIMGEN_WAIT_INTERVAL", "10"))
    key = os.environ.get("NIMGEN_GATEWAY_API_KEY", "")
    deadline = time.monotonic() + seconds
    while True:
        request = urllib.request.Request(url)
        if model:
            request = urllib.request.Request(url, data=json.dumps(
                {"model": model, "prompt": "ping", "max_tokens": 1}).encode(), headers={
                "Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                if answer.status == 200:
                    print("ready:", url, model, flush=True)
                    return 0
        except (OSError, http.client.HTTPException) as error:  # refused, 503 while a replica starts: again
            print("waiting for", url, model, "-", error, flush=True)
        if time.monotonic() > deadline:
            print(f"{url} {model} not ready after {seconds} s", file=sys.stderr, flush=True)
            return 1
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
