"""Consumer errors: every one the consumer defines, by what it means to the caller.

RtmError (rtm.shared.errors)
  ConversationNotVisible   -- not a member, or no such conversation (`forbidden`, 404)
  Unavailable              -- PostgreSQL cannot answer now (`unavailable`, 503, retry_after_ms)
OffsetMoved                -- the committed offset is not the one this worker started from
Fenced                     -- a newer owner claimed the partition: this worker stops for good
OutOfOrder                 -- a source handed over a batch not in stream order
DeliveryGap                -- a source cannot vouch nothing was skipped: restart from the offset
ContinuityUnavailable      -- the continuity check could not read JetStream or PostgreSQL
"""

from __future__ import annotations

from rtm.consumer.domain.model import FenceToken
from rtm.shared.errors import ErrorCode, RtmError


class ConversationNotVisible(RtmError):
    """Same answer for a missing conversation and someone else's: no oracle."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.FORBIDDEN, "no such conversation, or you are not a member")


class Unavailable(RtmError):
    """PostgreSQL did not answer in time, refused, or went away: retry after `retry_after_ms`.

    Raised by the PostgreSQL adapters (`rtm.shared.postgres.PostgresDatabase` raises it), never
    a driver exception: HTTP answers 503, a `resume` an error frame, a partition worker restarts
    from the committed offset.
    """

    def __init__(self, message: str, retry_after_ms: int = 1000) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message, retry_after_ms=retry_after_ms)


class OffsetMoved(Exception):
    """The partition's committed offset is not the one this worker expected.

    Another worker owns the partition now (or did meanwhile); this one must stop and, if it gets
    the lease again, restart from the committed offset.
    """

    def __init__(self, partition: int, expected: int, found: int) -> None:
        super().__init__(f"partition {partition}: expected offset {expected}, found {found}")
        self.partition = partition
        self.expected = expected
        self.found = found


class Fenced(Exception):
    """A newer owner has claimed the partition (its fencing token is larger than ours).

    Whatever this worker fetched, it must not commit, and it must not restart either: only the
    holder of the newest token works a partition. Its lease is gone (or going) too.
    """

    def __init__(self, partition: int, token: FenceToken, holder: FenceToken | None) -> None:
        super().__init__(f"partition {partition}: fenced out (our token {token}, holder {holder})")
        self.partition = partition


class OutOfOrder(Exception):
    """The source delivered a batch that is not in stream order (e.g. a redelivery)."""

    def __init__(self, partition: int, seqs: list[int]) -> None:
        super().__init__(f"partition {partition}: out-of-order batch {seqs[:5]}...")


class DeliveryGap(Exception):
    """The source cannot vouch that nothing was skipped: restart from the committed offset."""


class ContinuityUnavailable(Exception):
    """JetStream or PostgreSQL could not be read: the check could not run (not a finding)."""
