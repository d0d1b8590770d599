-- Undo 0004_continuity_audit: the auditor starts again from the beginning of the stream.
DROP TABLE IF EXISTS messaging.continuity_audits;
