"""The load-generator worker: one OS process holding many real WebSocket clients (picows).

Receivers are consumer sockets (or the bare server's `/r/<room>` sockets); senders are producer
sockets (or `/s/<room>`). A step sends open-loop: message i of the step is due at
`start + i / rate`, whatever happened to earlier ones, and goes out on the next sender in turn;
the body carries that scheduled time (see `rtm.bench.model`). Every loop here is bounded: sends
by `rate * duration`, waits by their timeouts. The clients themselves, and what they check of
each frame, are in `rtm.bench.loadgen_sockets`; here is the process around them: opening them,
obeying the orchestrator's commands, and reporting.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection

import uvloop
from picows import WSError, ws_connect

from rtm.bench.loadgen_sockets import Receiver, Sender, Socket
from rtm.bench.model import (
    Bind,
    Bound,
    Connected,
    Expect,
    Failed,
    Hold,
    HoldResult,
    Progress,
    Sent,
    Step,
    StepResult,
    Stop,
    WorkerPlan,
)

_PROGRESS_EVERY = 0.5
_CONNECT_ATTEMPTS = 3


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
        except Exception:  # last line of defence: the traceback goes to the parent's report
            self.tell(Failed(self.plan.worker, traceback.format_exc()))
        finally:
            reporter.cancel()
            await self._close_all()

    # -- sockets ---------------------------------------------------------------------------

    async def _open(self, listener: Socket) -> None:
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
            except (OSError, TimeoutError, WSError) as exc:  # refused, timed out, closed, handshake
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
        sockets: list[Socket] = [*self.receivers, *self.senders]
        self._total = len(sockets)
        gate = asyncio.Semaphore(plan.connect_concurrency)

        async def open_one(listener: Socket) -> None:
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
        sockets: list[Socket] = [*self.receivers, *self.senders]
        return HoldResult(self.plan.worker, sum(s.open for s in sockets), dict(self.closed))


def worker_main(conn: Connection, plan: WorkerPlan) -> None:
    """Entry point of a load-generator process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the orchestrator, which stops us
    try:
        uvloop.run(Worker(conn, plan).main())
    finally:
        conn.close()
