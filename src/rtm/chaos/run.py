"""One chaos run against a running `LocalSystem`: set up, load under faults, drain, judge.

1. **Setup**: sign up and log in the users, create the conversations (public HTTP API), connect
   a resuming receiver for every member on every consumer instance and wait until each has had
   its first `resume` answered.
2. **Load**: for `duration` s the senders write the planned messages on time into their
   outboxes and send them; the injector applies the fault schedule meanwhile.
3. **Drain**: no new messages. The senders get `drain_timeout` s to have everything acked; then
   the run waits until PostgreSQL holds the acked messages and the receivers have caught up
   (each wait ends early when nothing has moved for a while: a lost message never arrives).
4. **Judge**: read the stored rows, run the checker on the store and on every receiver's
   connections, measure each fault's recovery (`rtm.chaos.outcome.judge`).

Used by `rtm chaos` and by the e2e test tests/e2e/test_chaos.py.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from rtm.bench.population import Population
from rtm.chaos.clients import Credentials, RunClock
from rtm.chaos.errors import ChaosError
from rtm.chaos.faults import PlannedFault
from rtm.chaos.inject import Injector
from rtm.chaos.outcome import ChaosConfig, ConversationInfo, Outcome, judge
from rtm.chaos.receiver import Deliveries, ResumingReceiver
from rtm.chaos.sender import OutboxSender, Outgoing
from rtm.chaos.store import heads, stored_rows
from rtm.chaos.workload import plan_conversations, plan_messages
from rtm.consumer.verify import verify_continuity
from rtm.local.plan import SystemUrls, consumer_names
from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings
from rtm.local.spec import State
from rtm.shared.contract import partition_of

READY_TIMEOUT_S = 30.0
STALL_S = 15.0  # a drain wait ends when nothing moved for this long
SETTLE_TIMEOUT_S = 60.0  # a drain wait ends after this long in any case

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """No progress output."""


async def run_chaos(
    system: LocalSystem,
    config: ChaosConfig,
    schedule: Sequence[PlannedFault],
    progress: Progress = _quiet,
) -> Outcome:
    """Run `config` with `schedule` against `system` (started, ready) and judge it.

    Raises:
        ChaosError: the run could not be set up or its results not read (not a verdict).
    """
    return await _Run(system, config, progress).execute(list(schedule))


class _Run:
    def __init__(self, system: LocalSystem, config: ChaosConfig, progress: Progress) -> None:
        self.system = system
        self.urls: SystemUrls = system.urls
        self.config = config
        self.progress = progress
        self.clock = RunClock()
        self.deliveries = Deliveries()
        self.conversations: list[ConversationInfo] = []
        self.senders: list[OutboxSender] = []
        self.receivers: list[ResumingReceiver] = []
        self.injector = Injector(system, self.clock)
        self.sending: list[asyncio.Task[None]] = []
        self.reporting: asyncio.Task[None] | None = None
        self.timings: dict[str, float] = {}

    async def execute(self, schedule: list[PlannedFault]) -> Outcome:
        began = time.monotonic()
        await self._setup()
        receiving = [asyncio.create_task(r.run(), name=r.name) for r in self.receivers]
        try:
            await self._wait_receivers_ready(receiving)
            self.timings["setup"] = time.monotonic() - began
            await self._load(schedule)
            await self._drain()
        finally:
            for task in receiving:
                task.cancel()
            ended = await asyncio.gather(*receiving, return_exceptions=True)
        for result in ended:
            if isinstance(result, Exception):  # a receiver bug, not a finding: show it
                raise result
        began = time.monotonic()
        stored = await stored_rows(self.system.database_url, [c.id for c in self.conversations])
        outcome = judge(
            self.config,
            schedule=schedule,
            conversations=self.conversations,
            senders=self.senders,
            receivers=self.receivers,
            deliveries=self.deliveries,
            records=self.injector.records,
            stored=stored,
        )
        outcome.anomalies += self._supervisor_anomalies()
        outcome.continuity, outcome.continuity_checked = await continuity_check(self.system)
        self.timings["check"] = time.monotonic() - began
        outcome.timings = self.timings
        return outcome

    # -- 1. setup ----------------------------------------------------------------------------
    async def _setup(self) -> None:
        config = self.config
        rng = random.Random(config.seed)  # noqa: S311 - a replayable plan, not a secret
        planned = plan_conversations(rng, config.users, config.conversations)
        messages = plan_messages(rng, planned, config.rate, config.duration)
        self.progress(
            f"signing up {config.users} users, creating {len(planned)} conversations "
            f"({sum(c.kind == 'group' for c in planned)} groups, the rest direct)"
        )
        population = Population(self.urls.auth, self.urls.producer, _quiet)
        users = await population.ensure(config.users)
        conversation_id: list[str] = []
        for kind in ("group", "direct"):  # the plan lists its groups first
            conversation_id += await population.conversations(
                [[users[u] for u in c.members] for c in planned if c.kind == kind], kind
            )
        self.conversations = [
            ConversationInfo(
                i, c.kind, len(c.members), partition_of(uuid.UUID(i), config.partitions)
            )
            for i, c in zip(conversation_id, planned, strict=True)
        ]
        credentials = [Credentials(u, self.urls.auth) for u in users]
        producer_ws = SystemUrls.websocket(self.urls.producer) + "/v1/ws"
        for u, user in enumerate(users):
            mine = [
                Outgoing(
                    m.index,
                    m.at,
                    conversation_id[m.conversation],
                    str(m.client_msg_id),
                    f"chaos {config.seed} #{m.index} from {user.username}",
                )
                for m in messages
                if m.sender == u
            ]
            if mine:
                self.senders.append(
                    OutboxSender(
                        user.username,
                        credentials[u],
                        producer_ws,
                        mine,
                        self.clock,
                        window=config.window,
                        answer_timeout=config.answer_timeout,
                    )
                )
        names = consumer_names(len(self.urls.consumers))
        for u, user in enumerate(users):
            member_of = [conversation_id[n] for n, c in enumerate(planned) if u in c.members]
            if not member_of:
                continue
            for name, base in zip(names, self.urls.consumers, strict=True):
                self.receivers.append(
                    ResumingReceiver(
                        f"{user.username}@{name}",
                        credentials[u],
                        SystemUrls.websocket(base) + "/v1/ws",
                        member_of,
                        self.clock,
                        self.deliveries,
                    )
                )

    async def _wait_receivers_ready(self, receiving: list[asyncio.Task[None]]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(r.ready for r in self.receivers):
            if time.monotonic() > deadline:
                late = [r.name for r in self.receivers if not r.ready]
                raise ChaosError(f"receivers not resumed within {READY_TIMEOUT_S:g}s: {late[:5]}")
            for task in receiving:
                if task.done():
                    task.result()  # a receiver bug: raise it here
            await asyncio.sleep(0.1)
        self.progress(f"{len(self.receivers)} receivers connected and resumed")

    # -- 2. load -----------------------------------------------------------------------------
    async def _load(self, schedule: list[PlannedFault]) -> None:
        config = self.config
        self.progress(
            f"load: {config.rate:g} msgs/s for {config.duration:g}s from {len(self.senders)} "
            f"senders; {len(schedule)} faults planned"
        )
        self.clock.start()
        self.sending = [asyncio.create_task(s.run(), name=s.name) for s in self.senders]
        injecting = asyncio.create_task(self.injector.run(schedule), name="faults")
        self.reporting = asyncio.create_task(self._report_progress(len(schedule)), name="progress")
        try:
            await asyncio.sleep(config.duration)
            await injecting  # a freeze may end a little after the load
        finally:
            injecting.cancel()
            await asyncio.gather(injecting, return_exceptions=True)
        self.timings["load"] = self.clock.now()

    async def _report_progress(self, planned_faults: int) -> None:
        ids = [c.id for c in self.conversations]
        while True:
            await asyncio.sleep(self.config.progress_every)
            counts = await heads(self.system.database_url, ids)
            stored = f"{sum(counts.values()):,}" if counts is not None else "? (no answer)"
            acked = sum(len(s.acked) for s in self.senders)
            records = [r for r in self.injector.records if r.started is not None or r.note]
            last = ""
            if records:
                r = records[-1]
                when = f" at {r.started:.1f}s" if r.started is not None else f" ({r.note})"
                last = f" (last: {r.planned.label}{when})"
            now, duration = self.clock.now(), self.config.duration
            phase = f"load {now:.0f}/{duration:.0f}s" if now <= duration else "draining"
            received = sum(r.received for r in self.receivers)
            self.progress(
                f"{phase}: acked {acked:,}, stored {stored}, delivered {received:,}, "
                f"faults {len(records)}/{planned_faults}{last}"
            )

    # -- 3. drain ----------------------------------------------------------------------------
    async def _drain(self) -> None:
        began = self.clock.now()
        unacked = sum(len(s.outbox) for s in self.senders)
        self.progress(f"load over: draining ({unacked:,} sends not acked yet)")
        try:
            done, pending = await asyncio.wait(self.sending, timeout=self.config.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()  # a sender bug: raise it here
            ids = [c.id for c in self.conversations]
            acked: Counter[str] = Counter(m.conversation_id for s in self.senders for m in s.acked)
            stored = await self._settle(
                "stored", lambda counts: all(counts[c] >= acked[c] for c in ids), ids
            )
            await self._settle(
                "received",
                lambda counts: all(
                    r.cursor[c] >= counts[c] for r in self.receivers for c in r.conversations
                ),
                ids,
                fixed=stored,
            )
            await self.injector.settle()
        finally:
            if self.reporting is not None:
                self.reporting.cancel()
                await asyncio.gather(self.reporting, return_exceptions=True)
        self.timings["drain"] = self.clock.now() - began

    async def _settle(
        self,
        what: str,
        done: Callable[[dict[str, int]], bool],
        ids: list[str],
        fixed: dict[str, int] | None = None,
    ) -> dict[str, int]:
        """Wait until `done(counts)` holds, nothing moved for `STALL_S`, or `SETTLE_TIMEOUT_S`."""
        began = last_move = time.monotonic()
        last: tuple[int, ...] = ()
        counts: dict[str, int] = dict.fromkeys(ids, 0)
        while time.monotonic() - began < SETTLE_TIMEOUT_S:
            fresh = fixed if fixed is not None else await heads(self.system.database_url, ids)
            if fresh is not None:
                counts = fresh
                if done(counts):
                    return counts
            moved = (
                sum(counts.values()),
                sum(r.received for r in self.receivers),
            )
            if moved != last:
                last, last_move = moved, time.monotonic()
            elif time.monotonic() - last_move > STALL_S:
                self.progress(f"drain: {what} stopped moving; judging what there is")
                return counts
            await asyncio.sleep(0.5)
        self.progress(f"drain: not all {what} after {SETTLE_TIMEOUT_S:g}s; judging what there is")
        return counts

    def _supervisor_anomalies(self) -> list[str]:
        return [
            f"the supervisor gave up on {name}: {status.detail}"
            for name, status in self.system.status().items()
            if status.state is State.FAILED
        ]


def system_settings(folder: Path, consumers: int) -> RunnerSettings:
    """The system under test: as `rtm up` runs it, on free ports; restarts never given up
    (faults come faster than the default budget of 5 crashes a minute), per-connection rate
    limits out of the way (the senders' pace is the run's, not what is tested)."""
    return RunnerSettings.for_tests(
        folder,
        consumers=consumers,
        ready_timeout=120.0,
        stop_timeout=10.0,
        restart_max=1000,
        service_env={"RTM_RATE_PER_SECOND": "1000", "RTM_RATE_BURST": "1000"},
    )


CONTINUITY_SHOWN = 20  # ids per kind of `rtm verify` finding in the report


async def continuity_check(system: LocalSystem) -> tuple[list[str], int]:
    """`rtm verify` on the drained system: every acked message JetStream holds is stored once,
    in order (JetStream against PostgreSQL, independently of what the clients saw). Returns the
    findings, one line each (none: all continuous), and how many messages were compared."""
    report = await verify_continuity(system.nats_url, system.database_url, limit=CONTINUITY_SHOWN)
    findings = [
        f"missing: stream seq {m.stream_seq} (partition {m.partition}, committed offset "
        f"{m.committed_offset}), message {m.message_id} from {m.sender_id}"
        for m in report.missing.items
    ]
    findings += [f"stored twice: {item}" for item in report.stored_twice.items]
    findings += [f"out of order: {item}" for item in report.out_of_order.items]
    hidden = report.problems - len(findings)
    if hidden > 0:
        findings.append(f"... and {hidden} more")
    return findings, report.checked
