"""The continuity auditor: the consumer checks, continuously, what it has committed.

Every `RTM_CONTINUITY_AUDIT_INTERVAL_S` it audits each partition this instance owns: the range
from the partition's audited position up to its committed offset is read from JetStream and
compared with PostgreSQL (`ContinuityService.audit`), then the position moves on. A lost message
(acked, at or below the committed offset, not stored) is logged at ERROR with its ids, never its
body, and counted in `rtm_continuity_lost_total`; stored-twice and out-of-order rows in
`rtm_continuity_problems_total{kind}`. So the loss of issue #10, which no client could notice,
shows up within about one interval instead of never.

It trails the workers and never blocks them: it reads committed data only, through its own
ephemeral JetStream consumers and a few bulk queries per thousand messages. The owned partitions
come from a callable, so it needs nothing of the partition manager but that answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from rtm.consumer.domain.continuity import Outcome
from rtm.consumer.domain.exceptions import ContinuityUnavailable
from rtm.consumer.entrypoints import metrics
from rtm.consumer.services import AuditResult, ContinuityService

logger = logging.getLogger(__name__)


class ContinuityAuditor:
    """Audits the owned partitions every `interval` seconds, at most `max_messages` of each per
    round (a backlog, such as a whole stream on the first start, is worked off over rounds)."""

    def __init__(
        self,
        service: ContinuityService,
        owned: Callable[[], Sequence[int]],
        *,
        interval: float,
        max_messages: int,
    ) -> None:
        self._service = service
        self._owned = owned
        self._interval = interval
        self._max_messages = max_messages
        self._labelled: set[int] = set()  # partitions with an audited-offset gauge

    async def run(self) -> None:
        """Audit forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.audit_once()

    async def audit_once(self) -> list[AuditResult]:
        """One round over the partitions owned now; returns what was audited."""
        owned = list(self._owned())
        for gone in self._labelled - set(owned):
            metrics.CONTINUITY_AUDITED_OFFSET.remove(str(gone))
            self._labelled.discard(gone)
        results: list[AuditResult] = []
        for partition in owned:
            began = time.perf_counter()
            try:
                result = await self._service.audit(partition, max_messages=self._max_messages)
            except asyncio.CancelledError:
                raise
            except ContinuityUnavailable as exc:
                logger.warning(
                    "continuity audit of partition %s could not run (%s); next round",
                    partition,
                    exc,
                )
                continue
            except Exception:  # last line of defence: the auditor must outlive any one round
                logger.exception("continuity audit of partition %s failed", partition)
                continue
            finally:
                metrics.CONTINUITY_AUDIT_SECONDS.inc(time.perf_counter() - began)
            if result is not None:
                metrics.CONTINUITY_AUDITED_OFFSET.labels(str(partition)).set(result.up_to_seq)
                self._labelled.add(partition)
                _report(result)
                results.append(result)
        return results


def _report(result: AuditResult) -> None:
    """Count every outcome; log each problem at ERROR with its ids (never a body)."""
    for outcome, count in result.outcomes.items():
        if count and outcome is not Outcome.PENDING:
            metrics.CONTINUITY_CHECKED.labels(outcome.value).inc(count)
    for lost in result.missing:
        metrics.CONTINUITY_LOST.inc()
        logger.error(
            "acked message lost: message %s (sender %s, client_msg_id %s) in conversation %s, "
            "stream seq %s of partition %s, is not stored though the partition committed up to %s",
            lost.message_id,
            lost.sender_id,
            lost.client_msg_id,
            lost.conversation_id,
            lost.stream_seq,
            lost.partition,
            lost.committed_offset,
            extra={
                "message_id": str(lost.message_id),
                "client_msg_id": str(lost.client_msg_id),
                "sender_id": str(lost.sender_id),
                "conversation_id": str(lost.conversation_id),
                "stream_seq": lost.stream_seq,
                "partition": lost.partition,
            },
        )
    for twice in result.stored_twice:
        metrics.CONTINUITY_PROBLEMS.labels("stored_twice").inc()
        logger.error(
            "message stored twice: rows %s (stream seqs %s): %s",
            ", ".join(str(m) for m in twice.message_ids),
            ", ".join(str(s) for s in twice.stream_seqs),
            twice.reason,
        )
    for problem in result.out_of_order:
        metrics.CONTINUITY_PROBLEMS.labels("out_of_order").inc()
        logger.error(
            "conversation %s out of order (%s) at seq %s: %s",
            problem.conversation_id,
            problem.kind.value,
            problem.seq,
            problem.detail,
            extra={"conversation_id": str(problem.conversation_id)},
        )
    if result.not_stored:
        logger.info(
            "partition %s, stream seqs %s..%s: %s not stored as expected (conversation gone: "
            "%s, undecodable: %s)",
            result.partition,
            result.after_seq + 1,
            result.up_to_seq,
            len(result.not_stored),
            result.outcomes[Outcome.CONVERSATION_GONE],
            result.outcomes[Outcome.UNDECODABLE],
        )
