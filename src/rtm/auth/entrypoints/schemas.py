"""HTTP bodies of the auth front (pydantic lives here, at the edge, not in the domain).

Limits here are shape limits that keep absurd input away from the service; the rules that matter
(username charset, password bytes, common passwords) are enforced once, in
`rtm.auth.domain.model`, for both entrypoints. Bodies derive from `RequestBody`: an unknown field
is a 422 naming it.

The JSON Schemas document those rules as far as JSON Schema can say them (checked by
schemathesis, tests/integration/auth/test_openapi_contract.py): exactly for ASCII input; for other
text the byte and normalisation rules of the descriptions are what counts.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_serializer

from rtm.auth.domain.model import (
    DISPLAY_NAME_MAX,
    PASSWORD_MAX_BYTES,
    PASSWORD_MIN_BYTES,
    Grant,
    SessionView,
    User,
)
from rtm.shared.clock import format_time
from rtm.shared.http import RequestBody

# What `rtm.auth.domain.model` accepts, said in JSON Schema (see the module docstring).
USERNAME_SCHEMA = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_.-]{3,32}$",
    "description": "3-32 characters of a-z 0-9 _ . - after NFKC + casefold (so `Alice` is "
    "`alice`, and other spellings that normalise to such a name are accepted too)",
    "examples": ["alice"],
}
NEW_PASSWORD_SCHEMA = {
    "type": "string",
    "minLength": PASSWORD_MIN_BYTES,
    "maxLength": PASSWORD_MAX_BYTES,
    "description": f"{PASSWORD_MIN_BYTES}-{PASSWORD_MAX_BYTES} bytes of UTF-8, not the username "
    "(case-insensitively), not on the shipped list of ~200,000 common or breached passwords "
    "(422 `validation_failed`, field `password`, the message says which rule)",
}
_CONTROLS = "\\x00-\\x1f\\x7f-\\x9f"
DISPLAY_NAME_SCHEMA = {
    "type": "string",
    "maxLength": DISPLAY_NAME_MAX,
    "pattern": f"^[^{_CONTROLS}]*[^\\s{_CONTROLS}][^{_CONTROLS}]*$",
    "description": f"1-{DISPLAY_NAME_MAX} characters once trimmed (NFC), no control or format "
    "characters; absent or null: the username",
    "examples": ["Alice"],
}


class _Body(RequestBody):
    model_config = ConfigDict(strict=True, extra="forbid")


_EXAMPLE_REFRESH = "rtmr_6QmJ0b3bq0H2Zk9cXo1v3w8yR5tN7uLpA4sD2fG1hJk"


class RegisterBody(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"username": "alice", "password": "correct horse battery", "display_name": "Alice"}
            ]
        }
    )

    username: Annotated[str, Field(max_length=256), WithJsonSchema(USERNAME_SCHEMA)]
    password: Annotated[
        str, Field(max_length=PASSWORD_MAX_BYTES), WithJsonSchema(NEW_PASSWORD_SCHEMA)
    ]
    display_name: (
        Annotated[str, Field(max_length=256), WithJsonSchema(DISPLAY_NAME_SCHEMA)] | None
    ) = None


class LoginBody(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "alice", "password": "correct horse battery"}]}
    )

    username: str = Field(max_length=256, examples=["alice"])
    password: str = Field(
        max_length=PASSWORD_MAX_BYTES, description=f"at most {PASSWORD_MAX_BYTES} bytes of UTF-8"
    )


class RefreshBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": _EXAMPLE_REFRESH}]})

    refresh_token: str = Field(max_length=1024, description="from login or the last refresh")


class LogoutBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": _EXAMPLE_REFRESH}]})

    refresh_token: str | None = Field(
        None, max_length=1024, description="the session to end; none: the bearer token's"
    )


class _Out(BaseModel):
    @field_serializer("*", when_used="json")
    def _times(self, value: object) -> object:
        """Times in the protocol's one format (RFC 3339, UTC, milliseconds)."""
        return format_time(value) if isinstance(value, datetime) else value


class UserOut(_Out):
    id: uuid.UUID
    username: str
    display_name: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            created_at=user.created_at,
        )


class GrantOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int = Field(description="seconds until the access token expires")
    session_id: uuid.UUID
    user: UserOut

    @classmethod
    def of(cls, grant: Grant) -> GrantOut:
        return cls(
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_in=grant.expires_in,
            session_id=grant.session_id,
            user=UserOut.of(grant.user),
        )


class SessionOut(_Out):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool = Field(description="the session of the token that made this request")

    @classmethod
    def of(cls, view: SessionView) -> SessionOut:
        session = view.session
        return cls(
            id=session.id,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=session.expires_at,
            user_agent=session.user_agent,
            ip=session.ip,
            current=view.current,
        )


class SessionsOut(BaseModel):
    sessions: list[SessionOut]


class UsersOut(BaseModel):
    users: list[UserOut]


class JwkOut(BaseModel):
    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class JwksOut(BaseModel):
    keys: list[JwkOut]
