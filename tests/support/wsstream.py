"""A WebSocket client that reads only when told to, and a strict parser of what a server sent.

Why: issue #10's corruption only shows when a server's writes have to wait, that is when the
peer's receive window is full. A client library reads eagerly and would hide that; this client
connects with a small `SO_RCVBUF`, does its own handshake, sends masked text frames and reads
nothing until `drain`. `ServerStream` then checks every byte the server sent against RFC 6455:
framing (§5.2: no RSV bits without an extension, no mask from a server, minimal lengths),
control frames (§5.5: final, at most 125 bytes), fragments (§5.4), UTF-8 text (§5.6, §8.1),
close codes and reasons (§5.5.1, §7.4), and nothing after the close frame (§5.5.1).

`ServerStream` is sans-I/O (bytes in, frames out), so its rules are tested without a socket
(tests/unit/test_wsstream.py). `SlowReader` blocks: run it in a thread so the server under
test keeps the event loop.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES = frozenset({CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG})
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class CorruptStream(ValueError):
    """What the server sent is not a valid WebSocket stream; the message says where and why."""


def valid_close_code(code: int) -> bool:
    """A code an endpoint may send (RFC 6455 §7.4, IANA registry): 1004-1006 and 1015 are
    reserved, 1000-2999 beyond the registered ones are unassigned, 3000-4999 are free to use."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class Frame:
    """One message (fragments joined) or control frame, and where its first header starts."""

    offset: int
    opcode: int
    payload: bytes

    @property
    def text(self) -> str:
        """A text message's text (`ServerStream` has checked it is UTF-8)."""
        return self.payload.decode()

    @property
    def close_code(self) -> int | None:
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode()


class ServerStream:
    """Parses a server-to-client byte stream as it arrives; raises `CorruptStream` at the first
    byte that breaks a rule. `max_payload` is a plausibility bound: a header declaring more is
    taken for bytes that are not a header (a desynchronised stream) instead of waiting for
    gigabytes."""

    def __init__(self, max_payload: int = 1 << 20) -> None:
        self._max_payload = max_payload
        self._buffer = bytearray()
        self._start = 0  # stream offset of _buffer[0]
        self._fragments: list[bytes] = []
        self._fragment_opcode: int | None = None
        self._fragment_offset = 0
        self.frames: list[Frame] = []
        self.close: Frame | None = None
        self._last_header = "none yet"

    @property
    def received(self) -> int:
        return self._start + len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes; returns the messages and control frames they complete."""
        self._buffer += data
        done: list[Frame] = []
        pos = 0
        while True:
            step = self._frame_at(pos)
            if step is None:
                break
            pos, frame = step
            if frame is not None:
                done.append(frame)
        del self._buffer[:pos]
        self._start += pos
        self.frames.extend(done)
        return done

    def end(self) -> None:
        """The connection ended: it must end between frames and between messages."""
        if self._buffer:
            raise self._corrupt(
                0, f"the stream ended inside a frame ({len(self._buffer)} bytes left)"
            )
        if self._fragment_opcode is not None:
            raise self._corrupt(0, "the stream ended inside a fragmented message")

    def _frame_at(self, pos: int) -> tuple[int, Frame | None] | None:
        """(position after the frame, the message it completes) or None for too few bytes."""
        buffer = self._buffer
        available = len(buffer) - pos
        if available < 2:
            return None
        if self.close is not None:
            raise self._corrupt(pos, "bytes after the close frame")
        first, second = buffer[pos], buffer[pos + 1]
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise self._corrupt(pos, f"RSV bits set ({first:#04x}) with no extension negotiated")
        if opcode not in _OPCODES:
            raise self._corrupt(pos, f"reserved opcode {opcode:#x}")
        if second & 0x80:
            raise self._corrupt(pos, "a masked frame from the server")
        length, header = second & 0x7F, 2
        if length == 126:
            if available < 4:
                return None
            length, header = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            if length < 126:
                raise self._corrupt(pos, f"length {length} in a 16-bit field (must be minimal)")
        elif length == 127:
            if available < 10:
                return None
            length, header = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if length < 1 << 16:
                raise self._corrupt(pos, f"length {length} in a 64-bit field (must be minimal)")
        if opcode >= CLOSE and (not fin or length > 125):
            raise self._corrupt(pos, f"control frame {opcode:#x}: fin={fin}, {length} bytes")
        if length > self._max_payload:
            raise self._corrupt(pos, f"a header declaring {length:,} bytes (more than plausible)")
        if available < header + length:
            return None
        payload = bytes(buffer[pos + header : pos + header + length])
        offset = self._start + pos
        self._last_header = f"at byte {offset:,}: opcode {opcode:#x}, fin={fin}, {length:,} bytes"
        return pos + header + length, self._assemble(pos, offset, opcode, fin, payload)

    def _assemble(
        self, pos: int, offset: int, opcode: int, fin: bool, payload: bytes
    ) -> Frame | None:
        if opcode >= CLOSE:
            if opcode == CLOSE:
                self._check_close(pos, payload)
                self.close = Frame(offset, opcode, payload)
                return self.close
            return Frame(offset, opcode, payload)
        if opcode == CONTINUATION:
            if self._fragment_opcode is None:
                raise self._corrupt(pos, "a continuation frame with no message to continue")
        elif self._fragment_opcode is not None:
            raise self._corrupt(pos, "a new message inside a fragmented one")
        else:
            self._fragment_opcode, self._fragment_offset = opcode, offset
        self._fragments.append(payload)
        kind = self._fragment_opcode
        if not fin or kind is None:
            return None
        message = Frame(self._fragment_offset, kind, b"".join(self._fragments))
        self._fragments, self._fragment_opcode = [], None
        if message.opcode == TEXT:
            try:
                message.payload.decode()
            except UnicodeDecodeError as exc:
                raise self._corrupt(
                    pos, f"a text message that is not UTF-8 ({exc.reason})"
                ) from exc
        return message

    def _check_close(self, pos: int, payload: bytes) -> None:
        if len(payload) == 1:
            raise self._corrupt(pos, "a close frame with a 1-byte body")
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            if not valid_close_code(code):
                raise self._corrupt(pos, f"close code {code} may not be sent")
            try:
                payload[2:].decode()
            except UnicodeDecodeError as exc:
                raise self._corrupt(
                    pos, f"a close reason that is not UTF-8: {payload[2:]!r}"
                ) from exc

    def _corrupt(self, pos: int, what: str) -> CorruptStream:
        around = bytes(self._buffer[pos : pos + 16]).hex(" ")
        return CorruptStream(
            f"at byte {self._start + pos:,} of the stream: {what}; "
            f"{len(self.frames):,} messages parsed before it, "
            f"the last frame header {self._last_header}; "
            f"bytes there: {around}"
        )


class SlowReader:
    """A client of a server's WebSocket over a blocking socket with a small receive buffer, that
    reads nothing until `drain`: the server's frames pile up in its own write buffer."""

    def __init__(
        self,
        address: str,
        *,
        path: str = "/v1/ws",
        headers: Mapping[str, str] | None = None,
        rcvbuf: int = 4096,
        timeout: float = 10.0,
    ) -> None:
        host, port = address.rsplit(":", 1)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Before connect: the window scale is agreed in the SYN.
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._sock.settimeout(timeout)
            self._sock.connect((host, int(port)))
            self._early = self._handshake(address, path, headers or {})
        except BaseException:
            self._sock.close()
            raise
        self.stream = ServerStream()

    def _handshake(self, address: str, path: str, headers: Mapping[str, str]) -> bytes:
        """Upgrade; returns what the server sent after its 101 response (frames already)."""
        key = base64.b64encode(os.urandom(16))
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {address}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"no upgrade response: {response!r}")
            response += chunk
        head, _, rest = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"not upgraded: {head!r}")
        accept = base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())
        if b"sec-websocket-accept: " + accept.lower() not in head.lower():
            raise ConnectionError(f"wrong Sec-WebSocket-Accept: {head!r}")
        return rest

    def send_text(self, text: str) -> None:
        self._send(TEXT, text.encode())

    def send_close(self, code: int) -> None:
        self._send(CLOSE, code.to_bytes(2, "big"))

    def _send(self, opcode: int, payload: bytes) -> None:
        """One final, masked frame (RFC 6455 §5.3: a client masks every frame)."""
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, 0x80 | length])
        elif length < 1 << 16:
            header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
        key = int.from_bytes((mask * (length // 4 + 1))[:length], "big") if length else 0
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
        self._sock.sendall(header + mask + masked)

    def drain(self, deadline_s: float = 30.0) -> ServerStream:
        """Read and parse everything until the server ends the connection; answers the server's
        close frame with the same code (§5.5.1), as the server may wait for it."""
        deadline = time.monotonic() + deadline_s
        stream = self.stream
        stream.feed(self._early)
        replied = False
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not end the connection ({stream.received:,} B)")
            try:
                chunk = self._sock.recv(1 << 16)
            except ConnectionResetError:
                if not replied:
                    raise
                break  # our close reply reached a socket the server had closed already
            if not chunk:
                break
            stream.feed(chunk)
            if stream.close is not None and not replied:
                replied = True
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(CLOSE, stream.close.payload[:2])
        stream.end()
        return stream

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SlowReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
