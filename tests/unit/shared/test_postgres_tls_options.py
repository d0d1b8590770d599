"""When rtm skips asyncpg's TLS negotiation: only towards this machine, and only when unasked."""

from __future__ import annotations

import pytest

from rtm.shared.postgres import tls_options


@pytest.mark.parametrize(
    ("dsn", "options"),
    [
        ("postgresql://postgres@127.0.0.1:5532/rtm", {"ssl": False}),
        ("postgresql://rtm:pw@localhost/rtm", {"ssl": False}),
        ("postgresql://rtm@[::1]:5432/rtm", {"ssl": False}),
        ("postgresql://rtm@db.example.com/rtm", {}),  # another machine: asyncpg's default
        ("postgresql://rtm@127.0.0.1/rtm?sslmode=require", {}),  # asked for: kept
        ("postgresql:///rtm?host=/var/run/postgresql", {}),  # a unix socket: no TLS anyway
    ],
)
def test_tls_negotiation_is_skipped_only_over_loopback_when_unasked(
    dsn: str, options: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert tls_options(dsn) == options


def test_pgsslmode_in_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    assert tls_options("postgresql://postgres@127.0.0.1:5532/rtm") == {}
