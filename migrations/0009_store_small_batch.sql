-- A batch of a few messages is stored through messaging.store_small_batch (issue 13): the same
-- function, messaging.store_batch, run with generic plans. PostgreSQL plans store_batch's
-- statements afresh for every call (custom plans: the arrays' sizes are known), which for a
-- batch of two costs more than running them: 0.75-0.85 ms per call against 0.43-0.53 ms with
-- the plans cached (pg_stat_user_functions, batches of 2). For batches of 32 and more the custom
-- plans win (2.1 against 2.5 ms at 32, 6.5 against 11 ms at 256), so the consumer picks the
-- function by the batch's size. Nothing else differs: fence, numbering, duplicates and the rows
-- returned are store_batch's own, and an exception it raises passes through unchanged.
CREATE FUNCTION messaging.store_small_batch(
    p_partition     integer,
    p_epoch         bigint,
    p_revision      bigint,
    p_expected      bigint,
    p_end           bigint,
    p_check         bigint,
    p_ids           uuid[],
    p_conversations uuid[],
    p_senders       uuid[],
    p_clients       uuid[],
    p_bodies        text[],
    p_sent_at       timestamptz[],
    p_stream_seqs   bigint[]
) RETURNS TABLE (idx integer, seq bigint, members uuid[])
LANGUAGE sql
SET plan_cache_mode = force_generic_plan
AS $$
    SELECT b.idx, b.seq, b.members
    FROM messaging.store_batch(p_partition, p_epoch, p_revision, p_expected, p_end, p_check,
                               p_ids, p_conversations, p_senders, p_clients, p_bodies,
                               p_sent_at, p_stream_seqs) AS b
$$;
