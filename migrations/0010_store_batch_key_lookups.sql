-- messaging.store_batch finds every row it reads by key (issue 13): the partition's offset row,
-- the batch's conversations and heads, an earlier copy of each send (sender_id, client_msg_id),
-- the senders' memberships and read markers; each has its index. So an index probe is always
-- the right plan, whatever the statistics say.
--
-- PostgreSQL plans a function's statements once per connection and keeps the plan (always for
-- messaging.store_small_batch, 0009, which forces generic plans). A plan made while a table was
-- still empty, as in a new database, hashes a sequential scan of it instead, and goes on
-- scanning on every call as the table grows, until autovacuum's next ANALYZE (a minute or more
-- later) makes PostgreSQL plan again. On a fresh system, rooms at 500 msgs/s for 20 s (the
-- producer's lookups, which had the same problem, mended alike): PostgreSQL's CPU 6.4-7.4 s
-- without this, 5.1-5.2 s with it.
--
-- With sequential scans, hash joins and merge joins costed out inside the function, its plans
-- probe the indexes from the first call on. Nothing else changes: same statements, same rows.
ALTER FUNCTION messaging.store_batch(
    integer, bigint, bigint, bigint, bigint, bigint, uuid[], uuid[], uuid[], uuid[], text[],
    timestamptz[], bigint[])
    SET enable_seqscan = off
    SET enable_hashjoin = off
    SET enable_mergejoin = off;
