-- The console's "refused" filter in the log's order: PostgreSQL cannot read the
-- (kind, status, seq) index in `seq` order for `status IS NULL`, so a refusals page sorted every
-- refusal (docs/console.md, "Speed"). The query names `kind = 'refusal'` literally so this index
-- matches it; see migrations/sqlite for the same index in SQLite.
CREATE INDEX verification_attempts_refusals ON verification_attempts (seq) WHERE kind = 'refusal';
