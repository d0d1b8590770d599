"""`rtm bench` / `python -m rtm.bench`: arguments, the run, the output."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rtm.bench.errors import BenchError
from rtm.bench.options import SCENARIOS, Options
from rtm.bench.progress import Display
from rtm.bench.report import Row, markdown, notes, resources_table, results_table, write_json
from rtm.bench.scenarios import Bench
from rtm.bench.target import (
    StartedSystem,
    Target,
    machine,
    now_utc,
    postgres_facts,
    require_loopback,
    versions,
)

DESCRIPTION = """\
Measure throughput, latency and footprint of the whole system on this machine.

Starts the whole system (embedded nats-server and PostgreSQL, auth, producer, consumers) on free
ports in a scratch folder, or targets one already running on loopback URLs; signs up fresh users
and logs them in; drives the services from separate load-generator processes with real WebSocket
clients at open-loop rates; samples every process's CPU seconds and memory from /proc; prints a
table (with a progress display on stderr while it runs).

scenarios (default: all, in this order):
  idle      --idle-connections authenticated idle connections on one consumer:
            RSS per connection and CPU for keepalives
  resume    time for a client to recover --resume-messages missed messages
  rooms     --connections receivers in rooms of --room-size, every member sending
  direct    the same with direct conversations (pairs)
  fanout    one group of --connections members, --fanout-senders of them sending
  baseline  the machine's raw limits in the same run: a bare nats-py publish/subscribe loop,
            JetStream publish, and a bare picows broadcast server driven with the same shapes
  pipeline  rooms through a bare pipeline with rtm's guarantees, in one process: picows in →
            JetStream publish (Nats-Msg-Id, PubAck before the ack, the run's nats-server and
            sync_interval) → pull consumer → one PostgreSQL transaction per batch (dense
            per-room seq, the run's PostgreSQL) → picows fan-out; no auth, no validation. The
            ceiling of this machine with these guarantees (needs the run's NATS and PostgreSQL)
  socketio  rooms on Socket.IO (websocket transport, broadcast to the room, ack to the sender):
            python-socketio under uvicorn + uvloop, and Node's socket.io 4.8 when node and npm
            are on PATH (installed with npm into ~/.cache/rtm/bench-node on first use; skipped
            with a note when that fails)

Each rtm row's best step is compared with the baselines' best for the same shape: `vs bare`
(rooms, direct, fanout), `vs pipeline` and `vs socket.io` (rooms; Node's when it ran, else
python-socketio's); `server CPU µs/delivery` is the CPU time of all of a system's server
processes (rtm: auth, producer, consumers, nats, postgres) per message frame delivered.

rooms, direct and fanout (and the baselines' same shapes) ramp by default: the rate goes up a
ladder, each step --duration seconds, until the p99 send→delivery latency passes its threshold
(--p99-ms for the rooms and direct shapes, --fanout-p99-ms for fanout), or a message is lost,
or the rate is not kept up; then one step half-way back. The highest passing step is the
result. --rate R alone runs one step at R msgs/s instead, judged by the same threshold;
--rate R --ramp starts the ramp at R.
"""

EPILOG = """\
examples:
  rtm bench                                      everything, issue 6 scale (a few minutes)
  rtm bench rooms --rate 1000 --duration 10      one step: rooms at 1,000 msgs/s for 10 s
  rtm bench rooms fanout --connections 100       a quick ramp at a tenth of the scale
  rtm bench rooms pipeline socketio              rooms against its ceiling and Socket.IO
  rtm bench --write BENCHMARKS.md                everything, recorded with machine and versions

exit status: 0, or 1 when a message was lost or duplicated, or the run failed.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtm bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        nargs="*",
        metavar="SCENARIO",
        help=f"one or more of {', '.join(SCENARIOS)}, or all [all]",
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--rate", type=float, metavar="R", help="messages/s sent, all senders together"
    )
    load.add_argument(
        "--ramp", action="store_true", help="ramp (the default unless --rate is given)"
    )
    load.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="seconds per step [5]; idle: seconds the connections are held [25]",
    )
    load.add_argument("--connections", type=int, default=1000, metavar="N", help="receivers [1000]")
    load.add_argument(
        "--room-size", type=int, default=10, metavar="K", help="members per room [10]"
    )
    load.add_argument(
        "--idle-connections",
        type=int,
        metavar="N",
        help="idle scenario's connections [10 x --connections = 10000]",
    )
    load.add_argument(
        "--fanout-senders", type=int, default=20, metavar="N", help="fanout's senders [20]"
    )
    load.add_argument(
        "--p99-ms",
        type=float,
        default=50.0,
        metavar="MS",
        help="p99 threshold of rooms and direct steps, rtm's and the baselines' [50]",
    )
    load.add_argument(
        "--fanout-p99-ms",
        type=float,
        default=100.0,
        metavar="MS",
        help="p99 threshold of fanout steps, rtm's and the bare broadcast's [100]",
    )
    load.add_argument("--max-steps", type=int, default=12, metavar="N", help="ramp steps [12]")
    load.add_argument(
        "--workers", type=int, default=2, metavar="N", help="load-generator processes [2]"
    )
    load.add_argument(
        "--body-chars", type=int, default=100, metavar="N", help="message body length [100]"
    )
    load.add_argument(
        "--resume-messages", type=int, default=1000, metavar="N", help="missed messages [1000]"
    )
    load.add_argument("--resume-rounds", type=int, default=5, metavar="N", help="rounds [5]")
    load.add_argument(
        "--per-connection-rate",
        type=float,
        default=20.0,
        metavar="R",
        help="the producer's frames/s per connection (RTM_RATE_PER_SECOND) [20]",
    )
    system = parser.add_argument_group("system")
    system.add_argument(
        "--consumers", type=int, default=1, metavar="N", help="consumer instances to start [1]"
    )
    system.add_argument(
        "--producers",
        type=int,
        default=1,
        metavar="N",
        help="producer instances to start; the senders are spread over them [1]",
    )
    system.add_argument(
        "--sync-interval",
        default="always",
        metavar="V",
        help="embedded JetStream fsync: always, or a duration such as 2m [always]",
    )
    system.add_argument(
        "--no-node",
        action="store_true",
        help="socketio: python-socketio only, not Node's socket.io (no npm install)",
    )
    system.add_argument("--data-dir", type=Path, metavar="DIR", help="[a scratch folder]")
    system.add_argument(
        "--keep-data", action="store_true", help="keep the scratch folder (logs) afterwards"
    )
    system.add_argument("--auth-url", metavar="URL", help="target a running system: auth HTTP")
    system.add_argument(
        "--producer-url", action="append", metavar="URL", help="... its producer(s) (repeat)"
    )
    system.add_argument(
        "--consumer-url", action="append", metavar="URL", help="... its consumer(s) (repeat)"
    )
    system.add_argument("--nats-url", metavar="URL", help="... its NATS (for the baseline)")
    system.add_argument("--database-url", metavar="URL", help="... its PostgreSQL (for facts)")
    output = parser.add_argument_group("output")
    output.add_argument("--write", type=Path, metavar="FILE", help="write a Markdown report")
    output.add_argument(
        "--append", action="store_true", help="add this run to FILE instead of replacing it"
    )
    output.add_argument("--json", type=Path, metavar="FILE", help="write every row as JSON")
    output.add_argument("--quiet", action="store_true", help="no progress display")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    unknown = [s for s in args.scenario if s not in (*SCENARIOS, "all")]
    if unknown:
        raise BenchError(
            f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}, all"
        )
    chosen = [s for s in args.scenario if s != "all"]
    if not chosen or "all" in args.scenario:
        chosen = list(SCENARIOS)
    for name, value in (
        ("--connections", args.connections),
        ("--room-size", args.room_size),
        ("--workers", args.workers),
        ("--producers", args.producers),
        ("--consumers", args.consumers),
        ("--resume-messages", args.resume_messages),
        ("--resume-rounds", args.resume_rounds),
    ):
        if value < 1:
            raise BenchError(f"{name} must be at least 1")
    if args.rate is not None and args.rate <= 0:
        raise BenchError("--rate must be positive")
    if args.duration is not None and args.duration <= 0:
        raise BenchError("--duration must be positive")
    return Options(
        scenarios=chosen,
        rate=args.rate,
        ramp=args.ramp,
        duration=args.duration,
        connections=args.connections,
        room_size=args.room_size,
        idle_connections=args.idle_connections,
        fanout_senders=args.fanout_senders,
        p99_ms=args.p99_ms,
        fanout_p99_ms=args.fanout_p99_ms,
        max_steps=args.max_steps,
        workers=args.workers,
        body_chars=args.body_chars,
        resume_messages=args.resume_messages,
        resume_rounds=args.resume_rounds,
        per_connection_rate=args.per_connection_rate,
        node=not args.no_node,
    )


def _targeted(args: argparse.Namespace) -> Target | None:
    urls = (args.auth_url, args.producer_url, args.consumer_url)
    if not any(urls):
        return None
    if not all(urls):
        raise BenchError("targeting a running system needs --auth-url, --producer-url and "
                         "--consumer-url")  # fmt: skip
    return Target(
        auth=require_loopback(args.auth_url),
        producer=require_loopback(args.producer_url[0]),
        more_producers=[require_loopback(u) for u in args.producer_url[1:]],
        consumers=[require_loopback(u) for u in args.consumer_url],
        nats_url=require_loopback(args.nats_url) if args.nats_url else None,
        database_url=args.database_url,
    )


def _raise_file_limit(wanted: int = 65536) -> None:
    """Thousands of sockets: lift the soft descriptor limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _facts(
    target: Target, options: Options, args: argparse.Namespace
) -> dict[str, dict[str, str]]:
    found_versions = versions()
    settings = {
        "system": "started by rtm bench" if target.started else "targeted by URL",
        "producers": str(len(target.producers)),
        "consumers": str(len(target.consumers)),
        "NATS sync_interval": target.sync_interval,
        "partitions": "8 (RTM_PARTITIONS default)",
        "load generators": f"{options.workers} processes",
        "step": f"{options.step_seconds:g} s per ramp step, body {options.body_chars} chars",
        "ramp threshold": f"p99 delivery ≤ {options.p99_ms:g} ms (fanout: "
        f"≤ {options.fanout_p99_ms:g} ms)",
    }
    from rtm.shared.postgres import POSTGRES_FAILURES  # asyncpg: only when used

    try:
        pg = await postgres_facts(target.database_url or args.database_url)
    except POSTGRES_FAILURES as exc:  # facts are nice to have; never fail a run over them
        pg = {"PostgreSQL": f"unknown ({exc.__class__.__name__})"}
    if "PostgreSQL" in pg:
        found_versions["PostgreSQL"] = pg.pop("PostgreSQL")
    settings.update({f"PostgreSQL {k}": v for k, v in pg.items()})
    return {"Machine": machine(), "Versions": found_versions, "Settings": settings}


async def run(args: argparse.Namespace, display: Display) -> int:
    options = options_from(args)
    _raise_file_limit()
    target = _targeted(args)
    started: StartedSystem | None = None
    failed = True
    try:
        if target is None:
            started = StartedSystem(
                args.consumers, args.sync_interval, args.data_dir, producers=args.producers
            )
            display.log(f"starting the system in {started.data_dir}")
            began = time.monotonic()
            target = await started.start()
            display.log(f"system ready in {time.monotonic() - began:.1f}s")
        facts = await _facts(target, options, args)
        facts["Run"] = {"date": now_utc()}
        bench = Bench(options, target, display)
        began = time.monotonic()
        rows = await bench.run()
        facts["Run"]["took"] = f"{time.monotonic() - began:.0f} s"
        facts["Run"]["users signed up"] = (
            f"{len(bench.population.users)} in {bench.population.signup_seconds:.0f} s"
        )
        load = os.getloadavg()
        facts["Run"]["load average at the end"] = f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        if started is not None:
            restarts = started.restarts()
            facts["Run"]["service restarts"] = str(restarts or "none")
        for number, note in enumerate(bench.setup_notes, 1):
            facts["Run"][f"setup {number}"] = note
        failed = False
    finally:
        display.done()
        if started is not None:
            display.log("stopping the system")
            await started.stop(keep=args.keep_data or failed)
            if args.keep_data or failed:
                display.log(f"data and logs kept in {started.data_dir}")
        display.done()
    return _output(args, rows, facts, bench.targets(), display)


def _output(
    args: argparse.Namespace,
    rows: list[Row],
    facts: dict[str, dict[str, str]],
    targets: list[tuple[str, str, str]],
    display: Display,
) -> int:
    """Tables on stdout, the Markdown and JSON files; the exit status."""
    print(results_table(rows, markdown=False))
    print()
    print(resources_table(rows, markdown=False))
    if targets:
        print()
        for name, measured, met in targets:
            print(f"target {met:>3}: {name}: {measured}")
    extra = notes(rows)
    if extra:
        print()
        print("\n".join(f"note: {n}" for n in extra))
    if args.write is not None:
        command = "rtm bench " + shlex.join(sys.argv[1:] if args.argv is None else args.argv)
        if args.append and args.write.exists():
            text = markdown(rows, facts, targets, command.strip(), header=False)
            with args.write.open("a") as handle:
                handle.write("\n" + text)
        else:
            args.write.write_text(markdown(rows, facts, targets, command.strip()))
        display.log(f"wrote {args.write}")
    if args.json is not None:
        write_json(args.json, rows, facts)
    bad = [r for r in rows if (r.lost or 0) > 0 or (r.duplicated or 0) > 0]
    if bad:
        print(f"rtm bench: {len(bad)} rows lost or duplicated messages", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `rtm bench` / `python -m rtm.bench`; returns the exit status."""
    args = _parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    display = Display(quiet=args.quiet)
    from rtm.local.errors import RunnerError

    try:
        # The standard loop: rtm.local starts PostgreSQL as another OS user, which uvloop's
        # subprocess support cannot do. The load generators run uvloop.
        return asyncio.run(run(args, display))
    except (BenchError, RunnerError) as exc:
        display.done()
        print(f"rtm bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        display.done()
        print("rtm bench: interrupted", file=sys.stderr)
        return 130
