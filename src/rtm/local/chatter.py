"""Which lines of the embedded servers' output `rtm up` shows on the terminal (pure).

nats-server prints a 26-line banner at every start, and PostgreSQL logs every step of its start
and stop, plus errors that are expected: the readiness probe's early connections are refused
("the database system is starting up"), and the migration library checks for transactional DDL
by dropping a table that cannot exist. All of it stays in the servers' log files
(`.rtm/logs/nats.log`, `postgres.log`); the terminal gets what deserves a reader: warnings and
errors nobody expected. The supervisor reports starts, readiness, crashes and restarts itself.
"""

from __future__ import annotations

import re

# `[pid] 2026/12/04 05:18:19.336112 [INF] message`: informational, debug and trace lines, and
# the warning that answers our readiness probe's first requests (the supervisor reports
# readiness itself: "nats is not ready: JetStream not healthy yet").
_NATS_NOTICE = re.compile(r"^\[\d+\] \S+ \S+ (?:\[(?:INF|DBG|TRC)\] |\[WRN\] Healthcheck failed:)")

# `2026-12-04 05:18:19.377 UTC [10610] LOG:  message` (PostgreSQL's default log_line_prefix).
_PG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[\d+\] ([A-Z0-9]+):  (.*)")
_PG_SHOWN = frozenset({"WARNING", "ERROR", "FATAL", "PANIC"})
# Lines that belong to the message before them.
_PG_FOLLOWERS = frozenset({"DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION"})
_PG_EXPECTED = re.compile(
    # The readiness probe connecting before the server accepts, or while it stops.
    r"the database system is (?:starting up|shutting down|not yet accepting connections)"
    # Connections of the services when the server stops first (a fast shutdown ends them).
    r"|terminating connection due to administrator command"
    # yoyo-migrations' probe for transactional DDL, and its lock table made at every run
    # (rtm.shared.migrate).
    r'|table "yoyo_tmp_\w+" does not exist|relation "yoyo_lock" already exists'
)


def nats_line_worth_showing(line: str) -> bool:
    """False for nats-server's informational lines (its banner included); True for warnings,
    errors and anything unexpected (a Go panic's trace has no level tag)."""
    return _NATS_NOTICE.match(line) is None


class PostgresLines:
    """Decides line by line, keeping a message's DETAIL/HINT/STATEMENT lines (and the later
    lines of a multi-line message) with the message they belong to. One per server."""

    def __init__(self) -> None:
        self._showing = True

    def __call__(self, line: str) -> bool:
        parsed = _PG_LINE.match(line)
        if parsed is None:  # a continuation line, or output before logging is set up
            return self._showing
        severity, text = parsed.groups()
        if severity in _PG_FOLLOWERS:
            return self._showing
        self._showing = severity in _PG_SHOWN and _PG_EXPECTED.search(text) is None
        return self._showing
