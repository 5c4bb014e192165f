-- The console's "refused" filter in the log's order (an SQLite index ends with the rowid, `seq`);
-- see migrations/postgres for why.
CREATE INDEX verification_attempts_refusals ON verification_attempts (kind) WHERE kind = 'refusal';
