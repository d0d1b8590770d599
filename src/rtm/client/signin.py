"""`SignInMixin`: the part of `Client` that signs in and keeps the session's tokens.

Accounts and grants go through auth's unauthenticated endpoints (register, login, refresh);
the tokens then live in a `rtm.client.session.Session`, which refreshes them before expiry.
What a refresh means for the rest of the client is here: both open sockets re-authenticate
in-band (no reconnect) and the application gets a `TokensEvent` to keep the new refresh token.
Signing out (`logout`) is with `close` in `rtm.client.client`.
"""

from __future__ import annotations

from rtm.client.base import ClientBase
from rtm.client.errors import RtmError
from rtm.client.events import ErrorEvent, TokensEvent
from rtm.client.http import request_json
from rtm.client.models import Tokens, User
from rtm.client.session import Session, tokens_from_grant


class SignInMixin(ClientBase):
    """Register, sign in (password, kept refresh token or kept tokens) and refresh."""

    async def register(self, username: str, password: str, display_name: str | None = None) -> User:
        """A new account (it does not sign in)."""
        body = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        answer = await request_json(
            self._http, "POST", f"{self._auth_url}/v1/auth/register", body=body
        )
        return User.from_json(answer)

    async def login(self, username: str, password: str) -> Tokens:
        grant = await request_json(
            self._http,
            "POST",
            f"{self._auth_url}/v1/auth/login",
            body={"username": username, "password": password},
        )
        self.use_tokens(tokens_from_grant(grant))
        return self.tokens

    async def resume_session(self, refresh_token: str) -> Tokens:
        """Sign in with the refresh token kept from the last run (it is spent: keep the new one
        of the `TokensEvent`)."""
        grant = await request_json(
            self._http,
            "POST",
            f"{self._auth_url}/v1/auth/refresh",
            body={"refresh_token": refresh_token},
        )
        self.use_tokens(tokens_from_grant(grant))
        return self.tokens

    def use_tokens(self, tokens: Tokens) -> None:
        """Sign in with tokens the application kept."""
        if self._session is not None:
            self._session.close()
        self._session = Session(
            tokens, self._http, self._auth_url, self._on_tokens, self._on_session_ended
        )
        self._emit(TokensEvent(tokens))

    async def refresh_tokens(self) -> Tokens:
        """Refresh now (it happens before expiry anyway); both sockets re-authenticate
        in-band, without reconnecting."""
        await self._require_session().refresh()
        return self.tokens

    @property
    def user_id(self) -> str:
        return self._require_session().user_id

    @property
    def tokens(self) -> Tokens:
        return self._require_session().tokens

    def _on_tokens(self, tokens: Tokens) -> None:
        for connection in (self._producer, self._consumer):
            if connection is not None:
                self._spawn(connection.reauthenticate(tokens.access_token))
        self._emit(TokensEvent(tokens))

    def _on_session_ended(self, error: RtmError) -> None:
        self._emit(ErrorEvent(error))
