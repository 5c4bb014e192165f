-- Twilio's RateLimits and Buckets of each Verify service (definitions; the limiter counts).
CREATE TABLE rate_limits (
    sid          TEXT    PRIMARY KEY NOT NULL,
    service_sid  TEXT    NOT NULL,
    unique_name  TEXT    NOT NULL,
    description  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (service_sid, unique_name)
);

CREATE TABLE rate_limit_buckets (
    sid             TEXT    PRIMARY KEY NOT NULL,
    rate_limit_sid  TEXT    NOT NULL REFERENCES rate_limits (sid) ON DELETE CASCADE,
    service_sid     TEXT    NOT NULL,
    max             INTEGER NOT NULL,
    interval        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (rate_limit_sid, interval)
);
