"""What `RedactSecretsFilter` hides: credentials, wherever a library logs them."""

from __future__ import annotations

import logging

import pytest

from rtm.shared.logging import RedactSecretsFilter, redact_secrets

TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ('"WebSocket /v1/ws?token=SECRET&v=1" [accepted]', "/v1/ws?token=***&v=***"),
        ("> Authorization: Bearer SECRET", "> Authorization: ***"),
        ("< authorization: SECRET", "< authorization: ***"),
        ("headers {'authorization': 'Bearer SECRET', 'x': 'y'}", "'x': 'y'"),
        ("raw [(b'cookie', b'session=SECRET')]", "(b'cookie', b'***"),
        (f"refused token {TOKEN} for user", "refused token *** for user"),
    ],
)
def test_credentials_are_replaced_and_the_rest_is_kept(line: str, kept: str) -> None:
    redacted = redact_secrets(line.replace("SECRET", TOKEN) if "eyJ" in line else line)
    assert "SECRET" not in redacted
    assert TOKEN not in redacted
    assert kept in redacted


def test_a_line_without_credentials_is_unchanged() -> None:
    line = "GET /v1/history/3fa85f64?limit=10 took 3 ms"
    assert redact_secrets("published 12 messages to rtm.msgs.p3") == (
        "published 12 messages to rtm.msgs.p3"
    )
    assert redact_secrets(line) == "GET /v1/history/3fa85f64?limit=*** took 3 ms"


def test_the_filter_redacts_the_formatted_message() -> None:
    record = logging.makeLogRecord(
        {"msg": "< %s: %s", "args": ("Authorization", f"Bearer {TOKEN}"), "levelno": 10}
    )
    assert RedactSecretsFilter().filter(record)
    assert record.getMessage() == "< Authorization: ***"
