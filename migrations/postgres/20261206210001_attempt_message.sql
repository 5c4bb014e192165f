-- What a send attempt's message was; see migrations/sqlite for the same columns in SQLite.
ALTER TABLE verification_attempts ADD COLUMN locale text;
ALTER TABLE verification_attempts ADD COLUMN encoding text;
ALTER TABLE verification_attempts ADD COLUMN segments integer;
