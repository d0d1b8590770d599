"""C1 (issue 10): nothing acked is lost, doubled or reordered while every part of rtm crashes.

The whole system as real processes with two consumer instances. Fourteen users in eight
conversations (four groups of 4-6, four direct pairs) send 100 msgs/s for 85 s through outbox
senders (pipelined; every unacked send resent with the same client_msg_id, in order, after a
reconnect, an error or silence); every member receives on both consumer instances and resumes
from its cursors after every reconnect. Meanwhile (`rotation_schedule`): kill -9 of the consumers
in turn every 10 s, every other one kept down 8 s (past the 1.5 s lease TTL, so that its
partitions move to the other instance and back: a quick restart takes its own back and never
exercises those handovers); half-way between, one kill -9 each of the producer, nats-server and
PostgreSQL's postmaster (in a seeded order), then a 10 s SIGSTOP of PostgreSQL (postmaster and
backends: a frozen database) and a 10 s SIGSTOP of the postmaster alone (new connections hang,
open ones work: what stopping "PostgreSQL's PID" does). After a drain, `rtm.chaos.checker` judges
the store and every receiving connection, and `rtm verify` compares JetStream with PostgreSQL.

This supersedes tests/e2e/test_crash_recovery.py (issue 4: kill -9 of the consumers, producer
and nats-server under two senders): the same clients and properties, with every fault of
issue 10 and a population of groups and directs.

The seed is random per run and printed; `RTM_CHAOS_SEED=<seed>` replays its plan. Recovery
figures are printed (`pytest -s`), never asserted. `rtm chaos` is the same harness at any
length.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from rtm.chaos.faults import FaultKind, fault_rng, rotation_schedule
from rtm.chaos.logs import partition_lines, trouble_lines
from rtm.chaos.outcome import ChaosConfig
from rtm.chaos.report import summary
from rtm.chaos.run import run_chaos, system_settings
from rtm.local.plan import consumer_names
from rtm.local.runner import LocalSystem

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CONSUMERS = 2
LOAD_S = 85.0


@pytest.fixture(scope="module")
def chaos_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with LocalSystem(
        system_settings(tmp_path_factory.mktemp("rtm-chaos"), CONSUMERS), cleanup=True
    ) as running:
        yield running


def _progress(text: str) -> None:
    print(f"[chaos] {text}", flush=True)


async def test_nothing_acked_is_lost_while_consumers_producer_nats_and_postgres_crash(
    chaos_system: LocalSystem,
) -> None:
    seed = int(os.environ.get("RTM_CHAOS_SEED") or secrets.randbelow(10**6))
    print(f"\nC1 seed {seed} (replay: RTM_CHAOS_SEED={seed})")
    config = ChaosConfig(
        seed=seed, duration=LOAD_S, rate=100.0, users=14, conversations=8, drain_timeout=60.0
    )
    schedule = rotation_schedule(
        fault_rng(seed),
        duration=LOAD_S,
        consumers=consumer_names(CONSUMERS),
        every=10.0,
        down_every=2,
        down=8.0,
    )

    outcome = await run_chaos(chaos_system, config, schedule, _progress)
    print(summary(outcome))
    if outcome.lost:  # what the consumers did with those partitions (shown when this fails)
        partitions = sorted({m.partition for m in outcome.lost})
        print("\n".join(partition_lines(chaos_system.data_dir / "logs", partitions)))
    elif outcome.violations:  # the consumers' warnings, starts and exits (shown when this fails)
        print("\n".join(trouble_lines(chaos_system.data_dir / "logs")))

    records = [impact.record for impact in outcome.impacts]
    assert [r.planned for r in records if r.injected] == schedule, "every fault was injected"
    assert {r.planned.kind for r in records} == {
        FaultKind.CONSUMER_KILL,
        FaultKind.CONSUMER_DOWN,
        FaultKind.PRODUCER_KILL,
        FaultKind.NATS_KILL,
        FaultKind.POSTGRES_KILL,
        FaultKind.POSTGRES_STOP,
        FaultKind.POSTMASTER_STOP,
    }
    freezes = {r.planned.kind: r.frozen for r in records if r.frozen is not None}
    assert freezes[FaultKind.POSTMASTER_STOP] == 1, "only the postmaster was stopped"
    assert (freezes[FaultKind.POSTGRES_STOP] or 0) > 1, "the postmaster and its backends"
    assert outcome.totals.acked == outcome.totals.planned, "every send was acked in the end"
    assert [str(v) for v in outcome.violations] == [], summary(outcome)
    assert outcome.continuity == [], "rtm verify: JetStream and PostgreSQL disagree"
    assert outcome.continuity_checked >= outcome.totals.acked
