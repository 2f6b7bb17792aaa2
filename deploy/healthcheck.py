"""Exit 0 when every given check passes, else 1 naming the first that did not.

A check is a Triton HTTP path that must answer 200; `router-deep`: the router's own deep health
(options.health), which must say ready (the classifier and the router loaded, none recovering from a
dead stub); or `router-live`: the router answers that report at all, ready or not. Triton's
/v2/health and the router's /ready stay 200 while the router's own stub is dead, and nothing brings
that stub back but a restart; both router checks fail then.

The probe behind docker compose's healthcheck and Kubernetes' startup, readiness and liveness probes
(deploy/kubernetes/base/probes.yaml): one exec probe can ask Triton and the router model together,
where an httpGet probe asks one path. All checks together get TMR_HEALTH_TIMEOUT_S (default 4 s), less
than the probes' timeoutSeconds (5 s): a slow answer fails the check here, with its reason, instead of
the kubelet killing the probe. The router answers its health report ahead of its admission queue, so
a router full of requests still answers within it.

    python3 healthcheck.py /v2/health/ready router-deep
"""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

DEEP, LIVE = "router-deep", "router-live"


def deep(base: str, timeout_s: float, live: bool = False) -> str | None:
    """Why the router says it is not ready (with `live`: why it did not answer), or None."""
    body = json.dumps({"text": "", "options": json.dumps({"health": True})}).encode()
    request = urllib.request.Request(base + "/v2/models/router/generate", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        report = json.loads(json.loads(response.read())["routing"])
    if report["ready"] or live:
        return None
    sick = [f"{m} {r['recovering'] or r['status']}" for m, r in report["models"].items() if r["pinned"] and not r["healthy"]]
    return f"{DEEP}: not ready ({', '.join(sick) or 'see tmr health --deep'})"


def check(paths: list[str], base: str, timeout_s: float) -> str | None:
    """The first failing check with why, or None when all passed within `timeout_s` together."""
    deadline = time.monotonic() + timeout_s
    for path in paths:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"{path}: not asked, the checks before it took the whole {timeout_s:g} s"
        try:
            if path in (DEEP, LIVE):
                failed = deep(base, left, live=path == LIVE)
                if failed:
                    return failed
                continue
            with urllib.request.urlopen(base + path, timeout=left) as response:
                if response.status != 200:
                    return f"{path}: HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return f"{path}: HTTP {exc.code}"
        except OSError as exc:  # refused, reset, timed out
            return f"{path}: {exc}"
    return None


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: healthcheck.py PATH [PATH ...]", file=sys.stderr)
        return 2
    base = "http://" + os.environ.get("TMR_HEALTH_HOST", "127.0.0.1:8000")
    failed = check(argv, base, float(os.environ.get("TMR_HEALTH_TIMEOUT_S", "4")))
    if failed:
        print(failed, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
