"""Injecting a schedule of faults into a running `LocalSystem`, and watching each target return.

Signals go by PID through the local supervisor, which restarts whatever exits (with its
backoff). A freeze stops PostgreSQL (the postmaster and every backend, or the postmaster alone)
and always sends SIGCONT afterwards, even when the run is interrupted; its record says how many
processes were seen stopped, so a freeze that did not take shows in the report.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rtm.chaos.clients import RunClock
from rtm.chaos.faults import FREEZES, FaultKind, PlannedFault
from rtm.local.process import tree_states
from rtm.local.runner import LocalSystem
from rtm.local.spec import State

BACK_TIMEOUT_S = 120.0
_POLL_S = 0.1


@dataclass(slots=True)
class FaultRecord:
    """What happened to one planned fault; times on the run's clock."""

    planned: PlannedFault
    started: float | None = None  # the (first) signal was sent; None: not injected
    ended: float | None = None  # kills: = started; a freeze: SIGCONT sent
    pid: int | None = None
    note: str = ""
    back_after: float | None = None  # target ready again (new process), from `ended`
    frozen: int | None = None  # a freeze: processes of the group seen stopped

    @property
    def injected(self) -> bool:
        return self.started is not None


class Injector:
    """Applies a schedule, in order and on time, to `system`; `records` grows as it goes."""

    def __init__(
        self,
        system: LocalSystem,
        clock: RunClock,
        on_fault: Callable[[FaultRecord], None] = lambda record: None,
    ) -> None:
        self._system = system
        self._clock = clock
        self._on_fault = on_fault
        self.records: list[FaultRecord] = []
        self._watchers: set[asyncio.Task[None]] = set()

    async def run(self, schedule: Sequence[PlannedFault]) -> None:
        """Inject every fault at its time (late if the previous one took longer)."""
        for planned in sorted(schedule, key=lambda f: f.at):
            await asyncio.sleep(max(0.0, planned.at - self._clock.now()))
            record = await self._inject(planned)
            self.records.append(record)
            self._on_fault(record)
            if record.injected:
                watcher = asyncio.create_task(self._watch_back(record))
                self._watchers.add(watcher)
                watcher.add_done_callback(self._watchers.discard)

    async def settle(self, timeout: float = BACK_TIMEOUT_S) -> None:
        """Wait (bounded) until every target is seen back, so `back_after` is filled in."""
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=timeout)
        for watcher in list(self._watchers):
            watcher.cancel()

    async def _inject(self, planned: PlannedFault) -> FaultRecord:
        record = FaultRecord(planned)
        name = planned.target
        pid = await asyncio.to_thread(self._system.pid, name)
        if pid is None:
            record.note = f"skipped: {name} was not running"
            return record
        record.pid = pid
        record.started = self._clock.now()
        if planned.kind in FREEZES:
            await self._freeze(record)
        else:
            sig = signal.SIGTERM if planned.kind is FaultKind.CONSUMER_TERM else signal.SIGKILL
            await asyncio.to_thread(self._system.kill, name, sig)
            record.ended = record.started
        return record

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

    async def _watch_back(self, record: FaultRecord) -> None:
        name, old_pid, ended = record.planned.target, record.pid, record.ended
        assert ended is not None
        frozen = record.planned.kind in FREEZES
        while True:
            status = (await asyncio.to_thread(self._system.status)).get(name)
            if status is not None and status.state is State.READY:
                new_process = status.pid not in (None, old_pid)
                if frozen or new_process:
                    record.back_after = max(0.0, self._clock.now() - ended)
                    return
            await asyncio.sleep(_POLL_S)
