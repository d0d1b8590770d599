"""`python -m rtm.consumer` / `rtm-consumer`: run one consumer instance."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from rtm.consumer.bootstrap import create_app
from rtm.consumer.entrypoints.ws import ws_protocol
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.logging import setup_logging
from rtm.shared.runtime import tune_gc


def _exit_ok(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    """Serve until SIGTERM/SIGINT. uvicorn shuts down gracefully on SIGTERM, then re-raises it;
    the handler installed here turns that re-raise into a clean exit code 0."""
    settings = ConsumerSettings()
    setup_logging("consumer", settings.log_level, settings.log_format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.consumer_port,
        ws=ws_protocol(app, settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    signal.signal(signal.SIGTERM, _exit_ok)
    tune_gc(settings.gc_young_threshold)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
