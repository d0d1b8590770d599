"""Login throttling rules: pure functions over the failure records of a login's keys.

Every failed login counts on three keys (OWASP Authentication Cheat Sheet, "account lockout"):

- the account from the client's address (`pair:<name>@<ip>`) and the address alone (`addr:<ip>`):
  after their free failures, each further attempt must wait `base_delay * 2**k` after the last
  failure (capped at `max_delay`) and is refused (429 `rate_limited` with the wait) until then;
- the account alone (`user:<name>`, whether or not it exists): never refused, only slowed down by
  a growing delay capped at its policy's `max_delay` (a few seconds). Refusing here would let
  anyone lock the owner out of their account from another address.

IPv6 addresses are grouped by /64 (one host owns a whole /64). A key whose last failure is older
than `window` starts afresh. A successful login clears only its (account, address) record: not
the account's (the success says nothing about guesses from elsewhere) nor the address's
(otherwise one valid account would launder an attacker's address).

Keys are stored in PostgreSQL `text`, so a name or address that is not plain printable ASCII
(NUL, lone surrogates, anything long) is replaced by its SHA-256: the same name still maps to the
same key, and no input can make the store fail.

The check happens before hashing and failures are recorded after: concurrent guesses racing the
check can each get through once, which bounds the leak to the caller's concurrency.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int
    base_delay: timedelta
    max_delay: timedelta
    window: timedelta


@dataclass(frozen=True, slots=True)
class FailureRecord:
    failures: int
    last_failure_at: datetime


_PLAIN_MAX = 64
UNKNOWN_ADDRESS = "unknown"  # clients without an address (a Unix socket) share one key


def _safe(text: str) -> str:
    """`text` when it is short printable ASCII, else `#` and its SHA-256 (see module docstring)."""
    if len(text) <= _PLAIN_MAX and text.isascii() and text.isprintable():
        return text
    return "#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def account_key(username: str) -> str:
    return "user:" + _safe(username)


def _address(address: str | None) -> str:
    """The address as throttled: IPv6 by /64, mapped IPv4 as IPv4, anything else made safe."""
    if not address:
        return UNKNOWN_ADDRESS
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _safe(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def address_key(address: str | None) -> str:
    """`addr:<ip>`; IPv6 addresses share their /64."""
    return "addr:" + _address(address)


@dataclass(frozen=True, slots=True)
class LoginKeys:
    """The three keys a login attempt is counted on."""

    account: str
    pair: str
    address: str

    @classmethod
    def of(cls, username: str, address: str | None) -> LoginKeys:
        return cls(
            account=account_key(username),
            pair=f"pair:{_safe(username)}@{_address(address)}",
            address=address_key(address),
        )

    @property
    def all(self) -> list[str]:
        return [self.account, self.pair, self.address]


def is_stale(record: FailureRecord, now: datetime, policy: ThrottlePolicy) -> bool:
    return now - record.last_failure_at >= policy.window


def retry_after(
    record: FailureRecord | None, now: datetime, policy: ThrottlePolicy
) -> timedelta | None:
    """How long this key must still wait, or None when it may try now."""
    if record is None or is_stale(record, now, policy):
        return None
    excess = record.failures - policy.free_failures
    if excess < 0:
        return None
    delay = policy.base_delay * (2 ** min(excess, 40))
    delay = min(delay, policy.max_delay)
    wait = record.last_failure_at + delay - now
    return wait if wait > timedelta(0) else None


def slowdown(record: FailureRecord | None, now: datetime, policy: ThrottlePolicy) -> timedelta:
    """How long a login to this account is held before its password is checked: nothing for
    the free failures, then `base_delay * 2**k` capped at `max_delay`, for as long as the last
    failure is within the window (however long ago within it: the owner pays it too)."""
    if record is None or is_stale(record, now, policy):
        return timedelta(0)
    excess = record.failures - policy.free_failures
    if excess < 0:
        return timedelta(0)
    delay: timedelta = policy.base_delay * (2 ** min(excess, 40))
    return min(delay, policy.max_delay)


def after_failure(
    record: FailureRecord | None, now: datetime, policy: ThrottlePolicy
) -> FailureRecord:
    """The record once one more failure happened at `now`."""
    if record is None or is_stale(record, now, policy):
        return FailureRecord(failures=1, last_failure_at=now)
    return FailureRecord(failures=record.failures + 1, last_failure_at=now)


def to_milliseconds(delay: timedelta) -> int:
    """Whole milliseconds, rounded up so a client retrying on time is never early."""
    microseconds = delay // timedelta(microseconds=1)
    return max(1, -(-microseconds // 1000))
