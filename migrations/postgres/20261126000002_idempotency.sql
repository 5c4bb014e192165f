-- Idempotency-Key records for send-code (see the SQLite migration of the same name).
CREATE TABLE idempotency_keys (
    key_digest      bytea   PRIMARY KEY,
    request_digest  bytea   NOT NULL,
    status          integer,
    body_sealed     bytea,
    created_at      bigint  NOT NULL
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
