-- Undo 0009_store_small_batch: every batch goes through messaging.store_batch again.
DROP FUNCTION IF EXISTS messaging.store_small_batch(
    integer, bigint, bigint, bigint, bigint, bigint, uuid[], uuid[], uuid[], uuid[], text[],
    timestamptz[], bigint[]);
