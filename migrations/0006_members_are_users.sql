-- A member of a conversation is a user auth knows (issue 11): no write path can make a
-- membership for a user id that was never registered, whatever its checks (the producer also
-- refuses deleted accounts, naming every unknown id, in the same transaction as its writes).
-- Auth never deletes a users row (a deleted account keeps it, with deleted_at), so this never
-- blocks auth. NOT VALID: rows written before this migration are not checked, so an existing
-- database with made-up member ids still migrates; every new or changed row is.
-- This ties messaging to auth's table: both schemas live in one database (RTM_DATABASE_URL).
ALTER TABLE messaging.members
    ADD CONSTRAINT members_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id)
    NOT VALID;
