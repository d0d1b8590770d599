"""`python -m rtm.consumer` / `rtm-consumer`: run one consumer instance."""

from __future__ import annotations

import uvicorn

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.logging import setup_logging


def main() -> None:
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
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
