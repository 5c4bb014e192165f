-- Key-check records: one row per server secret that data in this database may be sealed under,
-- holding the database's stable key (the key of rate-limit bucket keys and Idempotency-Key
-- digests, which must not change when secrets rotate) sealed under that secret. Startup refuses
-- a database with a row none of the configured secrets opens; `verifyd rekey` deletes the rows
-- of older secrets once nothing is sealed under them any more.
CREATE TABLE key_checks (
    key_id      BLOB    PRIMARY KEY NOT NULL,
    sealed      BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
