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


OTHER = "0193a0b0-0000-7000-8000-000000000002"


async def test_a_refusal_with_no_ref_asks_http_for_every_written_marker() -> None:
    """The producer handles `read` and `typing` frames concurrently and its refusals have `ref`
    null, so an error frame cannot be pinned on one marker: a `forbidden` for a typing frame (or
    for a later read that failed first) must not fail a valid marker, nor leave the refused one
    waiting for ever. Every written marker is asked over HTTP, which answers each."""
    reads = ReadMarkers()
    valid, _ = reads.add(CHAT, 5)
    refused, _ = reads.add(OTHER, 1)
    reads.written(CHAT, 5)
    reads.written(OTHER, 1)
    asked = reads.refused({"type": "error", "code": "forbidden", "ref": None})
    assert sorted(asked) == sorted([(CHAT, 5), (OTHER, 1)])
    assert (valid.done(), refused.done()) == (False, False), "nobody is failed on a guess"
    assert reads.refused({"type": "error", "code": "forbidden", "ref": None}) == [], "asked once"
    assert reads.unwritten() == [], "not written again while HTTP answers"
    reads.answered(CHAT, 5, None)
    assert valid.done()
    assert valid.exception() is None
    reads.answered(OTHER, 1, RtmError("forbidden", "not a member", status=404))
    with pytest.raises(RtmError):
        await refused
    assert reads.refused({"type": "error", "code": "unknown_type", "ref": None}) == []


async def test_a_marker_http_could_not_store_is_written_again_on_the_socket() -> None:
    reads = ReadMarkers()
    marker, _ = reads.add(CHAT, 5)
    reads.written(CHAT, 5)
    assert reads.refused({"type": "error", "code": "rate_limited", "ref": None}) == [(CHAT, 5)]
    reads.answered(CHAT, 5, RtmError("network", "no answer"))
    assert not marker.done()
    assert reads.unwritten() == [(CHAT, 5)]
    reads.written(CHAT, 5)
    reads.on_read_ok({"type": "read_ok", "conversation_id": CHAT, "seq": 5})
    assert marker.done()


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
