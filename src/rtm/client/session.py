"""The signed-in user's tokens, refreshed before the access token expires.

One refresh at a time: a refresh token works once, and concurrent refreshes of one token count
as reuse and revoke the session (docs/protocol.md), so every caller during a refresh shares its
result. A refused refresh (a 4xx other than 429) ends the session; a network error or 503 is
retried with the same token (a lost answer may have rotated it, and the retry then ends the
session: there is nothing better to do).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from rtm.client.backoff import Backoff
from rtm.client.errors import RtmError
from rtm.client.http import request_json
from rtm.client.models import Tokens

logger = logging.getLogger(__name__)

_REFRESH_BACKOFF = Backoff(base_s=0.5, cap_s=10.0)


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without verifying (the servers verify); {} if unreadable."""
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def tokens_from_grant(grant: Mapping[str, Any], now: float | None = None) -> Tokens:
    """The tokens of a login or refresh answer."""
    now = time.time() if now is None else now
    return Tokens(
        access_token=str(grant["access_token"]),
        refresh_token=grant.get("refresh_token"),
        expires_at=now + float(grant.get("expires_in", 900)),
    )


class Session:
    """Tokens of one user; `on_tokens` hears every new set (re-authenticate the sockets, let the
    application store the rotated refresh token), `on_ended` the end of the session."""

    def __init__(
        self,
        tokens: Tokens,
        http: httpx.AsyncClient,
        auth_url: str,
        on_tokens: Callable[[Tokens], None],
        on_ended: Callable[[RtmError], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        sub = token_claims(tokens.access_token).get("sub")
        if not isinstance(sub, str):
            raise RtmError("unauthorized", "the access token has no `sub` claim")
        self.user_id = sub
        self._tokens = tokens
        self._http, self._auth_url = http, auth_url
        self._on_tokens, self._on_ended, self._clock = on_tokens, on_ended, clock
        self._refreshing: asyncio.Task[str] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        self._schedule()

    @property
    def tokens(self) -> Tokens:
        return self._tokens

    @property
    def access_token(self) -> str:
        return self._tokens.access_token

    def _schedule(self) -> None:
        """Refresh at 80% of the remaining lifetime, at most a minute before expiry."""
        if self._timer is not None:
            self._timer.cancel()
        if self._closed or not self._tokens.refresh_token:
            return
        left = self._tokens.expires_at - self._clock()
        delay = max(0.0, left - min(60.0, left * 0.2))
        self._timer = asyncio.create_task(self._refresh_later(delay), name="rtm-client-refresh")

    async def _refresh_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None  # refresh() schedules the next one: do not cancel ourselves
        with contextlib.suppress(RtmError):  # refresh() reports the end of the session
            await self.refresh()

    async def fresh(self, margin_s: float = 5.0) -> str:
        """An access token not about to expire (a socket must not open only to be closed
        4505, e.g. after the laptop slept)."""
        left = self._tokens.expires_at - self._clock()
        if left < margin_s and self._tokens.refresh_token:
            return await self.refresh()
        return self._tokens.access_token

    async def refresh(self) -> str:
        """A new access token; calls made while one refresh runs share it."""
        if self._closed:
            raise RtmError("closed", "the client is closed")
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh(), name="rtm-client-refresh")
        return await asyncio.shield(self._refreshing)

    async def _refresh(self) -> str:
        refresh_token = self._tokens.refresh_token
        if not refresh_token:
            ended = RtmError("session_ended", "the access token expired; no refresh token")
            self._on_ended(ended)
            raise ended
        attempt = 0
        while True:
            try:
                grant = await request_json(
                    self._http,
                    "POST",
                    f"{self._auth_url}/v1/auth/refresh",
                    body={"refresh_token": refresh_token},
                )
            except RtmError as exc:
                fatal = exc.status is not None and exc.status < 500 and exc.status != 429
                if fatal or self._closed:
                    ended = RtmError("session_ended", f"refresh refused: {exc}", status=exc.status)
                    if not self._closed:
                        self._on_ended(ended)
                    raise ended from exc
                delay = (
                    exc.retry_after_ms / 1000
                    if exc.retry_after_ms
                    else _REFRESH_BACKOFF.delay(attempt)
                )
                attempt += 1
                logger.info("token refresh failed (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            self._tokens = tokens_from_grant(grant, self._clock())
            self._schedule()
            self._on_tokens(self._tokens)
            return self._tokens.access_token

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
