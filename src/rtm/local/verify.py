"""`rtm verify`: find the system, run the continuity check, print what it found.

The system is found like the other commands find it: `--nats-url` / `--database-url`, else
`RTM_NATS_URL` / `RTM_DATABASE_URL` (environment or `.env`), else the embedded servers of the
`rtm up` running on `RTM_DATA_DIR` (its status file names their URLs). The check itself is
`rtm.consumer.verify.verify_continuity`; this module only chooses where to point it and how to
say what it found. Exit status: 0 clean, 1 problems found, 2 the check could not run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rtm.consumer.domain.continuity_report import ContinuityReport, Sample
from rtm.consumer.domain.exceptions import ContinuityUnavailable
from rtm.consumer.services import VerifyProgress
from rtm.local.plan import redact
from rtm.local.settings import RunnerSettings
from rtm.local.status import read_status

EXIT_CLEAN, EXIT_PROBLEMS, EXIT_CANNOT_RUN = 0, 1, 2
HELP = """\
Check that no acked message was lost, stored twice or stored out of order.

Reads every message JetStream still holds in RTM_MESSAGES, in stream order and in bulk, and looks
each up in PostgreSQL by message_id and by (sender, client_msg_id); then checks every stored row
and conversation head. Read-only, and safe while the system runs. Problems:
  missing       in JetStream at or below its partition's committed offset, yet neither its
                message_id nor its (sender, client_msg_id) is stored: acked, and lost
  stored twice  two rows for one JetStream message, or for one stream sequence
  out of order  in a conversation, seq order is not stream order, or seqs are not dense
                from 1 up to the conversation's head (conversation_heads.last_seq)
Counted and listed, not problems:
  resent        JetStream took a send again past its 2-minute duplicate window; one copy is
                stored (under either message_id)
  pending       above its partition's committed offset: not processed yet
  conversation gone, undecodable: the consumer rightly skips these

The system is found from --nats-url / --database-url, else RTM_NATS_URL / RTM_DATABASE_URL,
else the embedded servers of the `rtm up` running under --data-dir.

exit status: 0 clean, 1 problems found (their ids are listed), 2 the check could not run
"""
PROGRESS_EVERY_S = 2.0


class CannotVerify(Exception):
    """The check cannot run; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Target:
    nats_url: str
    database_url: str


def locate(settings: RunnerSettings, *, nats_url: str | None, database_url: str | None) -> Target:
    """Where the system is: explicit URLs, then settings, then the running `rtm up`."""
    nats_url = nats_url or settings.nats_url
    database_url = database_url or settings.database_url
    if nats_url is None or database_url is None:
        status = read_status(settings.data_dir / "status.json")
        urls: dict[str, Any] = (status or {}).get("urls") or {}
        nats_url = nats_url or urls.get("nats")
        database_url = database_url or urls.get("database")
        if nats_url is None or database_url is None:
            missing = " and ".join(
                name
                for name, url in (("NATS", nats_url), ("PostgreSQL", database_url))
                if url is None
            )
            raise CannotVerify(
                f"cannot find {missing}: no running `rtm up` under {settings.data_dir} "
                "(start it, or pass --data-dir), and no URL given: pass --nats-url / "
                "--database-url or set RTM_NATS_URL / RTM_DATABASE_URL"
            )
    return Target(nats_url, database_url)


def run_verify(
    settings: RunnerSettings,
    *,
    nats_url: str | None = None,
    database_url: str | None = None,
    limit: int = 20,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`rtm verify` from start to exit status (printing to `out` and `err`, by default
    stdout and stderr)."""
    out = out or sys.stdout
    err = err or sys.stderr
    from rtm.consumer.verify import verify_continuity  # NATS and asyncpg: only when used

    try:
        target = locate(settings, nats_url=nats_url, database_url=database_url)
    except CannotVerify as exc:
        print(f"rtm verify: cannot run: {exc}", file=err)
        return EXIT_CANNOT_RUN
    where = f"NATS {redact(target.nats_url)}, PostgreSQL {redact(target.database_url)}"
    progress = _Progress(err)
    began = time.monotonic()
    try:
        report = asyncio.run(
            verify_continuity(target.nats_url, target.database_url, limit=limit, progress=progress)
        )
    except ContinuityUnavailable as exc:
        print(
            f"rtm verify: cannot run against {where}: {exc}\n"
            "Is the system running (`rtm status`)? Check the URLs (--nats-url, --database-url, "
            "RTM_NATS_URL, RTM_DATABASE_URL) and run it again.",
            file=err,
        )
        return EXIT_CANNOT_RUN
    took = time.monotonic() - began
    if as_json:
        print(json.dumps(as_document(report), indent=2, default=str), file=out)
    else:
        print(render(report, where=where, took=took), file=out)
    return EXIT_CLEAN if report.clean else EXIT_PROBLEMS


class _Progress:
    """A line on stderr every few seconds of a long run (nothing for a short one)."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._began = time.monotonic()
        self._shown = self._began

    def __call__(self, progress: VerifyProgress) -> None:
        now = time.monotonic()
        if now - self._shown < PROGRESS_EVERY_S:
            return
        self._shown = now
        if progress.phase == "stream":
            share = 100 * progress.position / max(1, progress.last_seq)
            done = f"{progress.done:,} messages read (stream seq {progress.position:,} of "
            done += f"{progress.last_seq:,}, {share:.0f}%)"
        else:
            done = f"{progress.done:,} rows checked"
        print(
            f"rtm verify: {done}, {progress.problems} problems so far ({now - self._began:.0f}s)",
            file=self._err,
            flush=True,
        )


def as_document(report: ContinuityReport) -> dict[str, Any]:
    """The report as JSON-ready data (ids as strings), with `problems` and `clean`."""
    document = dataclasses.asdict(report)
    document["committed"] = {str(p): o for p, o in sorted(report.committed.items())}
    document["problems"] = report.problems
    document["clean"] = report.clean
    return document


def render(report: ContinuityReport, *, where: str, took: float) -> str:
    """The report for a person: a summary, then the ids of each kind of finding."""
    first, last = report.stream_first_seq, report.stream_last_seq
    lines = [
        f"rtm verify: {where}",
        f"JetStream RTM_MESSAGES: {report.checked:,} messages checked"
        + (f" (stream seq {first:,}..{last:,})" if report.checked else ""),
        f"  stored {report.stored:,}; resent {report.resent:,} (another copy is stored); "
        f"pending {report.pending:,} (above the partition's committed offset)",
        f"  not stored, as expected: conversation gone {report.conversation_gone.count:,}, "
        f"undecodable {report.undecodable.count:,}",
        f"PostgreSQL: {report.rows_checked:,} rows of {report.conversations_checked:,} "
        "conversations checked",
        f"problems: missing {report.missing.count:,}, stored twice "
        f"{report.stored_twice.count:,}, out of order {report.out_of_order.count:,}",
    ]
    lines += _section(
        "MISSING: acked, at or below the committed offset, neither message_id nor "
        "(sender, client_msg_id) stored",
        report.missing,
        lambda m: (
            f"stream_seq {m.stream_seq} partition {m.partition} (committed "
            f"{m.committed_offset}) message_id {m.message_id} conversation {m.conversation_id} "
            f"sender {m.sender_id} client_msg_id {m.client_msg_id}"
        ),
    )
    lines += _section(
        "STORED TWICE",
        report.stored_twice,
        lambda t: (
            f"rows {', '.join(map(str, t.message_ids))} stream_seq "
            f"{', '.join(map(str, t.stream_seqs))}: {t.reason}"
        ),
    )
    lines += _section(
        "OUT OF ORDER",
        report.out_of_order,
        lambda o: (
            f"conversation {o.conversation_id} seq {o.seq} ({o.kind.value}): {o.detail}"
            + (f" message_id {o.message_id}" if o.message_id else "")
        ),
    )
    for title, sample in (
        ("conversation gone (not a problem)", report.conversation_gone),
        ("undecodable (not a problem; not written by rtm's producer?)", report.undecodable),
    ):
        lines += _section(
            title,
            sample,
            lambda n: (
                f"stream_seq {n.stream_seq} partition {n.partition} "
                f"message_id {n.message_id} conversation {n.conversation_id}"
            ),
        )
    verdict = "clean" if report.clean else f"{report.problems:,} problems"
    status = EXIT_CLEAN if report.clean else EXIT_PROBLEMS
    lines.append(f"result: {verdict} ({took:.1f}s, exit {status})")
    return "\n".join(lines)


def _section(title: str, sample: Sample[Any], line: Callable[[Any], str]) -> Sequence[str]:
    if sample.count == 0:
        return []
    shown = len(sample.items)
    more = f", the first {shown} below" if shown < sample.count else ""
    return [f"{title}: {sample.count:,}{more}", *(f"  {line(item)}" for item in sample.items)]
