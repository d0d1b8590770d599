-- The sender's own messages are never unread (issue 14): messaging.store_batch (0007) also
-- moves each sender's read marker to its last message of the batch, in the same statement (one
-- round trip per batch still), never backwards (greatest of the stored and the new seq). A
-- sender that is no longer a member gets no marker (as a `read` frame would not store one).
-- Nothing else changes: the fence, the numbering, the duplicate rules and the returned rows are
-- 0007's; a fenced or failed batch moves no marker, since it is all one statement.
--
-- Existing messages: each member's marker is moved to its last own message once, here (one scan
-- of messaging.messages), so the unread counts of old conversations follow the same rule.
CREATE OR REPLACE FUNCTION messaging.store_batch(
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
LANGUAGE plpgsql AS $$
DECLARE
    fence messaging.partition_offsets%ROWTYPE;
BEGIN
    SELECT * INTO fence FROM messaging.partition_offsets AS o
    WHERE o.partition = p_partition FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rtm:fenced' USING DETAIL = '';
    END IF;
    IF fence.fence_epoch <> p_epoch OR fence.fence_revision <> p_revision THEN
        RAISE EXCEPTION 'rtm:fenced'
            USING DETAIL = fence.fence_epoch::text || ':' || fence.fence_revision::text;
    END IF;
    IF fence.stream_seq <> p_expected THEN
        RAISE EXCEPTION 'rtm:offset_moved' USING DETAIL = fence.stream_seq::text;
    END IF;

    INSERT INTO messaging.conversation_heads (conversation_id)
    SELECT c.id FROM messaging.conversations AS c
    WHERE c.id = ANY(p_conversations) ORDER BY c.id
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM messaging.conversation_heads AS h
    WHERE h.conversation_id = ANY(p_conversations)
    ORDER BY h.conversation_id FOR UPDATE;

    RETURN QUERY
    WITH batch AS (
        SELECT b.*
        FROM unnest(p_ids, p_conversations, p_senders, p_clients, p_bodies, p_sent_at,
                    p_stream_seqs) WITH ORDINALITY
             AS b(message_id, conversation_id, sender_id, client_msg_id, body, sent_at,
                  stream_seq, i)
    ), firsts AS (  -- each send once: its first delivery in the batch
        SELECT DISTINCT ON (b.sender_id, b.client_msg_id) b.*
        FROM batch AS b
        ORDER BY b.sender_id, b.client_msg_id, b.stream_seq
    ), kept AS (
        SELECT f.*,
               h.last_seq + row_number() OVER w AS seq,
               row_number() OVER w AS nth
        FROM firsts AS f
        JOIN messaging.conversation_heads AS h ON h.conversation_id = f.conversation_id
        WHERE NOT EXISTS (SELECT 1 FROM messaging.messages AS m
                          WHERE m.sender_id = f.sender_id AND m.client_msg_id = f.client_msg_id)
        WINDOW w AS (PARTITION BY f.conversation_id ORDER BY f.stream_seq)
    ), inserted AS (
        INSERT INTO messaging.messages
            (message_id, conversation_id, seq, sender_id, client_msg_id, body, sent_at,
             stream_seq)
        SELECT k.message_id, k.conversation_id, k.seq, k.sender_id, k.client_msg_id, k.body,
               k.sent_at, k.stream_seq
        FROM kept AS k
    ), moved AS (
        UPDATE messaging.conversation_heads AS h
        SET last_seq = t.seq, last_message_at = t.sent_at
        FROM (SELECT DISTINCT ON (k.conversation_id) k.conversation_id, k.seq, k.sent_at
              FROM kept AS k ORDER BY k.conversation_id, k.seq DESC) AS t
        WHERE h.conversation_id = t.conversation_id
    ), marked AS (  -- a sender has read its own messages (never moved backwards)
        INSERT INTO messaging.read_markers AS r (conversation_id, user_id, seq)
        SELECT k.conversation_id, k.sender_id, max(k.seq)
        FROM kept AS k
        WHERE EXISTS (SELECT 1 FROM messaging.members AS mb
                      WHERE mb.conversation_id = k.conversation_id
                        AND mb.user_id = k.sender_id)
        GROUP BY k.conversation_id, k.sender_id
        ORDER BY k.conversation_id, k.sender_id
        ON CONFLICT (conversation_id, user_id) DO UPDATE
        SET seq = greatest(r.seq, excluded.seq), updated_at = now()
    ), advanced AS (
        UPDATE messaging.partition_offsets AS o
        SET stream_seq = p_end, offset_check = p_check, updated_at = now(),
            last_batch = COALESCE((SELECT array_agg(k.message_id ORDER BY k.stream_seq)
                                   FROM kept AS k), '{}')
        WHERE o.partition = p_partition
    )
    SELECT k.i::integer, k.seq,
           CASE WHEN k.nth = 1 THEN
               ARRAY(SELECT mb.user_id FROM messaging.members AS mb
                     WHERE mb.conversation_id = k.conversation_id)
           END
    FROM kept AS k
    ORDER BY k.stream_seq;
END
$$;

INSERT INTO messaging.read_markers AS r (conversation_id, user_id, seq)
SELECT m.conversation_id, m.sender_id, max(m.seq)
FROM messaging.messages AS m
WHERE EXISTS (SELECT 1 FROM messaging.members AS mb
              WHERE mb.conversation_id = m.conversation_id AND mb.user_id = m.sender_id)
GROUP BY m.conversation_id, m.sender_id
ON CONFLICT (conversation_id, user_id) DO UPDATE
SET seq = greatest(r.seq, excluded.seq), updated_at = now();
