"""What services do not write at INFO: uvicorn's ANSI copies of messages, its "Press CTRL+C"
and lifecycle chatter, and one line per request or connection (issue 14: a quiet start)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from rtm.shared.logging import PICOWS_LOGGER, JsonFormatter, TextFormatter, setup_logging
from rtm.shared.picows_server import PICOWS_LOG


@pytest.fixture
def service_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What a service configured by `setup_logging` (text, INFO) writes; restored afterwards."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    names = ("", "uvicorn.error", "httpx", PICOWS_LOGGER)
    root, uvicorn, httpx, picows = (logging.getLogger(n) for n in names)
    saved = (root.handlers[:], root.level, uvicorn.filters[:], httpx.level, picows.filters[:])
    setup_logging("producer", "INFO", "text")
    yield stream
    root.handlers[:], root.level, uvicorn.filters[:] = saved[0], saved[1], saved[2]
    httpx.setLevel(saved[3])
    picows.filters[:] = saved[4]


def test_uvicorn_start_and_stop_chatter_is_debug(service_log: io.StringIO) -> None:
    uvicorn = logging.getLogger("uvicorn.error")
    coloured = {"color_message": "Started server process [\x1b[36m%d\x1b[0m]"}
    uvicorn.info("Started server process [%d]", 42, extra=coloured)
    uvicorn.info("Waiting for application startup.")
    uvicorn.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "h", 1)
    uvicorn.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/v1/ws")
    uvicorn.info("connection open")
    uvicorn.warning("Invalid HTTP request received.")
    written = service_log.getvalue()
    assert written.count("\n") == 1
    assert "Invalid HTTP request received." in written


def test_picows_connection_lines_are_debug_and_its_warnings_stay(
    service_log: io.StringIO,
) -> None:
    """What picows 2.3 says per connection, through the logger the servers give it."""
    PICOWS_LOG.info(
        "New connection accepted: %s <- %s, recvbuf=%d, sendbuf=%d, quickack=%d, nodelay=%d, "
        "mask_impl=%s",
        ("127.0.0.1", 8082),
        ("127.0.0.1", 40000),
        65536,
        16384,
        1,
        1,
        "avx2",
    )
    PICOWS_LOG.info("Disconnected")
    PICOWS_LOG.warning("Protocol writing pause requested, crossed writing buffer high-watermark")
    written = service_log.getvalue()
    assert written.count("\n") == 1
    assert "Protocol writing pause requested" in written


def test_httpx_requests_are_not_logged_at_info(service_log: io.StringIO) -> None:
    logging.getLogger("httpx").info('HTTP Request: GET http://a/.well-known/jwks.json "200 OK"')
    assert service_log.getvalue() == ""


@pytest.mark.parametrize("formatter", [TextFormatter("p"), JsonFormatter("p")])
def test_no_formatter_writes_uvicorns_colour_copy(formatter: logging.Formatter) -> None:
    record = logging.makeLogRecord(
        {"msg": "Finished server process [%d]", "args": (7,), "levelno": logging.INFO}
    )
    record.color_message = "Finished server process [\x1b[36m%d\x1b[0m]"
    line = formatter.format(record)
    assert "\x1b" not in line
    assert "color_message" not in line
    assert "Finished server process [7]" in line
