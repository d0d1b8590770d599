-- Undo 0006_members_are_users.
ALTER TABLE messaging.members DROP CONSTRAINT IF EXISTS members_user_id_fkey;
