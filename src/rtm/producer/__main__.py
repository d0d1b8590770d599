"""`rtm-producer` / `python -m rtm.producer`: run the producer until SIGTERM (exit code 0)."""

from __future__ import annotations

from rtm.producer.bootstrap import serve
from rtm.producer.settings import ProducerSettings
from rtm.shared.logging import setup_logging


def main() -> None:
    settings = ProducerSettings()
    setup_logging("producer", settings.log_level, settings.log_format)
    serve(settings)


if __name__ == "__main__":
    main()
