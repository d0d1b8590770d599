"""The `rtm` command: run the whole system locally, migrate, or run one service.

    rtm up [--consumers N] [--no-embedded]   the whole system, supervised (what `make run` runs)
    rtm dev [--consumers N]                  the same, restarting services when their code changes
    rtm migrate                              apply migrations (to RTM_DATABASE_URL or embedded)
    rtm serve auth|producer|consumer         one service in the foreground
    rtm status                               what a running `rtm up` supervises
    rtm bench                                throughput, latency and footprint (rtm bench --help)
    rtm chaos                                kill and freeze processes under load, then check
                                             that nothing acked was lost (rtm chaos --help)
    rtm verify                               check no acked message is lost, doubled or reordered

Settings come from `RTM_*` environment variables and `.env` (see `rtm up --help`); options given
on the command line win. Errors meant for people (a busy port, another runner) are printed as one
line without a traceback, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rtm.local.settings import RunnerSettings
from rtm.local.verify import HELP as VERIFY_HELP

logger = logging.getLogger("rtm.cli")

SERVICES = ("auth", "producer", "consumer")

_SETTINGS_HELP = """\
settings (environment variables, or .env; defaults in brackets):
  RTM_NATS_URL / RTM_DATABASE_URL   use these instead of the embedded servers [unset: embedded]
  RTM_EMBEDDED_NATS_PORT [4322]  RTM_EMBEDDED_NATS_MONITOR_PORT [8322]  RTM_EMBEDDED_PG_PORT [5532]
  RTM_AUTH_GRPC_PORT [50051]  RTM_AUTH_HTTP_PORT [8080]  RTM_PRODUCER_PORT [8081]
  RTM_CONSUMER_PORT [8082; instance i uses +i-1]  RTM_CONSUMERS [1]  RTM_HOST [127.0.0.1]
  RTM_DATA_DIR [.rtm]  RTM_READY_TIMEOUT [60]  RTM_STOP_TIMEOUT [10]
  RTM_RESTART_INITIAL_DELAY [0.5]  RTM_RESTART_MAX_DELAY [30]  RTM_RESTART_MAX [5]
  RTM_RESTART_WINDOW [60]  RTM_NATS_SYNC_INTERVAL [always]  RTM_LOG_FORMAT [auto]
A port set to 0 means any free port. A busy port is an error naming the setting to change.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtm",
        description="rtm: real-time messaging on NATS JetStream and PostgreSQL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def runner_command(name: str, summary: str, detail: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=detail,
            epilog=_SETTINGS_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--consumers", type=int, metavar="N", help="consumer instances [1]")
        sub.add_argument("--producers", type=int, metavar="N", help="producer instances [1]")
        sub.add_argument("--data-dir", type=Path, metavar="DIR", help="data and logs [.rtm]")
        sub.add_argument(
            "--no-embedded",
            action="store_true",
            help="never start nats-server or PostgreSQL: require RTM_NATS_URL and RTM_DATABASE_URL",
        )
        return sub

    runner_command(
        "up",
        "start the whole system and supervise it (Ctrl-C stops it)",
        "Start nats-server and PostgreSQL (unless RTM_NATS_URL / RTM_DATABASE_URL are set), apply "
        "migrations, start auth, producer and consumer(s), wait until all are ready, print their "
        "URLs, restart any that crashes (with backoff), and stop everything on Ctrl-C/SIGTERM.",
    )
    runner_command(
        "dev",
        "like up, and restart a service when its code under src/rtm changes",
        "Like `rtm up`; in addition, a change under src/rtm/<service>/ restarts that service and a "
        "change elsewhere under src/rtm/ restarts all services.",
    )
    migrate = commands.add_parser(
        "migrate",
        help="apply pending migrations",
        description="Apply pending migrations to RTM_DATABASE_URL, or, when it is unset, to the "
        "embedded PostgreSQL under RTM_DATA_DIR/pg (started for the occasion and stopped again, "
        "or used as it is when `rtm up` is running).",
    )
    migrate.add_argument("--database-url", metavar="URL", help="instead of RTM_DATABASE_URL")
    migrate.add_argument("--data-dir", type=Path, metavar="DIR", help="data and logs [.rtm]")
    serve = commands.add_parser(
        "serve",
        help="run one service in the foreground",
        description="Run one service in this process, configured by its RTM_* variables "
        "(the same as `python -m rtm.<service>`). It needs NATS and PostgreSQL running.",
    )
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument(
        "arguments", nargs=argparse.REMAINDER, help="passed on, e.g. `rtm serve auth rotate-key`"
    )
    commands.add_parser(
        "bench",
        help="measure throughput, latency and footprint (rtm bench --help)",
        add_help=False,
    )
    commands.add_parser(
        "chaos",
        help="kill and freeze processes under load; check nothing acked is lost (rtm chaos --help)",
        add_help=False,
    )
    status = commands.add_parser("status", help="show what a running `rtm up` supervises")
    status.add_argument("--data-dir", type=Path, metavar="DIR", help="data and logs [.rtm]")
    status.add_argument("--json", action="store_true", help="print the raw status document")
    verify = commands.add_parser(
        "verify",
        help="check that every acked message is stored once, in order (exit 0/1/2)",
        description=VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("--nats-url", metavar="URL", help="instead of RTM_NATS_URL or rtm up's")
    verify.add_argument("--database-url", metavar="URL", help="instead of RTM_DATABASE_URL")
    verify.add_argument("--data-dir", type=Path, metavar="DIR", help="of the running rtm up [.rtm]")
    verify.add_argument(
        "--limit", type=int, default=20, metavar="N", help="ids listed per kind [20]"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _settings(args: argparse.Namespace) -> RunnerSettings:
    overrides: dict[str, Any] = {}
    if getattr(args, "consumers", None) is not None:
        overrides["consumers"] = args.consumers
    if getattr(args, "producers", None) is not None:
        overrides["producers"] = args.producers
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "database_url", None) is not None:
        overrides["database_url"] = args.database_url
    return RunnerSettings(**overrides)


def _up(args: argparse.Namespace, *, dev: bool) -> int:
    from rtm.local.console import banner, setup_runner_logging
    from rtm.local.dev import reload_on_change
    from rtm.local.output import TerminalSink
    from rtm.local.plan import consumer_names, producer_names
    from rtm.local.runner import serve_forever
    from rtm.local.system import System

    settings = _settings(args)
    if args.no_embedded and (settings.nats_url is None or settings.database_url is None):
        raise SystemExit("rtm: error: --no-embedded needs RTM_NATS_URL and RTM_DATABASE_URL set")
    producers = producer_names(settings.producers)
    names = ["rtm", "nats", "postgres", "auth", *producers, *consumer_names(settings.consumers)]
    sink = TerminalSink(names)
    setup_runner_logging(sink)
    system = System(settings, sink=sink)
    services = ["auth", *producers, *consumer_names(settings.consumers)]
    package_dir = Path(__file__).resolve().parent

    async def watch(running: System) -> None:
        await reload_on_change(running, package_dir, services)

    def on_ready(running: System) -> None:
        sys.stdout.write(banner(running) + "\n")
        sys.stdout.flush()

    return asyncio.run(
        serve_forever(
            system,
            on_ready=on_ready,
            background=watch if dev else None,
            stop_on_failure=not dev,
        )
    )


def _migrate(args: argparse.Namespace) -> int:
    from rtm.local.migrate import migrate
    from rtm.local.plan import redact

    logging.basicConfig(level=logging.INFO, format="rtm | %(message)s", stream=sys.stdout)
    settings = _settings(args)
    started = time.monotonic()
    url, applied = migrate(settings)
    took = time.monotonic() - started
    done = ", ".join(applied) if applied else "nothing to apply (up to date)"
    print(f"migrated {redact(url)}: {done} ({took:.1f}s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Run the service's own `main`, exactly as `rtm-<service>` would (same argv shape)."""
    module = importlib.import_module(f"rtm.{args.service}.__main__")
    sys.argv = [f"rtm-{args.service}", *args.arguments]
    result = module.main()
    return int(result or 0)


def _status(args: argparse.Namespace) -> int:
    from rtm.local.status import read_status

    settings = _settings(args)
    document = read_status(settings.data_dir / "status.json")
    if document is None:
        print(f"rtm is not running (no live runner for {settings.data_dir})")
        return 1
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"runner pid {document['runner_pid']}")
    for name, proc in document["processes"].items():
        extra = f"  {proc['detail']}" if proc["detail"] else ""
        pid = proc["pid"] if proc["pid"] is not None else "-"
        print(f"  {name:<12} {proc['state']:<10} pid {pid:<8} restarts {proc['restarts']}{extra}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from rtm.local.verify import run_verify

    return run_verify(
        _settings(args),
        nats_url=args.nats_url,
        database_url=args.database_url,
        limit=max(0, args.limit),
        as_json=args.json,
    )


def _run(args: argparse.Namespace) -> int:
    if args.command in ("up", "dev"):
        return _up(args, dev=args.command == "dev")
    if args.command == "migrate":
        return _migrate(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "verify":
        return _verify(args)
    return _status(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rtm` command; returns the exit status."""
    from rtm.local.errors import RunnerError

    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["bench"]:  # its own parser: `rtm bench --help` lists its options
        from rtm.bench.__main__ import main as bench_main

        return bench_main(given[1:])
    if given[:1] == ["chaos"]:  # its own parser too: `rtm chaos --help` lists its options
        from rtm.chaos.__main__ import main as chaos_main

        return chaos_main(given[1:])
    args = _parser().parse_args(given)
    try:
        return _run(args)
    except ValidationError as exc:
        print(f"rtm: error: invalid setting: {exc}", file=sys.stderr)
        return 2
    except RunnerError as exc:
        print(f"rtm: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the runner's own handler is installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
