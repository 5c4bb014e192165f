-- The attempt log (DESIGN.md "Attempt log"): one row per send attempt (`sid` VL…), per check
-- outcome and per refusal (no sid), of every face. The number is kept only as a keyed digest
-- (for the `ChannelData.To` filter) and a ciphertext; `prefix` is the number's first five
-- characters (`+1415`), for the summary's `DestinationPrefix`. A send attempt is converted when
-- its verification has an `approved` check row. Purged after VERIFYD_ATTEMPT_RETENTION.
CREATE TABLE verification_attempts (
    seq               INTEGER PRIMARY KEY,
    sid               TEXT UNIQUE,
    kind              TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    service_sid       TEXT    NOT NULL,
    verification_sid  TEXT,
    channel           TEXT,
    country           TEXT,
    prefix            TEXT,
    phone_lookup      BLOB,
    phone_sealed      BLOB,
    vendor            TEXT,
    status            TEXT,
    reason            TEXT,
    bucket            TEXT
);
CREATE INDEX verification_attempts_by_time ON verification_attempts (created_at);
CREATE INDEX verification_attempts_by_verification
    ON verification_attempts (verification_sid, kind, status) WHERE verification_sid IS NOT NULL;
