"""The orchestrator's side of the load-generator processes: start, command, collect, stop."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from rtm.bench.errors import BenchError
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
from rtm.bench.progress import Display

T = TypeVar("T")

SPAWN = multiprocessing.get_context("spawn")


@dataclass
class _Member:
    process: BaseProcess
    conn: Connection
    inbox: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    progress: Progress | None = None
    alive: bool = True


class ProcessGroup:
    """Child processes that talk over pipes; their messages land in per-child queues."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self._members: list[_Member] = []
        self.on_progress: Callable[[list[Progress]], None] | None = None

    def spawn(self, target: Callable[..., None], *args: Any, name: str) -> int:
        """Start `target(conn, *args)` in a fresh interpreter; returns its position."""
        parent, child = SPAWN.Pipe(duplex=True)
        process = SPAWN.Process(target=target, args=(child, *args), name=name, daemon=True)
        process.start()
        child.close()
        member = _Member(process, parent)
        self._members.append(member)
        position = len(self._members) - 1
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable, position)
        return position

    @property
    def pids(self) -> list[int]:
        return [m.process.pid for m in self._members if m.process.pid is not None]

    def __len__(self) -> int:
        return len(self._members)

    @property
    def members(self) -> list[_Member]:
        return list(self._members)

    def _readable(self, position: int) -> None:
        member = self._members[position]
        try:
            message = member.conn.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(member.conn.fileno())
            member.alive = False
            member.inbox.put_nowait(Failed(position, "the process exited"))
            return
        if isinstance(message, Progress):
            member.progress = message
            if self.on_progress is not None:
                self.on_progress([m.progress for m in self._members if m.progress is not None])
            return
        member.inbox.put_nowait(message)

    def send(self, position: int, message: object) -> None:
        self._members[position].conn.send(message)

    async def receive(self, position: int, kind: type[T], timeout: float) -> T:
        """The next message of `kind` from a child; `Failed` or a timeout raise `BenchError`."""
        member = self._members[position]
        try:
            message = await asyncio.wait_for(member.inbox.get(), timeout)
        except TimeoutError:
            raise BenchError(f"{member.process.name}: no answer within {timeout:.0f}s") from None
        if isinstance(message, Failed):
            raise BenchError(f"{member.process.name} failed:\n{message.error}")
        if not isinstance(message, kind):
            raise BenchError(f"{member.process.name}: expected {kind.__name__}, got {message!r}")
        return message

    async def gather(self, kind: type[T], timeout: float) -> list[T]:
        return list(
            await asyncio.gather(*(self.receive(i, kind, timeout) for i in range(len(self))))
        )

    async def stop(self, message: object | None = None, timeout: float = 10.0) -> None:
        """Ask every child to stop (`message`), then wait, then terminate, then kill."""
        loop = asyncio.get_running_loop()
        for member in self._members:
            if message is not None and member.alive:
                with contextlib.suppress(OSError, ValueError):
                    member.conn.send(message)
        deadline = time.monotonic() + timeout
        for member in self._members:
            await asyncio.to_thread(member.process.join, max(0.1, deadline - time.monotonic()))
            if member.process.is_alive():
                member.process.terminate()
                await asyncio.to_thread(member.process.join, 3.0)
            if member.process.is_alive():
                member.process.kill()
                await asyncio.to_thread(member.process.join, 3.0)
            with contextlib.suppress(OSError, ValueError):  # the pipe is closed already
                loop.remove_reader(member.conn.fileno())
            member.conn.close()
        self._members.clear()


@dataclass
class StepOutcome:
    """Every worker's `StepResult` of one step, merged."""

    results: list[StepResult]
    ack_ms: array[float]
    delivery_ms: array[float]

    @classmethod
    def merge(cls, results: list[StepResult]) -> StepOutcome:
        ack, delivery = array("f"), array("f")
        for result in results:
            ack.frombytes(result.ack_ms)
            delivery.frombytes(result.delivery_ms)
            result.ack_ms = result.delivery_ms = b""  # merged: free the copies
        return cls(results, ack, delivery)


def split(total: int, weights: Sequence[int]) -> list[int]:
    """`total` in whole parts proportional to `weights` (largest remainder), summing to it."""
    weight = sum(weights)
    if weight == 0:
        return [0 for _ in weights]
    exact = [total * w / weight for w in weights]
    parts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


class WorkerPool:
    """Load-generator workers running `rtm.bench.loadgen.worker_main`, one per plan."""

    def __init__(self, plans: Sequence[WorkerPlan], display: Display) -> None:
        self.plans = list(plans)
        self.display = display
        self.group = ProcessGroup(display)
        self.group.on_progress = self._show
        self._label = "connecting"

    def _show(self, progress: list[Progress]) -> None:
        done = sum(p.done for p in progress)
        total = sum(p.total for p in progress)
        received = sum(p.received for p in progress)
        acked = sum(p.acked for p in progress)
        phases = sorted({p.phase for p in progress})
        self.display.status(
            f"{self._label}: {'/'.join(phases)} {done}/{total}, acked {acked}, received {received}"
        )

    @property
    def pids(self) -> list[int]:
        return self.group.pids

    def other_frames(self) -> int:
        """Frames other than messages the receivers got so far (from the last progress)."""
        return sum(m.progress.other for m in self.group.members if m.progress is not None)

    async def settle(self, quiet: float = 1.0, limit: float = 30.0) -> tuple[int, float]:
        """Wait until the receivers get no other frames (presence…) for `quiet` s, at most
        `limit` s; returns how many arrived meanwhile and how long it took."""
        began = time.monotonic()
        first = last = self.other_frames()
        changed = began
        while time.monotonic() - began < limit:
            await asyncio.sleep(0.5)
            now = self.other_frames()
            if now != last:
                last, changed = now, time.monotonic()
                self.display.status(f"waiting for presence events to settle: {now - first} so far")
            elif time.monotonic() - changed >= quiet:
                break
        return last - first, time.monotonic() - began

    async def start(self, timeout: float) -> list[Connected]:
        from rtm.bench.loadgen import worker_main

        for plan in self.plans:
            self.group.spawn(worker_main, plan, name=f"loadgen-{plan.worker}")
        self._label = "opening sockets"
        return await self.group.gather(Connected, timeout)

    async def bind(self, receivers: dict[int, str], senders: dict[int, str]) -> None:
        for position in range(len(self.group)):
            self.group.send(position, Bind(receivers, senders))
        await self.group.gather(Bound, 30.0)

    async def step(
        self, step: int, rate: float, duration: float, *, drain_max: float = 15.0
    ) -> StepOutcome:
        """Send `rate` msgs/s in total, shared by the workers in proportion to their senders;
        then wait until every receiver has every message acked to its conversation."""
        senders = [len(plan.senders) for plan in self.plans]
        counts = split(round(rate * duration), senders)
        start_at = time.monotonic() + 0.3
        self._label = f"step {step}: {rate:g} msgs/s for {duration:g}s"
        for position, count in enumerate(counts):
            share = rate * count / max(1, sum(counts))
            self.group.send(
                position, Step(step, share, start_at, duration, count, drain_max=drain_max)
            )
        sent = await self.group.gather(Sent, duration + drain_max + 30.0)
        acked: Counter[str] = Counter()
        for part in sent:
            acked.update(part.acked)
        for position in range(len(self.group)):
            self.group.send(position, Expect(step, dict(acked)))
        results = await self.group.gather(StepResult, drain_max + 30.0)
        return StepOutcome.merge(results)

    async def hold(self, duration: float) -> list[HoldResult]:
        self._label = f"holding for {duration:.0f}s"
        for position in range(len(self.group)):
            self.group.send(position, Hold(duration))
        return await self.group.gather(HoldResult, duration + 30.0)

    async def stop(self) -> None:
        await self.group.stop(Stop())
