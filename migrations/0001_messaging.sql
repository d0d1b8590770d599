-- Messaging schema: conversations and membership (written by the producer), messages, per-
-- conversation seq counters, partition offsets and read markers (written by the consumer).

CREATE SCHEMA IF NOT EXISTS messaging;

CREATE TABLE messaging.conversations (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('direct', 'group')),
    title       text,
    -- "<smaller user id>:<larger user id>" for direct conversations: one per pair.
    direct_key  text UNIQUE,
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE messaging.members (
    conversation_id uuid NOT NULL REFERENCES messaging.conversations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON messaging.members (user_id, conversation_id);

-- The head of each conversation: its last seq. Row-locked while a batch assigns seqs.
CREATE TABLE messaging.conversation_heads (
    conversation_id uuid PRIMARY KEY REFERENCES messaging.conversations (id) ON DELETE CASCADE,
    last_seq        bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_message_at timestamptz
);

CREATE TABLE messaging.messages (
    message_id      uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES messaging.conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL CHECK (seq >= 1),
    sender_id       uuid NOT NULL,
    client_msg_id   uuid NOT NULL,
    body            text NOT NULL,
    sent_at         timestamptz NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    stream_seq      bigint NOT NULL,
    -- The final word on ordering and duplicates (ARCHITECTURE.md §3).
    CONSTRAINT messages_conversation_seq UNIQUE (conversation_id, seq),
    CONSTRAINT messages_sender_client_msg UNIQUE (sender_id, client_msg_id)
);

-- Each partition's last processed JetStream sequence, committed with the messages it covers, so a
-- partition's new owner resumes exactly where the last commit ended (exactly-once, in order).
CREATE TABLE messaging.partition_offsets (
    partition   integer PRIMARY KEY,
    stream_seq  bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messaging.read_markers (
    conversation_id uuid NOT NULL REFERENCES messaging.conversations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    seq             bigint NOT NULL CHECK (seq >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
