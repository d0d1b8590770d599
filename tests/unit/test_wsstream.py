"""`tests.support.wsstream.ServerStream`: the RFC 6455 rules the stream-integrity tests rely on,
fed bytes, no socket. The corrupted streams are the shapes issue #10's black-box test saw."""

from __future__ import annotations

import pytest

from tests.support.wsstream import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    CorruptStream,
    ServerStream,
)


def frame(opcode: int, payload: bytes, *, fin: bool = True, first: int | None = None) -> bytes:
    """A server frame (unmasked) with a minimal length field; `first` overrides the first byte."""
    head = first if first is not None else (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        return bytes([head, length]) + payload
    if length < 1 << 16:
        return bytes([head, 126]) + length.to_bytes(2, "big") + payload
    return bytes([head, 127]) + length.to_bytes(8, "big") + payload


def close(code: int, reason: str = "") -> bytes:
    return frame(CLOSE, code.to_bytes(2, "big") + reason.encode())


def parse(data: bytes, chunk: int | None = None) -> ServerStream:
    stream = ServerStream()
    step = chunk or len(data) or 1
    for start in range(0, len(data), step):
        stream.feed(data[start : start + step])
    stream.end()
    return stream


SMALL, MEDIUM, LARGE = "é" * 10, "€" * 4000, "😀" * 17000  # 7-bit, 16-bit and 64-bit lengths


def test_frames_of_every_length_class_parse_whole_or_byte_by_byte() -> None:
    data = b"".join(frame(TEXT, text.encode()) for text in (SMALL, MEDIUM, LARGE)) + close(
        4008, "send queue full"
    )
    for chunk in (None, 1, 7):
        stream = parse(data, chunk)
        assert [f.text for f in stream.frames[:3]] == [SMALL, MEDIUM, LARGE]
        assert stream.close is not None
        assert (stream.close.close_code, stream.close.close_reason) == (4008, "send queue full")


def test_fragments_are_joined_and_control_frames_may_come_between_them() -> None:
    data = frame(TEXT, b"one ", fin=False) + frame(PING, b"") + frame(CONTINUATION, b"two")
    stream = parse(data)
    assert [(f.opcode, f.payload) for f in stream.frames] == [(PING, b""), (TEXT, b"one two")]


def test_a_header_overwritten_by_the_next_frames_header_is_found() -> None:
    """Issue #10: a >8 KiB frame's header, sent late from a reused buffer, carries the length of
    the frame written after it."""
    first, second = MEDIUM.encode(), ("x" * 10290).encode()
    data = frame(TEXT, second)[:4] + first + frame(TEXT, second)
    with pytest.raises(CorruptStream, match=r"at byte [\d,]+ of the stream"):
        parse(data)


def test_a_close_header_over_a_pending_data_header_is_found() -> None:
    """Issue #10: the close frame's 2-byte header overwrote a pending data frame's header, so
    the "close reason" was bytes of a message."""
    payload = ("x" * 9000).encode()
    pending = frame(TEXT, payload)
    reason = b"send queue full"
    overwritten = bytes([0x88, 2 + len(reason)]) + pending[2:]
    with pytest.raises(CorruptStream):
        parse(overwritten + close(4008, "send queue full"))


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (close(1006), "close code 1006 may not be sent"),
        (frame(CLOSE, b"\x0f\xa8\xff\xfe"), "close reason that is not UTF-8"),
        (frame(CLOSE, b"\x03"), "1-byte body"),
        (close(4008) + frame(TEXT, b"{}"), "after the close frame"),
        (frame(TEXT, b"\xf0\x9f\x98"), "not UTF-8"),
        (frame(TEXT, b"{}", first=0xC1), "RSV bits"),
        (frame(3, b""), "reserved opcode"),
        (bytes([0x81, 0x82]) + b"\x00\x00\x00\x00{}", "masked frame"),
        (bytes([0x81, 126, 0, 5]) + b"hello", "must be minimal"),
        (frame(PING, b"x" * 126), "control frame"),
        (frame(CONTINUATION, b"x"), "no message to continue"),
        (frame(TEXT, b"a", fin=False) + frame(BINARY, b"b"), "new message inside"),
        (bytes([0x81, 127]) + (1 << 40).to_bytes(8, "big"), "more than plausible"),
        (frame(TEXT, b"cut short")[:-1], "ended inside a frame"),
        (frame(TEXT, b"a", fin=False), "ended inside a fragmented message"),
    ],
)
def test_what_breaks_a_rule_is_reported(data: bytes, rule: str) -> None:
    with pytest.raises(CorruptStream, match=rule):
        parse(data)
