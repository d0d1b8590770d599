"""Read markers matched to their `read_ok`, and the claims the SDK reads from a token."""

from __future__ import annotations

import base64
import json

import pytest

from rtm.client import RtmError
from rtm.client.reads import ReadMarkers
from rtm.client.session import token_claims, tokens_from_grant

CHAT = "0193a0b0-0000-7000-8000-000000000001"


async def test_a_marker_resolves_on_the_read_ok_with_its_pair() -> None:
    reads = ReadMarkers()
    five, write_five = reads.add(CHAT, 5)
    _, write_again = reads.add(CHAT, 5)
    assert (write_five, write_again) == (True, False), "the same marker is written once"
    seven, _ = reads.add(CHAT, 7)
    reads.written(CHAT, 5)
    reads.written(CHAT, 7)
    reads.on_read_ok({"type": "read_ok", "conversation_id": CHAT, "seq": 7})
    assert seven.done()
    assert not five.done()
    reads.on_read_ok({"type": "read_ok", "conversation_id": CHAT, "seq": 5})
    assert five.done()


async def test_markers_not_answered_are_written_again_on_the_next_socket() -> None:
    reads = ReadMarkers()
    reads.add(CHAT, 5)
    reads.written(CHAT, 5)
    assert reads.unwritten() == []
    reads.disconnected()
    assert reads.unwritten() == [(CHAT, 5)]


async def test_a_refusal_fails_the_oldest_written_marker() -> None:
    reads = ReadMarkers()
    first, _ = reads.add(CHAT, 5)
    reads.add(CHAT, 6)
    reads.written(CHAT, 5)
    reads.written(CHAT, 6)
    assert reads.on_error({"type": "error", "code": "forbidden", "ref": None})
    with pytest.raises(RtmError):
        await first
    assert not reads.on_error({"type": "error", "code": "unknown_type", "ref": None})


def _jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'EdDSA'})}.{part(claims)}.signature"


def test_token_claims_are_read_without_verifying() -> None:
    assert token_claims(_jwt({"sub": "u1", "exp": 123})) == {"sub": "u1", "exp": 123}
    assert token_claims("not a token") == {}
    assert token_claims("a.%%%.c") == {}


def test_a_grant_expires_after_its_lifetime() -> None:
    tokens = tokens_from_grant(
        {"access_token": "a", "refresh_token": "r", "expires_in": 900}, now=1000.0
    )
    assert (tokens.refresh_token, tokens.expires_at) == ("r", 1900.0)
