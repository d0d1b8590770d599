"""The limits auth enforces, as one value the composition root builds from `AuthSettings`."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import timedelta

from rtm.auth.domain.throttle import ThrottlePolicy


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Token lifetimes, login throttling, search bounds and the registration rate."""

    issuer: str
    access_ttl: timedelta
    refresh_ttl: timedelta
    leeway: timedelta
    account_throttle: ThrottlePolicy  # slows logins down (max_delay: the cap), never refuses
    address_throttle: ThrottlePolicy
    pair_throttle: ThrottlePolicy  # one account from one address
    search_default_limit: int = 20
    search_max_limit: int = 50
    common_passwords: Container[str] = frozenset()
    register_burst: int = 30  # registrations per client address, at once
    register_per_minute: float = 10.0  # ... and then, per minute

    @property
    def throttle_window(self) -> timedelta:
        """How long a failure is remembered: the longest window of the three policies."""
        return max(
            self.account_throttle.window, self.address_throttle.window, self.pair_throttle.window
        )
