-- Undo 0003_partition_fence.
ALTER TABLE messaging.partition_offsets
    DROP COLUMN IF EXISTS fence_epoch,
    DROP COLUMN IF EXISTS fence_revision,
    DROP COLUMN IF EXISTS offset_check,
    DROP COLUMN IF EXISTS last_batch;
