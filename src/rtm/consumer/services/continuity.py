"""The continuity check as a use case, for its two callers.

- `audit(partition)`: the consumer's trailing auditor checks what this instance committed since
  the last audit, `(audited, committed]` of one partition, in bulk (one JetStream read, a few
  queries per thousand messages), then moves the audited position.
- `verify()`: `rtm verify` (and the chaos harness) check everything JetStream still holds, every
  stored row and every conversation head.

Both read through the ports of `rtm.consumer.domain.continuity_ports` and leave every judgement
to `rtm.consumer.domain.continuity`: one comparison, two scopes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from rtm.consumer.domain.continuity import (
    ConversationScan,
    EntryFindings,
    Evidence,
    MissingMessage,
    NotStored,
    OrderProblem,
    Outcome,
    SequenceCheck,
    StoredRow,
    StoredTwice,
    StreamEntry,
    check_entries,
    check_order,
    distinct_stored_twice,
    is_due,
    rows_sharing_stream_seq,
)
from rtm.consumer.domain.continuity_ports import AuditPositions, StoredHistory, StreamHistory
from rtm.consumer.domain.continuity_report import ContinuityReport, ContinuityTally

CHUNK = 1000  # stream messages per read and per lookup: bulk, and a bounded amount of memory


@dataclass(frozen=True, slots=True)
class AuditResult:
    """What one audit of `(after_seq, up_to_seq]` of a partition found (every finding, not a
    sample: the auditor logs each)."""

    partition: int
    after_seq: int
    up_to_seq: int
    outcomes: dict[Outcome, int]
    missing: list[MissingMessage] = field(default_factory=list)
    not_stored: list[NotStored] = field(default_factory=list)
    stored_twice: list[StoredTwice] = field(default_factory=list)
    out_of_order: list[OrderProblem] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True, slots=True)
class VerifyProgress:
    """How far `verify` is: `phase` "stream" (`done` messages read, up to stream sequence
    `position` of `last_seq`) or "rows" (`done` rows checked)."""

    phase: str
    done: int
    position: int
    last_seq: int
    problems: int


class ContinuityService:
    """Compares JetStream's history with PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        stream: StreamHistory,
        stored: StoredHistory,
        positions: AuditPositions | None = None,
        *,
        chunk: int = CHUNK,
        duty: float = 1.0,
    ) -> None:
        """`duty`: the share of wall time an audit may take; after each chunk it rests in
        proportion (a consumer's auditor shares the event loop with live delivery, and a
        round's burst of chunks delayed deliveries by up to 100 ms at the 99th percentile)."""
        self._stream = stream
        self._stored = stored
        self._positions = positions
        self._chunk = chunk
        self._rest = 1.0 / duty - 1.0

    async def audit(self, partition: int, *, max_messages: int) -> AuditResult | None:
        """Check the partition from its audited position up to its committed offset (at most
        `max_messages` of it: a backlog is worked off over several calls) and move the position.

        Returns None when there was nothing new, or when another instance audited the same
        range meanwhile (its findings are its to report). Raises `ContinuityUnavailable`.
        """
        assert self._positions is not None, "audit needs AuditPositions"
        audited = await self._positions.audited(partition)
        committed = await self._stored.committed_offsets()
        offset = committed.get(partition, 0)
        if offset <= audited:
            return None
        result = AuditResult(partition, audited, offset, dict.fromkeys(Outcome, 0))
        position, read = audited, 0
        chunks = self._stream.read(
            partition=partition, after_seq=audited, up_to_seq=offset, batch=self._chunk
        )
        async with aclosing(chunks):
            began = time.perf_counter()
            async for entries in chunks:
                await self._audit_chunk(entries, committed, result)
                if self._rest > 0:
                    await asyncio.sleep((time.perf_counter() - began) * self._rest)
                began = time.perf_counter()
                position = entries[-1].stream_seq
                read += len(entries)
                if read >= max_messages:
                    break
            else:
                position = offset
        if not await self._positions.advance(partition, audited, position):
            return None
        return AuditResult(
            partition,
            audited,
            position,
            result.outcomes,
            result.missing,
            result.not_stored,
            distinct_stored_twice(result.stored_twice, set()),
            result.out_of_order,
        )

    async def _audit_chunk(
        self, entries: Sequence[StreamEntry], committed: dict[int, int], into: AuditResult
    ) -> None:
        found, evidence = await self._check(entries, committed)
        for outcome, count in found.outcomes.items():
            into.outcomes[outcome] += count
        into.missing.extend(found.missing)
        into.not_stored.extend(found.not_stored)
        into.stored_twice.extend(found.stored_twice)
        # The rows of the conversations this chunk stored, and one seq beyond each end: a run is
        # checked against the row before it (an earlier chunk's) and a row after it (a copy?).
        spans: dict[uuid.UUID, tuple[int, int]] = {}
        for row in found.stored:
            lo, hi = spans.get(row.conversation_id, (row.seq, row.seq))
            spans[row.conversation_id] = (min(lo, row.seq), max(hi, row.seq))
        if not spans:
            return
        widened = {c: (max(1, lo - 1), hi + 1) for c, (lo, hi) in spans.items()}
        others, heads = await self._stored.rows_between(
            widened, [row.message_id for row in found.stored]
        )
        rows = [*found.stored, *others]
        by_conversation: dict[uuid.UUID, list[StoredRow]] = {}
        for row in rows:
            by_conversation.setdefault(row.conversation_id, []).append(row)
        known = set(into.out_of_order)  # rows out of order can put two chunks' runs side by side
        for conversation, own in by_conversation.items():
            for problem in check_order(
                own, heads.get(conversation), first_seq=widened[conversation][0], complete=False
            ):
                if problem not in known:
                    known.add(problem)
                    into.out_of_order.append(problem)
        into.stored_twice.extend(rows_sharing_stream_seq([*evidence.rows, *others]))

    async def verify(
        self, *, limit: int = 20, progress: Callable[[VerifyProgress], None] | None = None
    ) -> ContinuityReport:
        """Check every message JetStream holds against PostgreSQL, then every stored row and
        conversation head. Keeps at most `limit` ids per kind of finding; calls `progress`
        after each chunk. Raises `ContinuityUnavailable`.

        The committed offsets are read first: a message at or below them was stored (or not)
        before the stream and the rows are read, so a consumer working meanwhile cannot make
        a message look missing; what it commits later is merely reported as pending.
        """
        committed = await self._stored.committed_offsets()
        bounds = await self._stream.bounds()
        tally = ContinuityTally(limit)
        if bounds.messages > 0:
            chunks = self._stream.read(
                partition=None,
                after_seq=max(0, bounds.first_seq - 1),
                up_to_seq=bounds.last_seq,
                batch=self._chunk,
            )
            async with aclosing(chunks):
                async for entries in chunks:
                    found, _ = await self._check(entries, committed)
                    tally.add_entries(found)
                    if progress is not None:
                        progress(
                            VerifyProgress(
                                "stream",
                                tally.checked,
                                entries[-1].stream_seq,
                                bounds.last_seq,
                                tally.problems,
                            )
                        )
        scan = ConversationScan()
        rows = self._stored.all_rows(self._chunk * 5)
        async with aclosing(rows):
            async for headed in rows:
                for item in headed:
                    tally.add_order(scan.add(item.row, item.head))
                if progress is not None:
                    progress(VerifyProgress("rows", scan.rows, 0, 0, tally.problems))
        tally.add_order(scan.finish())
        for conversation, head in await self._stored.heads_without_rows():
            tally.add_order(SequenceCheck(conversation, head).finish(complete=True))
        tally.add_stored_twice(
            rows_sharing_stream_seq(await self._stored.rows_sharing_stream_seq())
        )
        return tally.report(
            stream_first_seq=bounds.first_seq,
            stream_last_seq=bounds.last_seq,
            committed=committed,
            rows_checked=scan.rows,
            conversations_checked=scan.conversations,
        )

    async def _check(
        self, entries: Sequence[StreamEntry], committed: dict[int, int]
    ) -> tuple[EntryFindings, Evidence]:
        due = [entry for entry in entries if is_due(entry, committed)]
        evidence = await self._stored.evidence(due) if due else Evidence()
        return check_entries(entries, committed, evidence), evidence
