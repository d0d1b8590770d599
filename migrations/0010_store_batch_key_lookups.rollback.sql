-- Undo 0010_store_batch_key_lookups: messaging.store_batch plans with the server's settings.
ALTER FUNCTION messaging.store_batch(
    integer, bigint, bigint, bigint, bigint, bigint, uuid[], uuid[], uuid[], uuid[], text[],
    timestamptz[], bigint[])
    RESET ALL;
