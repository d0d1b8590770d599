-- Undo 0002_auth: drops every auth table (users, sessions, keys).
DROP SCHEMA IF EXISTS auth CASCADE;
