"""`rtm-auth` / `python -m rtm.auth`: run the auth service, or an admin command.

    rtm-auth [serve]                serve gRPC (RTM_AUTH_GRPC_PORT) and HTTP (RTM_AUTH_HTTP_PORT)
                                    until SIGTERM or SIGINT, then shut down cleanly (exit 0)
    rtm-auth rotate-key             store a new signing key (published now, signing after
                                    RTM_AUTH_KEY_PUBLISH_LEAD_SECONDS) and exit
    rtm-auth delete-user NAME|ID    delete an account and end its sessions (exit 0, also when it
                                    was deleted already; 1 when there is no such user)

Configuration comes from the environment (see `rtm.auth.settings.AuthSettings`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pydantic import ValidationError

from rtm.auth.bootstrap import build, serve
from rtm.auth.domain.exceptions import NotFound
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
    auth = build(settings)
    try:
        await auth.db.open()
        await auth.keys.ensure()
        kid = await auth.keys.rotate()
        assert kid is not None  # a forced rotation always stores its key
        return kid
    finally:
        await auth.db.close()
        auth.hasher.close()


async def _delete_user(settings: AuthSettings, reference: str) -> int:
    """Delete the account and publish its revocations; when NATS cannot be reached now, the
    running auth service's relay publishes them (the rows stay `revocation_published = false`)."""
    auth = build(settings)
    accounts = auth.context.accounts
    try:
        await auth.db.open()
        await auth.bus.connect_briefly()
        try:
            deletion = await accounts.delete_user(await accounts.user_id_of(reference))
        except NotFound:
            print(f"rtm-auth: no such user: {reference}", file=sys.stderr)
            return 1
        await auth.publisher.drain()
        revoked = {session.id for session in deletion.revoked}
        pending = [
            event
            for event in await auth.store.unpublished_revocations(limit=len(revoked) + 100)
            if event.session_id in revoked
        ]
    finally:
        await auth.bus.close()
        await auth.db.close()
        auth.hasher.close()
    user = deletion.user
    state = "deleted" if deletion.newly_deleted else "was already deleted"
    print(f"user {user.username} ({user.id}) {state}; {len(revoked)} sessions revoked")
    if pending:
        print(
            f"rtm-auth: {len(pending)} revocations not published yet (NATS unreachable): the"
            " running auth service's relay publishes them",
            file=sys.stderr,
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtm-auth",
        description="rtm auth service, configured by RTM_* environment variables",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="serve gRPC and HTTP until SIGTERM/SIGINT (the default)",
        description="Serve gRPC (RTM_AUTH_GRPC_PORT) and HTTP (RTM_AUTH_HTTP_PORT) until SIGTERM "
        "or SIGINT.",
    )
    commands.add_parser(
        "rotate-key",
        help="store a new signing key and exit",
        description="Store a new signing key: published at once, signing after "
        "RTM_AUTH_KEY_PUBLISH_LEAD_SECONDS.",
    )
    delete = commands.add_parser(
        "delete-user",
        help="delete an account and end its sessions",
        description="Delete an account for good: every live session is revoked and announced on "
        "NATS (producer and consumer refuse its tokens within seconds), logging in is refused "
        "like an unknown user, and the username stays taken. Deleting a deleted account again "
        "is fine (exit 0); an unknown user exits 1.",
    )
    delete.add_argument("user", metavar="USERNAME_OR_ID", help="a username or a user id (UUID)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    if args.command == "delete-user":
        return asyncio.run(_delete_user(settings, args.user))
    try:
        asyncio.run(_serve_until_signalled(settings))
    except OSError as exc:  # a port in use: say so plainly, exit non-zero (the runner retries)
        logger.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
