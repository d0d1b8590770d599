"""Ports of the continuity check: reading JetStream's history and PostgreSQL's rows, and keeping
the auditor's position.

Every method raises `ContinuityUnavailable` (`rtm.consumer.domain.exceptions`), and nothing else
of its transport, when it cannot read: the check did not run, which is not a finding.
Implementations live in `rtm.consumer.adapters.jetstream_history` and
`rtm.consumer.adapters.postgres_continuity`; unit tests use in-memory fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rtm.consumer.domain.continuity import Evidence, StoredRow, StreamEntry


@dataclass(frozen=True, slots=True)
class StreamBounds:
    """The stream sequences RTM_MESSAGES holds now (`first_seq > last_seq` when empty)."""

    first_seq: int
    last_seq: int
    messages: int


@dataclass(frozen=True, slots=True)
class HeadedRow:
    """A stored row with its conversation's head (`None`: no `conversation_heads` row)."""

    row: StoredRow
    head: int | None


class StreamHistory(Protocol):
    """The messages RTM_MESSAGES holds, read without disturbing the partitions' consumers."""

    async def bounds(self) -> StreamBounds:
        """What the stream holds now; `ContinuityUnavailable` when there is no such stream."""
        ...

    def read(
        self, *, partition: int | None, after_seq: int, up_to_seq: int, batch: int
    ) -> AsyncGenerator[list[StreamEntry], None]:
        """The messages of `partition` (every partition when None) with a stream sequence in
        `(after_seq, up_to_seq]`, in stream order, in lists of at most `batch`. Nothing the
        stream holds in that range is left out: a delivery lost on the way raises
        `ContinuityUnavailable`. Close the iterator (`contextlib.aclosing`) when stopping early."""
        ...


class StoredHistory(Protocol):
    """What PostgreSQL holds: committed offsets, rows and conversation heads."""

    async def committed_offsets(self) -> dict[int, int]:
        """Each partition's committed offset (a partition with no row is absent)."""
        ...

    async def evidence(self, entries: Sequence[StreamEntry]) -> Evidence:
        """The rows holding any of the entries' message ids or `(sender, client_msg_id)`, and
        which of their conversations exist."""
        ...

    async def rows_between(
        self, spans: Mapping[uuid.UUID, tuple[int, int]], known: Collection[uuid.UUID] = ()
    ) -> tuple[list[StoredRow], dict[uuid.UUID, int]]:
        """For each conversation, its rows with `lo <= seq <= hi` except those whose message_id
        is in `known` (rows the caller has already); and the heads of those conversations that
        have one."""
        ...

    def all_rows(self, batch: int) -> AsyncGenerator[list[HeadedRow], None]:
        """Every row, in `(conversation_id, seq)` order, from one snapshot."""
        ...

    async def heads_without_rows(self) -> list[tuple[uuid.UUID, int]]:
        """Conversations whose head is above 0 while they have no row at all."""
        ...

    async def rows_sharing_stream_seq(self) -> list[StoredRow]:
        """Every row whose stream sequence another row names too."""
        ...


class AuditPositions(Protocol):
    """Where the continuity auditor stands per partition: the last stream sequence it checked.
    Kept outside the process so that a restart or a new owner neither skips a range nor reports
    an old finding again."""

    async def audited(self, partition: int) -> int:
        """The partition's audited position (0 when never audited)."""
        ...

    async def advance(self, partition: int, expected: int, new: int) -> bool:
        """Move the position from `expected` to `new`; False (and no change) when it is no
        longer `expected`: another instance audited that range meanwhile."""
        ...
