"""A stand-in for auth, producer or consumer that honours the runner's service contract.

Run as `python standin_service.py <kind>`: it binds the port the runner gave it in the
environment, answers `GET /health/ready` with 200 (auth also serves the gRPC health protocol),
prints one line saying which port it serves, and exits 0 on SIGTERM. Lets the runner's tests run
before (and independently of) the real services.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

PORT_VARIABLE = {
    "auth": "RTM_AUTH_HTTP_PORT",
    "producer": "RTM_PRODUCER_PORT",
    "consumer": "RTM_CONSUMER_PORT",
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ready = self.path == "/health/ready"
        self.send_response(200 if ready else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"ready"}' if ready else b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    kind = sys.argv[1]
    host = os.environ.get("RTM_HOST", "127.0.0.1")
    port = int(os.environ[PORT_VARIABLE[kind]])
    server = ThreadingHTTPServer((host, port), Handler)
    grpc_server = None
    if kind == "auth":
        import grpc
        from grpc_health.v1 import health, health_pb2_grpc

        grpc_server = grpc.server(ThreadPoolExecutor(2))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), grpc_server)
        grpc_server.add_insecure_port(f"{host}:{os.environ['RTM_AUTH_GRPC_PORT']}")
        grpc_server.start()

    def on_term(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, on_term)
    print(f"{kind} stand-in {os.environ.get('RTM_INSTANCE_ID', '')} serving on {port}", flush=True)
    server.serve_forever()
    if grpc_server is not None:
        grpc_server.stop(0)


if __name__ == "__main__":
    main()
