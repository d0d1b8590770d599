"""Injecting a schedule of faults into a running `LocalSystem`, and watching each target return.

Signals go by PID through the local supervisor, which restarts whatever exits (with its
backoff). A SIGTERM is followed by a SIGKILL when the process has not exited `TERM_GRACE_S`
later, as an orchestrator's grace period would (the services promise to exit within
`RTM_SHUTDOWN_TIMEOUT_S`, 8 s by default): the record says so, and the run goes on. A freeze
stops PostgreSQL (the postmaster and every backend, or the postmaster alone) and always sends
SIGCONT afterwards, even when the run is interrupted; its record says how many processes were
seen stopped, so a freeze that did not take shows in the report.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from rtm.chaos.clients import RunClock
from rtm.chaos.faults import FREEZES, FaultKind, PlannedFault
from rtm.local.process import tree_states
from rtm.local.spec import ChildStatus, State

BACK_TIMEOUT_S = 30.0  # after the load: how long a target may still take to come back
TERM_GRACE_S = 15.0
_POLL_S = 0.1


class Faultable(Protocol):
    """What the injector does to the system: `LocalSystem`'s blocking calls (each is run in a
    thread, off the run's event loop)."""

    def pid(self, name: str) -> int | None: ...

    def kill(self, name: str, sig: int = signal.SIGKILL, *, tree: bool = False) -> None: ...

    def hold(self, name: str) -> None: ...

    def release(self, name: str, *, wait: bool = True) -> None: ...

    def status(self) -> dict[str, ChildStatus]: ...


@dataclass(slots=True)
class FaultRecord:
    """What happened to one planned fault; times on the run's clock."""

    planned: PlannedFault
    started: float | None = None  # the (first) signal was sent; None: not injected
    ended: float | None = None  # kills: = started; a freeze: SIGCONT sent
    pid: int | None = None
    note: str = ""
    back_after: float | None = None  # target ready again (new process), from `ended`
    frozen: int | None = None  # a freeze: processes of the tree seen stopped
    escalated: bool = False  # a SIGTERM the process did not obey: SIGKILLed after the grace

    @property
    def injected(self) -> bool:
        return self.started is not None


class Injector:
    """Applies a schedule on time to `system`; `records` grows as it goes (in schedule order)."""

    def __init__(
        self,
        system: Faultable,
        clock: RunClock,
        on_fault: Callable[[FaultRecord], None] = lambda record: None,
        *,
        term_grace: float = TERM_GRACE_S,
    ) -> None:
        self._system = system
        self._clock = clock
        self._on_fault = on_fault
        self._term_grace = term_grace
        self.records: list[FaultRecord] = []
        self._watchers: set[asyncio.Task[None]] = set()

    async def run(self, schedule: Sequence[PlannedFault]) -> None:
        """Inject every fault at its time; a lasting one (a freeze, a consumer kept down) runs
        alongside the next ones, so faults overlap as the schedule says."""
        injecting: list[asyncio.Task[None]] = []
        try:
            for planned in sorted(schedule, key=lambda f: f.at):
                await asyncio.sleep(max(0.0, planned.at - self._clock.now()))
                injecting.append(asyncio.create_task(self._apply(planned)))
                await asyncio.sleep(0)  # let it send its signal before the next one is due
            await asyncio.gather(*injecting)
        finally:
            for task in injecting:
                task.cancel()  # an interrupted run: each ends its freeze or outage on the way
            await asyncio.gather(*injecting, return_exceptions=True)

    async def _apply(self, planned: PlannedFault) -> None:
        record = FaultRecord(planned)
        self.records.append(record)
        await self._inject(record)
        self._on_fault(record)
        if record.injected:
            watcher = asyncio.create_task(self._watch_back(record))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)

    async def settle(self, timeout: float = BACK_TIMEOUT_S) -> None:
        """Wait (bounded) until every target is seen back, so `back_after` is filled in; one
        still not back keeps `back_after` None (the report says so)."""
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=timeout)
        for watcher in list(self._watchers):
            watcher.cancel()

    async def _inject(self, record: FaultRecord) -> None:
        planned = record.planned
        name = planned.target
        pid = await asyncio.to_thread(self._system.pid, name)
        if pid is None:
            record.note = f"skipped: {name} was not running"
            return
        record.pid = pid
        record.started = self._clock.now()
        if planned.kind in FREEZES:
            await self._freeze(record)
        elif planned.kind is FaultKind.CONSUMER_DOWN:
            await self._down(record)
        else:
            sig = signal.SIGTERM if planned.kind is FaultKind.CONSUMER_TERM else signal.SIGKILL
            await asyncio.to_thread(self._system.kill, name, sig)
            record.ended = record.started

    async def _freeze(self, record: FaultRecord) -> None:
        name, pid = record.planned.target, record.pid
        assert pid is not None
        tree = record.planned.kind is FaultKind.POSTGRES_STOP
        await asyncio.to_thread(self._system.kill, name, signal.SIGSTOP, tree=tree)
        try:
            await asyncio.sleep(min(0.2, record.planned.pause))
            states = tree_states(pid)
            record.frozen = states["T"]
            record.note = f"{states['T']} of {sum(states.values())} processes stopped"
            await asyncio.sleep(max(0.0, record.planned.pause - 0.2))
        finally:
            # Shielded: an interrupted run must not leave PostgreSQL frozen. Always the whole
            # tree: nothing may stay stopped whatever was stopped.
            await asyncio.shield(
                asyncio.to_thread(self._system.kill, name, signal.SIGCONT, tree=True)
            )
            record.ended = self._clock.now()

    async def _down(self, record: FaultRecord) -> None:
        """SIGKILL, and no restart for `pause` s. The fault is the crash (`ended` = `started`):
        recovery is the others taking its partitions over; its return is `back_after`."""
        name = record.planned.target
        await asyncio.to_thread(self._system.kill, name, signal.SIGKILL)
        record.ended = record.started
        await asyncio.to_thread(self._system.hold, name)
        try:
            await asyncio.sleep(record.planned.pause)
        finally:
            await asyncio.shield(asyncio.to_thread(self._system.release, name, wait=False))

    async def _watch_back(self, record: FaultRecord) -> None:
        name, old_pid, ended = record.planned.target, record.pid, record.ended
        assert ended is not None
        frozen = record.planned.kind in FREEZES
        terminated = record.planned.kind is FaultKind.CONSUMER_TERM
        while True:
            status = (await asyncio.to_thread(self._system.status)).get(name)
            if status is not None and status.state is State.READY:
                new_process = status.pid not in (None, old_pid)
                if frozen or new_process:
                    record.back_after = max(0.0, self._clock.now() - ended)
                    return
            overdue = self._clock.now() - ended > self._term_grace
            if terminated and overdue and status is not None and status.pid == old_pid:
                record.escalated = True
                record.note = f"still running {self._term_grace:g}s after SIGTERM: SIGKILLed"
                await asyncio.to_thread(self._system.kill, name, signal.SIGKILL)
            await asyncio.sleep(_POLL_S)
