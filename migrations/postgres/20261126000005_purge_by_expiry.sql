-- The purge deletes verifications by expiry (see the SQLite migration of the same name), through
-- `verifications_by_expiry`, which this schema has had from the start. Without the index on
-- `updated_at`, a wrong-code check changes no indexed column, so PostgreSQL can update the row
-- in place (a HOT update) instead of adding an entry to every index.
DROP INDEX verifications_by_update;
