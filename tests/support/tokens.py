"""Access tokens for tests: an Ed25519 key that signs like auth does, and its JWKS over HTTP.

Producer and consumer tests use this instead of a running auth service; auth's own tests check
that auth's tokens have this same shape.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISSUER = "rtm-auth"


@dataclass
class TokenFactory:
    """Signs access tokens for any user/session with one key."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    issuer: str = ISSUER

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, alg="EdDSA", use="sig")
        return {"keys": [jwk]}

    def token(
        self,
        user_id: uuid.UUID,
        session_id: uuid.UUID | None = None,
        *,
        ttl: float = 900,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "rtm",
            "sub": str(user_id),
            "sid": str(session_id or uuid.uuid4()),
            "iat": now,
            "exp": now + int(ttl),
        }
        claims.update(overrides)
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "at+jwt"}
        )


@contextmanager
def serve_jwks(factory: TokenFactory) -> Iterator[str]:
    """Serve `factory`'s JWKS on 127.0.0.1; yields the base URL (like auth's HTTP front)."""
    body = json.dumps(factory.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
