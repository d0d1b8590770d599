"""Process-wide logging: JSON lines when not on a terminal, readable text when on one.

One line per event. Correlation: while an HTTP request is handled its id is `cid` (the
`X-Request-Id` the client sent when it is a sane token, else a fresh one; see
`rtm.shared.http`), on a WebSocket the connection's id is `conn` (`rtm.shared.ws`), and on a gRPC
call `cid` again (auth's interceptor). They live in context variables (`log_context`) that
`ContextFilter`, installed by `setup_logging`, copies onto every record; fields passed with
`extra=` (such as `message_id`, `client_msg_id`) win. Message bodies and secrets never go into
INFO lines, and `RedactSecretsFilter` replaces by `***` what may carry a credential at any level:
the values of a logged URL's query string (clients put tokens there, `/v1/ws?token=...`, although
rtm ignores them, and uvicorn logs the WebSocket's path with its query string), the value of an
`Authorization` or `Cookie` header (the websockets library's DEBUG wire trace logs every header),
and anything shaped like a JWT.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from rtm.shared.ids import new_id

LogFormat = Literal["auto", "json", "text"]

# `color_message` is uvicorn's copy of a message with ANSI colours: never written anywhere.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# What uvicorn says at INFO that a service says better itself ("producer starting on ...") or
# that is one line per connection: DEBUG here. "Press CTRL+C to quit" is wrong under `rtm up`.
_UVICORN_CHATTER = re.compile(
    r"Uvicorn running on |Started server process|Finished server process"
    r"|Waiting for application (?:startup|shutdown)|Application (?:startup|shutdown) complete"
    r'|connection (?:open|closed)$|"WebSocket '
)
# picows logs every connection at INFO as it opens and closes (22,000 lines in one benchmark
# run): DEBUG here, its warnings and errors stay. `PICOWS_LOGGER` is the logger it is given.
PICOWS_LOGGER = "rtm.picows"
_PICOWS_CHATTER = re.compile(
    r"^(?:New connection accepted: |WS connection established: |Disconnected$)"
)
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A URL path followed by a query string: `/v1/ws?token=abc&x=1` (in quotes or not).
_QUERY = re.compile(r"(/[^\s?\"']*)\?([^\s\"']*)")
_PARAM_VALUE = re.compile(r"=[^&;]*")
# A credential-bearing header as a wire trace or a repr shows it: `Authorization: Bearer x`,
# `'authorization': 'Bearer x'`, `(b'cookie', b'x')`.
_SECRET_HEADER = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie)(['\"]?\s*[:=,]\s*(?:b?['\"])?)"
    r"[^'\"\r\n)]+"
)
# A compact JWS (what rtm's access tokens are): three base64url parts, the first `{"`-encoded.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# One context variable per field name, holding the bare string: not one variable holding a dict
# of the fields. Every idle WebSocket binds `conn` in its own context, and a dict of one entry
# was ~0.2 KB of each (issue 13). Only `cid` and `conn` exist today; others are made when used.
_FIELDS: dict[str, ContextVar[str | None]] = {}


def _field(name: str) -> ContextVar[str | None]:
    """The context variable of the log field `name` (made once per name, never dropped)."""
    var = _FIELDS.get(name)
    if var is None:
        var = _FIELDS.setdefault(name, ContextVar(f"rtm_log_{name}", default=None))
    return var


_field("cid")
_field("conn")


def correlation_id(offered: str | None) -> str:
    """`offered` (a client's `X-Request-Id`) when it is a sane token (at most 64 characters of
    `[A-Za-z0-9._-]`), else a fresh id: what a client sends is never logged unchecked."""
    if offered is not None and _SANE_ID.fullmatch(offered):
        return offered
    return str(new_id())


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add `fields` (e.g. `cid=...`, `conn=...`) to every record logged inside the block, in
    this task and in the tasks it starts."""
    tokens = [(var, var.set(value)) for var, value in _vars_of(fields)]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind_log_context(**fields: str) -> None:
    """Add `fields` to the current context until it ends, for a unit of work that has a context
    of its own and no block to wrap (a gRPC call: its interceptors and handler share one)."""
    for var, value in _vars_of(fields):
        var.set(value)


def _vars_of(fields: Mapping[str, str]) -> list[tuple[ContextVar[str | None], str]]:
    return [(_field(name), value) for name, value in fields.items()]


def context_field(name: str) -> str | None:
    """The current value of a `log_context` field (None outside any)."""
    var = _FIELDS.get(name)
    return None if var is None else var.get()


class ContextFilter(logging.Filter):
    """Copies the `log_context` fields onto each record (an `extra=` of the same name wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, var in tuple(_FIELDS.items()):  # a field made by another thread meanwhile
            value = var.get()
            if value is not None and not hasattr(record, key):
                setattr(record, key, value)
        return True


def redact_secrets(text: str) -> str:
    """`text` with the value of every URL query parameter, of every credential header, and
    every JWT replaced by `***` (names kept)."""
    if "?" in text:
        text = _QUERY.sub(_redacted, text)
    text = _SECRET_HEADER.sub(r"\1\2***", text)
    return _JWT.sub("***", text) if "eyJ" in text else text


def _redacted(match: re.Match[str]) -> str:
    path, query = match[1], match[2]
    if not query:
        return match[0]
    return path + "?" + (_PARAM_VALUE.sub("=***", query) if "=" in query else "***")


class RedactSecretsFilter(logging.Filter):
    """Redacts credentials (`redact_secrets`) in every record's message before it is written:
    a token a client put in a URL or a header never reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class DemoteToDebug(logging.Filter):
    """On a logger: its INFO records whose message matches `pattern` become DEBUG records,
    written only when the logger is enabled for DEBUG (a library's chatter we cannot turn
    down by logger name without losing its warnings)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self._pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self._pattern.search(record.getMessage()):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any `extra=` fields merged in."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, extras appended as key=value."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-5s " + service + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and not key.startswith("_")
        ]
        return line + (" " + " ".join(extras) if extras else "")


def setup_logging(service: str, level: str = "INFO", fmt: LogFormat = "auto") -> None:
    """Configure the root logger once per process (called by each composition root)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if use_json else TextFormatter(service))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactSecretsFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO (producer and consumer fetching auth's keys).
    for noisy in ("uvicorn.access", "nats.aio.client", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name, chatter in (("uvicorn.error", _UVICORN_CHATTER), (PICOWS_LOGGER, _PICOWS_CHATTER)):
        chatty = logging.getLogger(name)
        chatty.filters[:] = [f for f in chatty.filters if not isinstance(f, DemoteToDebug)]
        chatty.addFilter(DemoteToDebug(chatter))
