-- The fencing token of each partition's owner (issue 10). A consumer instance that takes a
-- partition's lease writes the lease's token here, and only if it is newer than the one already
-- written; every batch transaction checks that the row still holds its token. An old owner that
-- keeps running after its lease was lost or handed back can therefore never commit again,
-- whatever it fetched, however late. The token is (the lease bucket's creation time, the lease's
-- revision when it was acquired): revisions only grow within one bucket, and a bucket created
-- again starts a newer epoch.
ALTER TABLE messaging.partition_offsets
    ADD COLUMN fence_epoch    bigint NOT NULL DEFAULT 0,
    ADD COLUMN fence_revision bigint NOT NULL DEFAULT 0;
