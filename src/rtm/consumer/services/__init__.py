"""The consumer's service layer: use cases driven by the entrypoints, over the domain's ports.

- `partitions`: `PartitionWorker` stores one partition's messages, in order, exactly once.
- `reads`: `ReadService` reads history and the conversation list, and recovers gaps.
- `continuity`: `ContinuityService` compares JetStream's history with PostgreSQL.
"""

from rtm.consumer.services.continuity import AuditResult, ContinuityService, VerifyProgress
from rtm.consumer.services.partitions import BatchOutcome, PartitionWorker
from rtm.consumer.services.reads import ReadService, Recovery

__all__ = [
    "AuditResult",
    "BatchOutcome",
    "ContinuityService",
    "PartitionWorker",
    "ReadService",
    "Recovery",
    "VerifyProgress",
]
