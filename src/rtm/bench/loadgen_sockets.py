"""The load generator's WebSocket clients (picows listeners), one per socket of a worker.

A `Receiver` checks every message it gets (new, duplicate, out of order) and times its delivery;
a `Sender` sends when its worker says and times each ack. Both count into their `Worker`
(`rtm.bench.loadgen`), which reports the counts per step. A receiver reads only what it needs of
each message frame: this process shares the machine's cores with the system it measures.

With the "socketio" flavor the same clients speak Engine.IO v4 / Socket.IO v5 over the WebSocket
(`rtm.bench.engineio`): connect to the main namespace with `{"room": ...}` (receivers join it,
senders don't), send `send` events with an ack id, answer the server's pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from rtm.bench import engineio
from rtm.bench.model import ReceiverTally, SocketSpec

if TYPE_CHECKING:
    from rtm.bench.loadgen import Worker

_PING = orjson.dumps({"type": "ping"})
_TEXT = WSMsgType.TEXT
_BODY = b'"body":"'  # in rtm's `message` frames and in the sends the bare server forwards
_SEQ = b'"seq":'


def close_label(transport: WSTransport) -> str:
    """The close code a peer sent (`4008`), or `1006` when the connection just dropped."""
    received = transport.close_handshake.recv if transport.close_handshake else None
    if received is None:
        return "1006"
    code = received.code
    return str(code.value if isinstance(code, WSCloseCode) else code)


class Socket(WSListener):
    """What both kinds of client share: readiness and close bookkeeping."""

    role = ""  # what a Socket.IO server is told in the connect's auth payload

    def __init__(self, worker: Worker, spec: SocketSpec) -> None:
        super().__init__()
        self.worker = worker
        self.spec = spec
        self.conversation = spec.conversation
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = False

    def mark_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.open = True

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.open = False
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed {close_label(transport)}"))
        if not self.worker.stopping:
            self.worker.closed[close_label(transport)] += 1

    def socketio_control(self, transport: WSTransport, payload: bytes) -> engineio.Packet | None:
        """Engine.IO's open and ping, Socket.IO's connect answers: handled here. Returns the
        packet when it is an event or an ack, for the caller to handle."""
        packet = engineio.parse(payload)
        if packet.eio == engineio.EIO_OPEN:
            auth = {"room": self.conversation, "role": self.role}
            transport.send(_TEXT, engineio.connect(auth))
        elif packet.eio == engineio.EIO_PING:
            transport.send(_TEXT, engineio.PONG)
        elif packet.sio == engineio.SIO_CONNECT:
            self.mark_ready()
        elif packet.sio == engineio.SIO_CONNECT_ERROR:
            if not self.ready.done():
                self.ready.set_exception(ConnectionError(f"socket.io refused: {packet.data}"))
        elif packet.sio in (engineio.SIO_EVENT, engineio.SIO_ACK):
            return packet
        return None

    def close(self) -> None:
        if self.transport is not None and self.open:
            with contextlib.suppress(OSError, RuntimeError):  # the socket went away meanwhile
                self.transport.send_close(WSCloseCode.OK)
                self.transport.disconnect()


class Receiver(Socket):
    """A socket that receives messages and checks each one: new, duplicate, out of order."""

    role = "receiver"

    def __init__(self, worker: Worker, spec: SocketSpec) -> None:
        super().__init__(worker, spec)
        self.last_n: dict[bytes, int] = {}
        self.last_seq = 0
        self.received = 0
        self.duplicates = 0
        self.disorder = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        if self.worker.plan.flavor == "bare":
            self.mark_ready()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _TEXT:
            return
        payload = frame.get_payload_as_bytes()
        socketio = self.worker.plan.flavor == "socketio"
        if socketio and not payload.startswith(engineio.EVENT_PREFIX):
            self.socketio_control(transport, payload)
            return
        # The hot path reads only what it needs: a full JSON parse of a message frame costs
        # several times more than these finds, and this process shares the machine's cores
        # with the system it measures. Our bodies hold no character JSON would escape.
        start = payload.find(_BODY)
        if start < 0:
            data = orjson.loads(payload)
            if socketio:  # ["event name", {...}]
                data = data[1] if len(data) > 1 and isinstance(data[1], dict) else {}
            kind = data.get("type")
            if kind == "ready":
                self.mark_ready()
            self.worker.other_frames[str(kind)] += 1
            self.worker.other_total += 1
            return
        start += len(_BODY)
        body = payload[start : payload.find(b'"', start)]
        seq_at = payload.find(_SEQ)
        seq = -1
        if seq_at >= 0:
            seq_at += len(_SEQ)
            seq = int(payload[seq_at : payload.find(b",", seq_at)])
        self._message(body, seq)

    def _message(self, body: bytes, seq: int) -> None:
        now = time.monotonic_ns()
        worker = self.worker
        worker.last_receive = now
        step, sent_ns, sender, n_text = body.split(b" ", 4)[:4]
        n = int(n_text)
        if n <= self.last_n.get(sender, -1):
            self.duplicates += 1
            return
        self.last_n[sender] = n
        if seq >= 0:
            if seq <= self.last_seq:
                self.disorder += 1
            self.last_seq = seq
        if int(step) != worker.step:
            worker.late += 1
            return
        self.received += 1
        worker.received += 1
        worker.delivery_ms.append((now - int(sent_ns)) / 1e6)

    def reset(self) -> None:
        self.received = self.duplicates = self.disorder = 0

    def tally(self) -> ReceiverTally:
        return ReceiverTally(
            self.spec.index, self.conversation, self.received, self.duplicates, self.disorder
        )


class Sender(Socket):
    """A socket that sends messages and matches each ack (or error) to its send."""

    role = "sender"

    def __init__(self, worker: Worker, spec: SocketSpec) -> None:
        super().__init__(worker, spec)
        self.pending: dict[str, int] = {}
        self.prefix = str(uuid.uuid4())[:24]
        self.n = 0
        self.tag = f" {spec.index} "

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        if self.worker.plan.flavor == "bare":
            self.mark_ready()
        elif self.worker.plan.flavor == "rtm":
            transport.send(_TEXT, _PING)

    def send(self, step: int, sent_ns: int) -> None:
        if self.transport is None or not self.open:
            self.worker.errors["socket closed"] += 1
            return
        n = self.n
        self.n = n + 1
        client_msg_id = f"{self.prefix}{n:012x}"
        head = f"{step} {sent_ns}{self.tag}{n} "
        body = head + "x" * max(1, self.worker.plan.body_chars - len(head))
        self.pending[client_msg_id] = sent_ns
        send = {
            "type": "send",
            "client_msg_id": client_msg_id,
            "conversation_id": self.conversation,
            "body": body,
        }
        if self.worker.plan.flavor == "socketio":
            self.transport.send(_TEXT, engineio.event("send", send, ack_id=n))
        else:
            self.transport.send(_TEXT, orjson.dumps(send))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if self.worker.plan.flavor == "socketio":
            packet = self.socketio_control(transport, payload)
            if packet is None or packet.sio != engineio.SIO_ACK or not packet.data:
                return
            self._answer(packet.data[0])
        else:
            self._answer(orjson.loads(payload))

    def _answer(self, data: dict[str, object]) -> None:
        """An ack, an error or a pong, whichever protocol carried it."""
        kind = data.get("type")
        worker = self.worker
        if kind == "ack":
            sent_ns = self.pending.pop(str(data["client_msg_id"]), None)
            if sent_ns is not None:
                now = time.monotonic_ns()
                worker.acked += 1
                worker.last_ack = now
                worker.acked_by_conversation[self.conversation] += 1
                worker.ack_ms.append((now - sent_ns) / 1e6)
        elif kind == "error":
            self.pending.pop(str(data.get("ref") or ""), None)
            worker.errors[str(data.get("code"))] += 1
        elif kind == "pong":
            self.mark_ready()
