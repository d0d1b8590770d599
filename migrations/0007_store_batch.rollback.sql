-- Undo 0007_store_batch.
DROP FUNCTION IF EXISTS messaging.store_batch(
    integer, bigint, bigint, bigint, bigint, bigint, uuid[], uuid[], uuid[], uuid[], text[],
    timestamptz[], bigint[]);
