-- The SQLite schema (migrations/sqlite) for PostgreSQL: BLOB → bytea, INTEGER → bigint (times
-- are milliseconds since the Unix epoch). Verifications: one row per verification; the phone
-- number is kept only as a keyed digest (for lookup) and a ciphertext, the code only as a keyed
-- digest (for comparison) and a ciphertext (so a resend delivers the same code).
CREATE TABLE verifications (
    sid           text    PRIMARY KEY NOT NULL,
    phone_lookup  bytea   NOT NULL,
    phone_sealed  bytea   NOT NULL,
    channel       text    NOT NULL,
    status        text    NOT NULL,
    code_digest   bytea   NOT NULL,
    code_sealed   bytea   NOT NULL,
    check_count   bigint  NOT NULL DEFAULT 0,
    send_count    bigint  NOT NULL DEFAULT 1,
    created_at    bigint  NOT NULL,
    updated_at    bigint  NOT NULL,
    expires_at    bigint  NOT NULL
);

-- Twilio's rule: at most one pending verification per number.
CREATE UNIQUE INDEX verifications_one_pending ON verifications (phone_lookup) WHERE status = 'pending';
CREATE INDEX verifications_by_update ON verifications (updated_at);
CREATE INDEX verifications_by_expiry ON verifications (expires_at);

CREATE TABLE send_attempts (
    seq               bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid               text    NOT NULL UNIQUE,
    verification_sid  text    NOT NULL REFERENCES verifications (sid) ON DELETE CASCADE,
    channel           text    NOT NULL,
    sent_at           bigint  NOT NULL
);
CREATE INDEX send_attempts_by_verification ON send_attempts (verification_sid, sent_at);

-- SHA-256 digests of generated API keys (configured keys are never stored).
CREATE TABLE api_keys (
    digest      bytea   PRIMARY KEY NOT NULL,
    created_at  bigint  NOT NULL
);
