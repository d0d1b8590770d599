"""What `rtm up` shows of the embedded servers' output: warnings and surprises, not chatter."""

from __future__ import annotations

from rtm.local.chatter import PostgresLines, nats_line_worth_showing

NATS_BANNER = [
    "[10605] 2026/12/04 05:18:19.336112 [INF] Starting nats-server",
    "[10605] 2026/12/04 05:18:19.337371 [INF]     _ ___ _____ ___ _____ ___ ___   _   __  __",
    "[10605] 2026/12/04 05:18:19.337378 [INF] ",
    "[10605] 2026/12/04 05:18:19.344716 [INF] Server is ready",
    '[18273] 2026/12/04 05:39:45.499281 [WRN] Healthcheck failed: "failed to be ready for '
    'connections after 1ms: server"',  # our readiness probe, too early
]


def test_nats_banner_and_notices_stay_in_the_log() -> None:
    assert not any(nats_line_worth_showing(line) for line in NATS_BANNER)


def test_nats_warnings_errors_and_untagged_lines_show() -> None:
    assert nats_line_worth_showing("[1] 2026/12/04 05:18:19.3 [WRN] JetStream is low on disk")
    assert nats_line_worth_showing("[1] 2026/12/04 05:18:19.3 [ERR] Error listening on port")
    assert nats_line_worth_showing("panic: runtime error: index out of range")


PG = "2026-12-04 05:18:19.377 UTC [10610] "


def test_postgres_start_up_and_expected_errors_stay_in_the_log() -> None:
    show = PostgresLines()
    quiet = [
        PG + "LOG:  starting PostgreSQL 18.6 on x86_64-pc-linux-gnu",
        PG + "FATAL:  the database system is starting up",
        PG + "LOG:  database system is ready to accept connections",
        PG + 'ERROR:  table "yoyo_tmp_xMIoLktspg" does not exist',
        PG + 'STATEMENT:  DROP TABLE "yoyo_tmp_xMIoLktspg"',
        PG + 'ERROR:  relation "yoyo_lock" already exists',
        PG + 'STATEMENT:  CREATE TABLE "yoyo_lock" ("locked" INT DEFAULT 1, "ctime" TIMESTAMP)',
        PG + "FATAL:  the database system is shutting down",
        PG + "FATAL:  terminating connection due to administrator command",
    ]
    assert [line for line in quiet if show(line)] == []


def test_an_unexpected_postgres_error_shows_with_its_detail_lines() -> None:
    show = PostgresLines()
    assert not show(PG + "LOG:  checkpoint starting: time")
    assert show(PG + 'ERROR:  relation "messages" does not exist at character 15')
    assert show(PG + "STATEMENT:  SELECT * FROM messages")
    assert show("\tcontinued statement text")
    assert not show(PG + "LOG:  checkpoint complete")
    assert not show(PG + "DETAIL:  a detail of a hidden line")
    assert show(PG + "WARNING:  there is no transaction in progress")
