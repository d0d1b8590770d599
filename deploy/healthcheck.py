"""Container health probe for the rtm image (the slim base has neither curl nor wget).

    python /app/healthcheck.py [live|ready] [auth|producer|consumer]

GETs `http://127.0.0.1:<port>/health/<live|ready>` and exits 0 on HTTP 200, 1 otherwise. The port
is the service's own setting (RTM_AUTH_HTTP_PORT, RTM_PRODUCER_PORT, RTM_CONSUMER_PORT, with the
services' defaults). Without a service name every service's port is tried and any 200 is enough:
that is what the image's HEALTHCHECK does, since one image serves every service. Standard library
only, no proxy (HTTP_PROXY must not catch a loopback probe), short timeouts.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

SERVICES = {
    "auth": ("RTM_AUTH_HTTP_PORT", 8080),
    "producer": ("RTM_PRODUCER_PORT", 8081),
    "consumer": ("RTM_CONSUMER_PORT", 8082),
}
KINDS = ("live", "ready")
TIMEOUT_S = 3.0
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def _host() -> str:
    """Loopback unless the service binds one specific address."""
    host = os.environ.get("RTM_HOST", "").strip()
    if host in _WILDCARDS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _url(service: str, kind: str) -> str:
    variable, default = SERVICES[service]
    port = os.environ.get(variable, "").strip() or str(default)
    return f"http://{_host()}:{port}/health/{kind}"


def probe(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """None when `url` answers 200, else why not."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    kind = argv[0] if argv else "live"
    services = argv[1:] or list(SERVICES)
    if kind not in KINDS or len(argv) > 2 or any(s not in SERVICES for s in services):
        print(f"usage: healthcheck.py [{'|'.join(KINDS)}] [{'|'.join(SERVICES)}]", file=sys.stderr)
        return 2
    problems = []
    for service in services:
        problem = probe(_url(service, kind))
        if problem is None:
            return 0
        problems.append(problem)
    print("unhealthy: " + "; ".join(problems), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
