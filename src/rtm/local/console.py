"""What `rtm up` prints: its own log lines among the services' lines, and the ready banner.

The runner's lines go through the same `TerminalSink` as the children's, under the name `rtm`, so
one column of names lines everything up and lines from different processes never interleave.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rtm.local.output import LineSink
from rtm.local.plan import SystemUrls, redact
from rtm.local.system import System


class SinkHandler(logging.Handler):
    """A logging handler printing records as `rtm | message` lines through a `LineSink`."""

    def __init__(self, sink: LineSink, name: str = "rtm") -> None:
        super().__init__()
        self._sink = sink
        self._name = name

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.levelno >= logging.WARNING:
                message = f"{record.levelname}: {message}"
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            for line in message.splitlines() or [""]:
                self._sink.write_line(self._name, line)
        except Exception:  # logging must never take the runner down
            self.handleError(record)


def setup_runner_logging(sink: LineSink, level: int = logging.INFO) -> None:
    """Route the runner's own logging (`rtm.*`) to the terminal sink."""
    root = logging.getLogger()
    root.handlers[:] = [SinkHandler(sink)]
    root.setLevel(logging.WARNING)  # libraries: warnings only
    logging.getLogger("rtm").setLevel(level)


def web_page_rows(urls: SystemUrls, web_dir: Path) -> list[tuple[str, str]]:
    """The pages people open in a browser, as (label, URL) rows at the top of the banner: the
    chat page auth serves, or how to build it when it is not built (everything else runs)."""
    if (web_dir / "index.html").is_file():
        return [("chat", urls.web_page)]
    return [("chat", f"not built: run `make web` (node >= 20), then open {urls.web_page}")]


def banner(system: System) -> str:
    """The lines printed once everything is ready: every URL, timings, where the logs are."""
    urls = system.urls
    assert urls is not None
    status = system.status()
    lines = [f"rtm is ready in {system.ready_after or 0:.1f}s"]
    width = max(len(name) for name in [*status, "PostgreSQL"])

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<{width}}  {text}")

    for label, url in web_page_rows(urls, system.settings.web_dir):
        row(label, url)
    row("auth", f"{urls.auth}   Swagger {urls.swagger(urls.auth)}")
    row("", f"gRPC {urls.auth_grpc}")
    producers = [name for name in status if name.startswith("producer")]
    consumers = [name for name in status if name.startswith("consumer")]
    for name, base in [
        *zip(producers, urls.producers or (urls.producer,), strict=True),
        *zip(consumers, urls.consumers, strict=True),
    ]:
        row(name, f"{base}   Swagger {urls.swagger(base)}")
        row("", f"WebSocket {urls.websocket_endpoint(base)}   AsyncAPI {urls.asyncapi(base)}")
    nats_note = f"embedded, monitoring {urls.nats_monitor}" if system.nats else "external"
    row("NATS", f"{redact(urls.nats)}   ({nats_note})")
    pg_note = f"embedded, data in {system.postgres.data_dir}" if system.postgres else "external"
    row("PostgreSQL", f"{redact(urls.database)}   ({pg_note})")
    timings = ", ".join(
        f"{name} {st.ready_after:.1f}s" for name, st in status.items() if st.ready_after is not None
    )
    row("ready", timings)
    row("logs", f"{system.log_dir}/<name>.log   (states: rtm status)")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)
