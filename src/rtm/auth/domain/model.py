"""The auth domain: users, sessions and grants as frozen dataclasses, and the rules on input.

Pure: no I/O, no framework. Entry points validate shapes with pydantic; the rules that matter
(username normalisation, password length in bytes) live here so both entrypoints share them.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from rtm.auth.domain.exceptions import InvalidInput

USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,32}")
PREFIX_RE = re.compile(r"[a-z0-9_.-]{1,32}")
PASSWORD_MIN_BYTES = 8
PASSWORD_MAX_BYTES = 1024
DISPLAY_NAME_MAX = 64
# Anything longer cannot be a username even before normalisation (NFKC can shrink text a little).
USERNAME_INPUT_MAX = 256


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    username: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user with the hash that authenticates them (never leaves the service)."""

    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a request comes from: throttling key and what the sessions list shows."""

    address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None = None
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """What a login or refresh hands the client."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    user: User


@dataclass(frozen=True, slots=True)
class Deletion:
    """What deleting an account did (deleting is idempotent)."""

    user: User
    newly_deleted: bool  # False: it was deleted already
    revoked: tuple[Session, ...]  # the live sessions this call ended


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as its user sees it, marked when it is the caller's own."""

    session: Session
    current: bool


class RevokeReason(StrEnum):
    LOGOUT = "logout"
    REVOKED = "revoked"
    REFRESH_REUSE = "refresh_reuse"


class RotateOutcome(StrEnum):
    ROTATED = "rotated"
    REUSED = "reused"  # a spent token came back: this call revoked its session
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Rotation:
    """Result of spending a refresh token; `session`/`user` are set when ROTATED or REUSED."""

    outcome: RotateOutcome
    session: Session | None = None
    user: User | None = None


def normalise_username(raw: str) -> str:
    """NFKC + casefold (and NFKC again: casefolding can leave non-NFKC text), so `ADMIN`,
    `admin` and fullwidth `admin` (U+FF41...) are one name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())


def validate_username(raw: str) -> str:
    """The normalised username, or `InvalidInput` when it breaks the username rule of
    docs/protocol.md, "3. Authentication"."""
    if len(raw) > USERNAME_INPUT_MAX:
        raise InvalidInput("username", "must be 3-32 characters of a-z 0-9 _ . -")
    name = normalise_username(raw)
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput("username", "must be 3-32 characters of a-z 0-9 _ . -")
    return name


def validate_password(
    password: str,
    *,
    field: str = "password",
    username: str | None = None,
    common: Container[str] = (),
) -> None:
    """NIST SP 800-63B §5.1.1.2: 8-1024 bytes of UTF-8 (bytes, not characters: that is what
    argon2 hashes), not the username (case-insensitively), and not on `common`, the list of
    common and breached passwords (lower-cased; compared case-insensitively, since a capital
    letter is the first thing a guesser tries). No composition rules: NIST advises against them.
    The error says which rule failed, so that the user can choose better."""
    size = password_size(password, field=field)
    if size < PASSWORD_MIN_BYTES or size > PASSWORD_MAX_BYTES:
        raise InvalidInput(field, f"must be {PASSWORD_MIN_BYTES}-{PASSWORD_MAX_BYTES} bytes")
    folded = password.casefold()
    if username is not None and folded in (username.casefold(), normalise_username(username)):
        raise InvalidInput(field, "must not be the username")
    if password.lower() in common:
        raise InvalidInput(field, "is too common: it is on a list of breached passwords")


def password_size(password: str, *, field: str = "password") -> int:
    """Length in UTF-8 bytes; a lone surrogate (JSON allows `\\ud800`) is not a password."""
    try:
        return len(password.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(field, "must be valid UTF-8") from exc


def validate_display_name(raw: str | None, default: str) -> str:
    """Trimmed, 1-64 characters, no control or format characters; `default` when absent."""
    if raw is None:
        return default
    name = unicodedata.normalize("NFC", raw).strip()
    if not name or len(name) > DISPLAY_NAME_MAX:
        raise InvalidInput("display_name", f"must be 1-{DISPLAY_NAME_MAX} characters")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in name):
        raise InvalidInput("display_name", "must not contain control characters")
    return name


def login_username(raw: str) -> str | None:
    """The name to look up at login, or None when no account can have it (still hashed: the
    caller must answer exactly as for a wrong password)."""
    if len(raw) > USERNAME_INPUT_MAX:
        raise InvalidInput("username", "too long")
    name = normalise_username(raw)
    return name if USERNAME_RE.fullmatch(name) else None


def search_prefix(raw: str) -> str | None:
    """The normalised prefix to search, or None when no username can start with it."""
    if not raw.strip():
        raise InvalidInput("q", "must not be empty")
    if len(raw) > USERNAME_INPUT_MAX:
        raise InvalidInput("q", "too long")
    prefix = normalise_username(raw.strip())
    return prefix if PREFIX_RE.fullmatch(prefix) else None
