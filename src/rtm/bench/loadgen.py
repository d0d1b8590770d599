"""The load-generator worker: one OS process holding many real WebSocket clients (picows).

Receivers are consumer sockets (or the bare server's `/r/<room>` sockets); senders are producer
sockets (or `/s/<room>`). A step sends open-loop: message i of the step is due at
`start + i / rate`, whatever happened to earlier ones, and goes out on the next sender in turn;
the body carries that scheduled time (see `rtm.bench.model`). Every loop here is bounded: sends
by `rate * duration`, waits by their timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
import traceback
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection

import orjson
import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from rtm.bench.model import (
    Bind,
    Bound,
    Connected,
    Expect,
    Failed,
    Hold,
    HoldResult,
    Progress,
    ReceiverTally,
    Sent,
    SocketSpec,
    Step,
    StepResult,
    Stop,
    WorkerPlan,
)

_PING = orjson.dumps({"type": "ping"})
_TEXT = WSMsgType.TEXT
_BODY = b'"body":"'  # in rtm's `message` frames and in the sends the bare server forwards
_SEQ = b'"seq":'
_PROGRESS_EVERY = 0.5
_CONNECT_ATTEMPTS = 3


def close_label(transport: WSTransport) -> str:
    """The close code a peer sent (`4008`), or `1006` when the connection just dropped."""
    received = transport.close_handshake.recv if transport.close_handshake else None
    if received is None:
        return "1006"
    code = received.code
    return str(code.value if isinstance(code, WSCloseCode) else code)


class _Socket(WSListener):
    """What both kinds of client share: readiness and close bookkeeping."""

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

    def close(self) -> None:
        if self.transport is not None and self.open:
            with contextlib.suppress(Exception):
                self.transport.send_close(WSCloseCode.OK)
                self.transport.disconnect()


class Receiver(_Socket):
    """A socket that receives messages and checks each one: new, duplicate, out of order."""

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
        # The hot path reads only what it needs: a full JSON parse of a message frame costs
        # several times more than these finds, and this process shares the machine's cores
        # with the system it measures. Our bodies hold no character JSON would escape.
        start = payload.find(_BODY)
        if start < 0:
            data = orjson.loads(payload)
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


class Sender(_Socket):
    """A socket that sends messages and matches each ack (or error) to its send."""

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
        else:
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
        self.transport.send(
            _TEXT,
            orjson.dumps(
                {
                    "type": "send",
                    "client_msg_id": client_msg_id,
                    "conversation_id": self.conversation,
                    "body": body,
                }
            ),
        )

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _TEXT:
            return
        data = orjson.loads(frame.get_payload_as_bytes())
        kind = data.get("type")
        worker = self.worker
        if kind == "ack":
            sent_ns = self.pending.pop(data["client_msg_id"], None)
            if sent_ns is not None:
                now = time.monotonic_ns()
                worker.acked += 1
                worker.last_ack = now
                worker.acked_by_conversation[self.conversation] += 1
                worker.ack_ms.append((now - sent_ns) / 1e6)
        elif kind == "error":
            self.pending.pop(data.get("ref") or "", None)
            worker.errors[str(data.get("code"))] += 1
        elif kind == "pong":
            self.mark_ready()


class Worker:
    """One load-generator process: opens the plan's sockets, then obeys the orchestrator."""

    def __init__(self, conn: Connection, plan: WorkerPlan) -> None:
        self.conn = conn
        self.plan = plan
        self.receivers: list[Receiver] = []
        self.senders: list[Sender] = []
        self.stopping = False
        self.step = -1
        self.received = 0
        self.acked = 0
        self.late = 0
        self.last_receive = 0
        self.last_ack = 0
        self.acked_by_conversation: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.other_frames: Counter[str] = Counter()
        self.other_total = 0
        self.ack_ms: array[float] = array("f")
        self.delivery_ms: array[float] = array("f")
        self._phase = "connecting"
        self._done = 0
        self._total = 0

    # -- plumbing --------------------------------------------------------------------------

    def tell(self, message: object) -> None:
        self.conn.send(message)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_EVERY)
            self.tell(
                Progress(
                    self.plan.worker,
                    self._phase,
                    self._done,
                    self._total,
                    self.received,
                    self.acked,
                    self.other_total,
                )
            )

    async def main(self) -> None:
        reporter = asyncio.create_task(self._progress())
        try:
            began = time.monotonic()
            await self._connect_all()
            gc.collect()
            gc.freeze()  # thousands of long-lived sockets: keep them out of every collection
            self.tell(
                Connected(
                    self.plan.worker,
                    len(self.receivers),
                    len(self.senders),
                    time.monotonic() - began,
                )
            )
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, self.conn.recv)
                if isinstance(command, Bind):
                    self._bind(command)
                elif isinstance(command, Step):
                    self.tell(await self._run_step(command))
                elif isinstance(command, Hold):
                    self.tell(await self._hold(command))
                elif isinstance(command, Stop):
                    break
        except Exception:
            self.tell(Failed(self.plan.worker, traceback.format_exc()))
        finally:
            reporter.cancel()
            await self._close_all()

    # -- sockets ---------------------------------------------------------------------------

    async def _open(self, listener: _Socket) -> None:
        spec = listener.spec
        headers = {"Authorization": f"Bearer {spec.token}"} if spec.token else None
        last_error: BaseException | None = None
        for attempt in range(_CONNECT_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.2 * attempt)
            try:
                await ws_connect(
                    lambda: listener,
                    spec.url,
                    extra_headers=headers,
                    websocket_handshake_timeout=10,
                    enable_auto_pong=True,
                    max_frame_size=1 << 20,
                )
                await asyncio.wait_for(asyncio.shield(listener.ready), self.plan.connect_timeout)
                return
            except Exception as exc:  # refused, timed out, closed, picows' handshake errors
                last_error = exc
                listener.close()
                if listener.ready.done() and not listener.ready.cancelled():
                    listener.ready.exception()  # retrieved: no "never retrieved" warning
                listener.ready = asyncio.get_running_loop().create_future()
        raise ConnectionError(f"{spec.url}: {last_error!r}")

    async def _connect_all(self) -> None:
        plan = self.plan
        self.receivers = [Receiver(self, spec) for spec in plan.receivers]
        self.senders = [Sender(self, spec) for spec in plan.senders]
        sockets: list[_Socket] = [*self.receivers, *self.senders]
        self._total = len(sockets)
        gate = asyncio.Semaphore(plan.connect_concurrency)

        async def open_one(listener: _Socket) -> None:
            async with gate:
                await self._open(listener)
                self._done += 1

        await asyncio.gather(*(open_one(s) for s in sockets))

    async def _close_all(self) -> None:
        self.stopping = True
        for listener in [*self.receivers, *self.senders]:
            listener.close()
        await asyncio.sleep(0.2)

    # -- commands --------------------------------------------------------------------------

    def _bind(self, command: Bind) -> None:
        for receiver in self.receivers:
            receiver.conversation = command.receivers.get(
                receiver.spec.index, receiver.conversation
            )
        for sender in self.senders:
            sender.conversation = command.senders.get(sender.spec.index, sender.conversation)
        self.tell(Bound(self.plan.worker))

    def _reset(self, step: int) -> None:
        self.step = step
        self.received = self.acked = self.late = 0
        self.last_ack = self.last_receive = 0
        self.acked_by_conversation = Counter()
        self.errors = Counter()
        self.closed = Counter()
        self.other_frames = Counter()
        self.ack_ms = array("f")
        self.delivery_ms = array("f")
        for receiver in self.receivers:
            receiver.reset()
        for sender in self.senders:
            sender.pending.clear()

    async def _run_step(self, command: Step) -> StepResult:
        self._reset(command.step)
        self._phase = "sending"
        senders = [s for s in self.senders if s.open]
        total = command.count if senders else 0
        self._total, self._done = total, 0
        start_ns = int(command.start_at * 1e9)
        interval_ns = 1e9 / command.rate if command.rate > 0 else 0.0
        behind_ns = 0.0
        await asyncio.sleep(max(0.0, command.start_at - time.monotonic()))
        began = time.monotonic()
        i = 0
        count = len(senders)
        while i < total:
            now = time.monotonic_ns()
            due = min(total, int((now - start_ns) / interval_ns) + 1)
            if due > i:
                behind_ns = max(behind_ns, now - (start_ns + i * interval_ns))
            while i < due:
                senders[i % count].send(command.step, start_ns + int(i * interval_ns))
                i += 1
            self._done = i
            wait = (start_ns + i * interval_ns - time.monotonic_ns()) / 1e9
            await asyncio.sleep(max(wait, 0.0005))
        send_seconds = time.monotonic() - began
        self._phase = "awaiting acks"
        await self._until(lambda: not any(s.pending for s in self.senders if s.open), command)
        self.tell(Sent(self.plan.worker, command.step, dict(self.acked_by_conversation)))
        expect = await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)
        if not isinstance(expect, Expect) or expect.step != command.step:
            raise RuntimeError(f"expected Expect for step {command.step}, got {expect!r}")
        self._phase = "awaiting deliveries"
        await self._until(lambda: self._delivered(expect.acked), command)
        await asyncio.sleep(command.quiet)  # anything sent twice would arrive now
        self._phase = "idle"
        unacked = sum(len(s.pending) for s in self.senders)
        return StepResult(
            worker=self.plan.worker,
            step=command.step,
            sent=total,
            acked=self.acked,
            acked_by_conversation=dict(self.acked_by_conversation),
            unacked=unacked,
            errors=dict(self.errors),
            closed=dict(self.closed),
            receivers=[r.tally() for r in self.receivers],
            late=self.late,
            ack_ms=self.ack_ms.tobytes(),
            delivery_ms=self.delivery_ms.tobytes(),
            send_seconds=send_seconds,
            behind_ms=behind_ns / 1e6,
            start_ns=start_ns,
            last_ack_ns=self.last_ack,
            last_receive_ns=self.last_receive,
            other_frames=dict(self.other_frames),
        )

    def _delivered(self, acked: dict[str, int]) -> bool:
        return all(r.received >= acked.get(r.conversation, 0) for r in self.receivers if r.open)

    @staticmethod
    async def _until(condition: Callable[[], bool], command: Step) -> None:
        """Poll `condition` every 20 ms, for at most `drain_max` s (polling a counter is
        cheaper than signalling from every frame's callback)."""
        deadline = time.monotonic() + command.drain_max
        while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _hold(self, command: Hold) -> HoldResult:
        self._reset(-1)
        self._phase = "holding"
        await asyncio.sleep(command.duration)
        sockets: list[_Socket] = [*self.receivers, *self.senders]
        return HoldResult(self.plan.worker, sum(s.open for s in sockets), dict(self.closed))


def worker_main(conn: Connection, plan: WorkerPlan) -> None:
    """Entry point of a load-generator process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the orchestrator, which stops us
    try:
        uvloop.run(Worker(conn, plan).main())
    finally:
        conn.close()
