-- The consumer's continuity auditor: per partition, the last stream sequence whose messages it
-- has checked against messaging.messages (every acked message at or below the committed offset
-- is stored). Kept in the database, not in a process, so that a restart or a new owner of the
-- partition goes on from there: no range is skipped, no finding is reported again.
CREATE TABLE messaging.continuity_audits (
    partition   integer PRIMARY KEY,
    audited_seq bigint NOT NULL DEFAULT 0 CHECK (audited_seq >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
