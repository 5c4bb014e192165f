-- Idempotency-Key records for send-code: the first answer (encrypted: it names the number),
-- replayed to retries with the same key and body for 24 hours. `status` is NULL while the first
-- request is still being processed.
CREATE TABLE idempotency_keys (
    key_digest      BLOB    PRIMARY KEY NOT NULL,
    request_digest  BLOB    NOT NULL,
    status          INTEGER,
    body_sealed     BLOB,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
