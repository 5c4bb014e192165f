-- The purge deletes verifications by expiry (`expires_at`, set once when the row is created)
-- instead of by last change (`updated_at`, rewritten by every check and resend). Every check
-- used to move its row's entry in the `updated_at` index, one more page written at a random
-- place per check; an entry keyed by expiry is written once, at the end of the index, and the
-- purge's `expires_at < ?` finds its rows through it instead of scanning the table.
DROP INDEX verifications_by_update;
CREATE INDEX verifications_by_expiry ON verifications (expires_at);
