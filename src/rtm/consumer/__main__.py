"""`python -m rtm.consumer` / `rtm-consumer`: run one consumer instance."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from rtm.consumer.bootstrap import create_app
from rtm.consumer.entrypoints.ws import ws_protocol
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.gc_tuning import tune_gc
from rtm.shared.logging import setup_logging
from rtm.shared.serving import uvicorn_edge_options


def _exit_ok(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    """Serve until SIGTERM/SIGINT. uvicorn shuts down gracefully on SIGTERM, then re-raises it;
    the handler installed here turns that re-raise into a clean exit code 0."""
    settings = ConsumerSettings()
    setup_logging("consumer", settings.log_level, settings.log_format)
    signal.signal(signal.SIGTERM, _exit_ok)
    tune_gc(settings.gc_young_threshold)
    uvicorn.Server(server_config(settings)).run()


def server_config(settings: ConsumerSettings) -> uvicorn.Config:
    """The consumer's uvicorn configuration: its app, `/v1/ws` on picows, the edge limits."""
    app = create_app(settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.consumer_port,
        ws=ws_protocol(app, settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
        **uvicorn_edge_options(settings),
    )


if __name__ == "__main__":
    main()
