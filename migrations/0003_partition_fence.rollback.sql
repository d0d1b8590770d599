-- Undo 0003_partition_fence.
ALTER TABLE messaging.partition_offsets
    DROP COLUMN IF EXISTS fence_epoch,
    DROP COLUMN IF EXISTS fence_revision;
