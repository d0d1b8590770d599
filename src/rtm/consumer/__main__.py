"""`python -m rtm.consumer` / `rtm-consumer`: run one consumer instance until SIGTERM (exit 0)."""

from __future__ import annotations

from rtm.consumer.bootstrap import serve
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.logging import setup_logging


def main() -> None:
    settings = ConsumerSettings()
    setup_logging("consumer", settings.log_level, settings.log_format)
    serve(settings)


if __name__ == "__main__":
    main()
