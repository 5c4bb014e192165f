-- Verifications: one row per verification; the phone number is kept only as a keyed digest
-- (for lookup) and a ciphertext, the code only as a keyed digest (for comparison) and a
-- ciphertext (so a resend delivers the same code).
CREATE TABLE verifications (
    sid           TEXT    PRIMARY KEY NOT NULL,
    phone_lookup  BLOB    NOT NULL,
    phone_sealed  BLOB    NOT NULL,
    channel       TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    code_digest   BLOB    NOT NULL,
    code_sealed   BLOB    NOT NULL,
    check_count   INTEGER NOT NULL DEFAULT 0,
    send_count    INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

-- Twilio's rule: at most one pending verification per number.
CREATE UNIQUE INDEX verifications_one_pending ON verifications (phone_lookup) WHERE status = 'pending';
CREATE INDEX verifications_by_update ON verifications (updated_at);

CREATE TABLE send_attempts (
    sid               TEXT    PRIMARY KEY NOT NULL,
    verification_sid  TEXT    NOT NULL REFERENCES verifications (sid) ON DELETE CASCADE,
    channel           TEXT    NOT NULL,
    sent_at           INTEGER NOT NULL
) STRICT;
CREATE INDEX send_attempts_by_verification ON send_attempts (verification_sid, sent_at);

-- SHA-256 digests of generated API keys (configured keys are never stored).
CREATE TABLE api_keys (
    digest      BLOB    PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
