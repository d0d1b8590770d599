"""The injector follows the schedule, ends every freeze and outage, and escalates an ignored
SIGTERM, against a hand-written stand-in for `LocalSystem`."""

from __future__ import annotations

import asyncio
import signal

from rtm.chaos.clients import RunClock
from rtm.chaos.faults import FaultKind, PlannedFault
from rtm.chaos.inject import Injector
from rtm.local.spec import ChildStatus, State


class FakeSystem:
    """Processes by name; a signal that ends one starts a new one (a supervisor restarting it)
    unless it is held. `deaf` processes ignore SIGTERM."""

    def __init__(self, *names: str, deaf: tuple[str, ...] = ()) -> None:
        self.pids = dict.fromkeys(names, 100)
        self.deaf = set(deaf)
        self.held: set[str] = set()
        self.signals: list[tuple[str, signal.Signals, bool]] = []

    def pid(self, name: str) -> int | None:
        return None if name in self.held else self.pids[name]

    def kill(self, name: str, sig: int = signal.SIGKILL, *, tree: bool = False) -> None:
        self.signals.append((name, signal.Signals(sig), tree))
        ends = sig == signal.SIGKILL or (sig == signal.SIGTERM and name not in self.deaf)
        if ends:
            self.pids[name] += 1

    def hold(self, name: str) -> None:
        self.held.add(name)

    def release(self, name: str, *, wait: bool = True) -> None:
        self.held.discard(name)
        self.pids[name] += 1

    def status(self) -> dict[str, ChildStatus]:
        return {
            name: ChildStatus(name, State.STOPPED if name in self.held else State.READY, pid)
            for name, pid in self.pids.items()
        }


async def run(system: FakeSystem, *faults: PlannedFault, grace: float = 15.0) -> Injector:
    clock = RunClock()
    injector = Injector(system, clock, term_grace=grace)
    await injector.run(faults)
    await injector.settle(timeout=5.0)
    return injector


async def test_a_freeze_stops_and_continues_the_whole_tree_and_overlaps_the_next_fault() -> None:
    system = FakeSystem("postgres", "consumer-1")
    injector = await run(
        system,
        PlannedFault(0.0, FaultKind.POSTGRES_STOP, "postgres", pause=0.3),
        PlannedFault(0.1, FaultKind.CONSUMER_KILL, "consumer-1"),
    )
    assert system.signals == [
        ("postgres", signal.SIGSTOP, True),
        ("consumer-1", signal.SIGKILL, False),  # during the freeze, as planned
        ("postgres", signal.SIGCONT, True),
    ]
    freeze, kill = injector.records
    assert freeze.ended is not None
    assert kill.started is not None
    assert kill.started < freeze.ended
    assert kill.back_after is not None  # a new process, ready


async def test_the_postmaster_alone_is_stopped_but_everything_is_continued() -> None:
    system = FakeSystem("postgres")
    await run(system, PlannedFault(0.0, FaultKind.POSTMASTER_STOP, "postgres", pause=0.1))
    assert system.signals == [
        ("postgres", signal.SIGSTOP, False),
        ("postgres", signal.SIGCONT, True),
    ]


async def test_a_consumer_kept_down_is_released_after_its_pause() -> None:
    system = FakeSystem("consumer-2")
    injector = await run(
        system, PlannedFault(0.0, FaultKind.CONSUMER_DOWN, "consumer-2", pause=0.2)
    )
    [record] = injector.records
    assert system.signals == [("consumer-2", signal.SIGKILL, False)]
    assert system.held == set()
    assert record.ended == record.started  # the fault is the crash; its return is back_after
    assert record.back_after is not None
    assert record.back_after >= 0.2


async def test_a_sigterm_that_is_ignored_is_followed_by_sigkill() -> None:
    system = FakeSystem("consumer-1", deaf=("consumer-1",))
    injector = await run(
        system, PlannedFault(0.0, FaultKind.CONSUMER_TERM, "consumer-1"), grace=0.2
    )
    [record] = injector.records
    assert [s for _, s, _ in system.signals] == [signal.SIGTERM, signal.SIGKILL]
    assert record.escalated
    assert record.back_after is not None


async def test_a_fault_on_a_process_that_is_down_is_skipped_and_said_so() -> None:
    system = FakeSystem("producer")
    system.hold("producer")
    injector = await run(system, PlannedFault(0.0, FaultKind.PRODUCER_KILL, "producer"))
    [record] = injector.records
    assert not record.injected
    assert "not running" in record.note
    assert system.signals == []


async def test_an_interrupted_run_still_ends_the_freeze() -> None:
    system = FakeSystem("postgres")
    injector = Injector(system, RunClock())
    task = asyncio.create_task(
        injector.run([PlannedFault(0.0, FaultKind.POSTGRES_STOP, "postgres", pause=30.0)])
    )
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert system.signals[-1] == ("postgres", signal.SIGCONT, True)
