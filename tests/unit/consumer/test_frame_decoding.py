"""The consumer's inbound frame decoder, fuzzed (issue 11): whatever a client sends, the result
is a valid frame or an `RtmError` whose error frame encodes, never another exception (one such
exception once dropped the socket without a close frame)."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtm.consumer.entrypoints.schemas import (
    ResumeFrame,
    decode_frame,
    error_frame,
    resumed_entry,
    resumed_frame,
)
from rtm.shared.contract import MAX_SEQ
from rtm.shared.errors import ErrorCode, RtmError

CAP = 5
# Keys a hostile client would try: UUIDs, near-UUIDs, NUL, lone surrogates, anything.
keys = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.text(max_size=40),
    st.sampled_from(["\x00", "\ud800", "urn:uuid:" + str(uuid.UUID(int=1)), ""]),
)
cursors = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([MAX_SEQ, MAX_SEQ + 1, 2**63, 2**64, -1, 0]),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
)
frames = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("resume"), "cursors": st.dictionaries(keys, cursors, max_size=CAP + 2)}
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["ping", "auth", "x", "\ud800"])}),
    st.fixed_dictionaries({"type": st.just("auth"), "token": st.one_of(st.text(), st.integers())}),
)


def check(text: str) -> None:
    try:
        kind, frame = decode_frame(text, max_resume_conversations=CAP)
    except RtmError as error:
        encoded = orjson.loads(error_frame(error))
        assert encoded["code"] in {code.value for code in ErrorCode}
        return
    assert kind in {"auth", "ping", "resume"}
    if isinstance(frame, ResumeFrame):
        assert len(frame.cursors) <= CAP
        assert all(0 <= cursor <= MAX_SEQ for cursor in frame.cursors.values())
        report = {str(k): resumed_entry(v, True) for k, v in frame.cursors.items()}
        orjson.dumps(resumed_frame(report))  # what the handler sends back encodes


@settings(max_examples=300, deadline=None)
@given(frames)
def test_any_frame_object_decodes_or_is_refused_cleanly(obj: dict[str, object]) -> None:
    check(json.dumps(obj))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_decodes_or_is_refused_cleanly(text: str) -> None:
    check(text)


@pytest.mark.parametrize("cursor", [-1, MAX_SEQ + 1, 2**70])
def test_out_of_range_cursors_name_their_field(cursor: int) -> None:
    conversation = uuid.uuid4()
    text = json.dumps({"type": "resume", "cursors": {str(conversation): cursor}})
    with pytest.raises(RtmError) as info:
        decode_frame(text, max_resume_conversations=CAP)
    assert info.value.code is ErrorCode.VALIDATION_FAILED
    assert info.value.field == f"cursors.{conversation}"


def test_more_conversations_than_the_cap_are_refused_as_a_whole() -> None:
    text = json.dumps({"type": "resume", "cursors": {str(uuid.uuid4()): 0 for _ in range(CAP + 1)}})
    with pytest.raises(RtmError) as info:
        decode_frame(text, max_resume_conversations=CAP)
    assert (info.value.code, info.value.field) == (ErrorCode.VALIDATION_FAILED, "cursors")
