"""`rtm-auth` / `python -m rtm.auth`: run the auth service, or rotate its signing key.

    rtm-auth               serve gRPC (RTM_AUTH_GRPC_PORT) and HTTP (RTM_AUTH_HTTP_PORT) until
                           SIGTERM or SIGINT, then shut down cleanly (exit 0)
    rtm-auth rotate-key    store a new signing key (published now, signing after
                           RTM_AUTH_KEY_PUBLISH_LEAD_SECONDS) and exit

Configuration comes from the environment (see `rtm.auth.settings.AuthSettings`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pydantic import ValidationError

from rtm.auth.bootstrap import AuthRuntime, serve
from rtm.auth.settings import AuthSettings
from rtm.shared.logging import setup_logging

logger = logging.getLogger("rtm.auth")


async def _serve_until_signalled(settings: AuthSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


async def _rotate_key(settings: AuthSettings) -> str:
    runtime = AuthRuntime(settings)
    try:
        await runtime.db.connect()
        await runtime.keys.ensure()
        kid = await runtime.keys.rotate()
        assert kid is not None  # a forced rotation always stores its key
        return kid
    finally:
        await runtime.db.close()
        runtime.hasher.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rtm-auth", description="rtm auth service")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "rotate-key"])
    args = parser.parse_args(argv)
    try:
        settings = AuthSettings()
    except ValidationError as exc:
        print(f"rtm-auth: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    setup_logging("auth", settings.log_level, settings.log_format)
    if args.command == "rotate-key":
        kid = asyncio.run(_rotate_key(settings))
        print(f"new signing key stored: {kid}")
        return 0
    try:
        asyncio.run(_serve_until_signalled(settings))
    except OSError as exc:  # a port in use: say so plainly, exit non-zero (the runner retries)
        logger.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
