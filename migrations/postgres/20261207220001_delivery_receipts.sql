-- What delivery learned of a send attempt; see migrations/sqlite for the same columns in SQLite.
ALTER TABLE verification_attempts ADD COLUMN vendor_message_id text;
ALTER TABLE verification_attempts ADD COLUMN failovers integer;
ALTER TABLE verification_attempts ADD COLUMN delivery_status text;
ALTER TABLE verification_attempts ADD COLUMN delivery_error text;
CREATE INDEX verification_attempts_by_vendor_message
    ON verification_attempts (vendor, vendor_message_id) WHERE vendor_message_id IS NOT NULL;
