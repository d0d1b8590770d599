"""`rtm chaos` / `python -m rtm.chaos`: arguments, the system, the run, the output."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import secrets
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rtm.bench.errors import BenchError
from rtm.bench.progress import Display
from rtm.bench.target import machine, now_utc, postgres_facts, versions
from rtm.chaos.errors import ChaosError
from rtm.chaos.faults import (
    ALL_KINDS,
    FaultKind,
    PlannedFault,
    fault_rng,
    parse_kinds,
    random_schedule,
)
from rtm.chaos.logs import partition_lines
from rtm.chaos.outcome import ChaosConfig, Outcome
from rtm.chaos.report import Facts, commit, markdown, summary
from rtm.chaos.run import run_chaos, system_settings
from rtm.local.datadir import remove_data_dir
from rtm.local.plan import consumer_names
from rtm.local.runner import LocalSystem
from rtm.shared.postgres import POSTGRES_FAILURES

DESCRIPTION = """\
Break a whole rtm system on purpose while it carries traffic, then check that nothing acked was
lost, stored twice or reordered, and that every receiver was sent every message exactly once, in
order (issue 10).

It starts the whole system (embedded nats-server and PostgreSQL, auth, producer, --consumers
consumer instances) on free ports in a scratch folder; signs up --users users and creates
--conversations conversations (half groups of 4-6, half direct) through the public HTTP API;
connects one outbox sender per user to the producer (pipelined; every unacked send resent with
the same client_msg_id, in order, after a reconnect, an error or silence; retry_after_ms
honoured) and a resuming receiver for every member on every consumer instance; sends --rate
msgs/s for --duration while it kills or freezes processes on a seeded schedule (the supervisor
restarts what was killed). Then it drains, reads what PostgreSQL stored and checks it all
(rtm.chaos.checker). A progress line every 10 s; a summary at the end.

faults (--faults, comma-separated; default: all):
  consumer-kill   kill -9 of a consumer instance (the instances in turn)
  consumer-down   kill -9 of a consumer instance, not restarted for --pause s (past the lease
                  TTL: its partitions move to the other instances, and back when it returns)
  consumer-term   SIGTERM of a consumer instance: a graceful stop (in turn)
  producer-kill   kill -9 of the producer
  nats-kill       kill -9 of nats-server (restarted on its data)
  postgres-kill   kill -9 of PostgreSQL's postmaster
  postgres-stop   SIGSTOP of PostgreSQL, postmaster and backends, for --pause s, then SIGCONT
  postmaster-stop SIGSTOP of the postmaster alone for --pause s (open connections keep
                  working, new ones hang), then SIGCONT
One fault every --every seconds (uniform between the bounds), kinds in shuffled rounds so that
each comes up; none in the last 10 s of the load.

recovery (per fault, in the summary): from the end of the fault until every conversation with
messages created after it has had one of them delivered; and the longest pause in acks.
"""

EPILOG = """\
examples:
  rtm chaos                                    the issue 10 run: 20 users, 10 conversations,
                                               150 msgs/s for 200 s, 2 consumers, all faults
  rtm chaos --duration 10m --seed 7            longer; the same seed replays the same plan
  rtm chaos --faults consumer-kill --every 8-12
                                               consumer crashes only, more often
  rtm chaos --write RELIABILITY.md             record the run with machine, versions, commit

exit status: 0 when nothing was found; 1 on any violation or when the run failed;
2 for bad options. A failed run keeps the scratch folder (services' logs under logs/).
"""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1m30s`, `1.5h` in seconds."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 10m, 1m30s)")
    seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a duration must be positive")
    return seconds


def parse_gap(text: str) -> tuple[float, float]:
    """`15-30` (or `20`) as (low, high) seconds."""
    low, _, high = text.partition("-")
    try:
        bounds = (parse_duration(low), parse_duration(high or low))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a gap: {text!r} (e.g. 15-30)") from None
    if bounds[0] > bounds[1]:
        raise argparse.ArgumentTypeError(f"gap {text!r}: the first bound is the smaller")
    return bounds


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _kinds(text: str) -> list[FaultKind]:
    try:
        return parse_kinds(text)
    except ChaosError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtm chaos",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, metavar="N", help="replay a plan [a random one, printed]")
    run.add_argument(
        "--duration", type=parse_duration, default=200.0, metavar="D",
        help="load length: 90s, 10m, 1m30s… [200s]",
    )  # fmt: skip
    run.add_argument("--rate", type=_positive, default=150.0, metavar="R", help="msgs/s [150]")
    run.add_argument("--users", type=_positive_int, default=20, metavar="N", help="[20]")
    run.add_argument(
        "--conversations", type=_positive_int, default=10, metavar="N",
        help="half groups of 4-6 members, half direct [10]",
    )  # fmt: skip
    run.add_argument(
        "--drain", type=parse_duration, default=90.0, metavar="D",
        help="after the load, how long the last sends may take to be acked [90s]",
    )  # fmt: skip
    faults = p.add_argument_group("faults")
    faults.add_argument(
        "--faults", type=_kinds, default=list(ALL_KINDS), metavar="KINDS",
        help="comma-separated kinds (above), or all [all]",
    )  # fmt: skip
    faults.add_argument(
        "--every", type=parse_gap, default=(15.0, 30.0), metavar="MIN-MAX",
        help="seconds between faults, uniform [15-30]",
    )  # fmt: skip
    faults.add_argument(
        "--pause", type=parse_duration, default=10.0, metavar="D",
        help="how long consumer-down, postgres-stop and postmaster-stop last [10s]",
    )  # fmt: skip
    faults.add_argument("--no-faults", action="store_true", help="no fault at all: a baseline run")
    system = p.add_argument_group("system")
    system.add_argument(
        "--consumers", type=_positive_int, default=2, metavar="N", help="consumer instances [2]"
    )
    system.add_argument("--data-dir", type=Path, metavar="DIR", help="[a scratch folder]")
    system.add_argument(
        "--keep-data", action="store_true", help="keep the folder (logs) even when all passed"
    )
    output = p.add_argument_group("output")
    output.add_argument("--write", type=Path, metavar="FILE", help="write a Markdown report")
    output.add_argument("--quiet", action="store_true", help="no progress lines")
    output.add_argument(
        "--verbose", action="store_true", help="also the supervisor's lines (restarts, readiness)"
    )
    return p


def schedule_for(args: argparse.Namespace, seed: int, consumers: int) -> list[PlannedFault]:
    """The run's faults, drawn from the seed's own fault stream."""
    if args.no_faults:
        return []
    return random_schedule(
        fault_rng(seed),
        duration=args.duration,
        kinds=args.faults,
        consumers=consumer_names(consumers),
        gap=args.every,
        pause=args.pause,
    )


async def _facts(system: LocalSystem, command: str, consumers: int) -> Facts:
    """What the report says beside the results: machine, versions, commit, settings."""
    try:
        pg = await postgres_facts(system.database_url)
    except POSTGRES_FAILURES as exc:  # facts are nice to have; never fail a run over them
        pg = {"PostgreSQL": f"unknown ({exc.__class__.__name__})"}
    found = versions()
    found["PostgreSQL"] = pg.pop("PostgreSQL", "unknown")
    return Facts(
        command=command,
        date=now_utc(),
        consumers=consumers,
        sections={
            "Machine": machine(),
            "Versions": found | {"rtm commit": commit()},
            "Settings": {
                "NATS sync_interval": "always",
                "partitions": "8 (RTM_PARTITIONS default)",
                "producer rate limit": "RTM_RATE_PER_SECOND=1000, RTM_RATE_BURST=1000",
                "restarts": "supervisor backoff 0.2 s doubling to 2 s, never given up",
            }
            | {f"PostgreSQL {k}": v for k, v in pg.items()},
        },
    )


async def _run(
    system: LocalSystem,
    config: ChaosConfig,
    schedule: list[PlannedFault],
    display: Display,
    command: str,
    consumers: int,
) -> tuple[Outcome, Facts]:
    facts = await _facts(system, command, consumers)  # before: the load average at the start
    return await run_chaos(system, config, schedule, display.log), facts


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `rtm chaos` / `python -m rtm.chaos`; returns the exit status."""
    args = parser().parse_args(argv)
    display = Display(quiet=args.quiet)
    logging.basicConfig(level=logging.WARNING, format="rtm chaos | %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("rtm.local").setLevel(logging.ERROR)
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    config = ChaosConfig(
        seed=seed,
        duration=args.duration,
        rate=args.rate,
        users=args.users,
        conversations=args.conversations,
        drain_timeout=args.drain,
    )
    given = list(sys.argv[1:] if argv is None else argv)
    command = "rtm chaos " + shlex.join(["--seed", str(seed), *_without_seed(given)])
    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="rtm-chaos-"))
    keep = args.keep_data or args.data_dir is not None
    from rtm.local.errors import RunnerError

    try:
        schedule = schedule_for(args, seed, args.consumers)
        display.log(f"seed {seed}: {len(schedule)} faults planned; replay: {command}")
        display.log(f"starting the system in {folder}")
        with LocalSystem(system_settings(folder, args.consumers)) as system:
            display.log("system ready")
            outcome, facts = asyncio.run(
                _run(system, config, schedule, display, command, args.consumers)
            )
            log_dir = system.data_dir / "logs"
            display.log("stopping the system")
    except (ChaosError, BenchError, RunnerError) as exc:
        display.done()
        print(f"rtm chaos: error: {exc}", file=sys.stderr)
        print(f"rtm chaos: data and logs kept in {folder}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        display.done()
        print(f"rtm chaos: interrupted; data and logs kept in {folder}", file=sys.stderr)
        return 130
    display.done()
    print(summary(outcome))
    if outcome.lost:
        excerpt = partition_lines(log_dir, sorted({m.partition for m in outcome.lost}))
        if excerpt:
            print("\nconsumer log lines about the partitions that lost messages:")
            print("\n".join(f"  {line}" for line in excerpt))
    if args.write is not None:
        args.write.write_text(markdown(outcome, facts))
        display.log(f"wrote {args.write}")
    if keep or not outcome.ok:
        print(f"data and logs kept in {folder}", file=sys.stderr)
    else:
        remove_data_dir(folder)
    return 0 if outcome.ok else 1


def _without_seed(arguments: list[str]) -> list[str]:
    """`arguments` minus a `--seed N` pair (the value follows the flag)."""
    out, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
            continue
        if argument == "--seed":
            skip = True
        elif not argument.startswith("--seed="):
            out.append(argument)
    return out
