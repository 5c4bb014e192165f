-- The attempt log; see migrations/sqlite for the same table in SQLite.
CREATE TABLE verification_attempts (
    seq               bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid               text    UNIQUE,
    kind              text    NOT NULL,
    created_at        bigint  NOT NULL,
    service_sid       text    NOT NULL,
    verification_sid  text,
    channel           text,
    country           text,
    prefix            text,
    phone_lookup      bytea,
    phone_sealed      bytea,
    vendor            text,
    status            text,
    reason            text,
    bucket            text
);
CREATE INDEX verification_attempts_by_time ON verification_attempts (created_at);
CREATE INDEX verification_attempts_by_verification
    ON verification_attempts (verification_sid, kind, status) WHERE verification_sid IS NOT NULL;
