-- Partition ownership you can prove, and a takeover that misses nothing (issue 10).
--
-- fence_epoch, fence_revision: the fencing token of the partition's owner. A consumer instance
-- that takes a partition's lease writes the lease's token here, and only if it is newer than the
-- one already written; every batch transaction checks that the row still holds its token. An old
-- owner that keeps running after its lease was lost or handed back can therefore never commit
-- again, whatever it fetched, however late. The token is (the lease bucket's creation time, the
-- lease's revision when it was acquired): revisions only grow within one bucket, and a bucket
-- created again starts a newer epoch.
--
-- offset_check: a checksum (CRC-32) of the JetStream payload at stream_seq. A new owner checks
-- that the stream still holds that message there; if not (the stream was created again, or lost
-- its tail), the sequences no longer mean what this row says and the partition starts over from
-- the stream's beginning, skipping what is stored already.
--
-- last_batch: the message ids the last committed batch stored. Its fan-out (live delivery) may
-- not have gone out when its owner died or was stopped; a new owner sends it again (receivers
-- drop what they have). Every earlier batch's fan-out had reached NATS before the next commit.
ALTER TABLE messaging.partition_offsets
    ADD COLUMN fence_epoch    bigint NOT NULL DEFAULT 0,
    ADD COLUMN fence_revision bigint NOT NULL DEFAULT 0,
    ADD COLUMN offset_check   bigint,
    ADD COLUMN last_batch     uuid[] NOT NULL DEFAULT '{}';
