"""`python -m rtm.consumer` / `rtm-consumer`: run one consumer instance."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.logging import setup_logging


def _exit_ok(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    """Serve until SIGTERM/SIGINT. uvicorn shuts down gracefully on SIGTERM, then re-raises it;
    the handler installed here turns that re-raise into a clean exit code 0."""
    settings = ConsumerSettings()
    setup_logging("consumer", settings.log_level, settings.log_format)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.consumer_port,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    signal.signal(signal.SIGTERM, _exit_ok)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
