"""Login throttling rules: pure functions over the failure record of one key.

A key is an account (`user:<normalised name>`, whether or not it exists) or a client address
(`addr:<ip>`, IPv6 grouped by /64 since one host owns a whole /64). Each key may fail
`free_failures` times; after that every further attempt must wait `base_delay * 2**k` after the
last failure (capped at `max_delay`), and is refused with a retry delay until then. A key whose
last failure is older than `window` starts afresh. A successful login clears its account's record
but not its address's (otherwise one valid account would launder an attacker's address).

The check happens before hashing and failures are recorded after: concurrent guesses racing the
check can each get through once, which bounds the leak to the caller's concurrency.
"""

from __future__ import annotations

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


def account_key(username: str) -> str:
    return "user:" + username[:300]


def address_key(address: str) -> str:
    """`addr:<ip>`; IPv6 addresses share their /64; unparseable ones are used verbatim."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "addr:" + address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"addr:{ip}"


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
