-- Twilio's RateLimits and Buckets; see migrations/sqlite for the same tables in SQLite.
CREATE TABLE rate_limits (
    sid          text    PRIMARY KEY NOT NULL,
    service_sid  text    NOT NULL,
    unique_name  text    NOT NULL,
    description  text,
    created_at   bigint  NOT NULL,
    updated_at   bigint  NOT NULL,
    UNIQUE (service_sid, unique_name)
);

CREATE TABLE rate_limit_buckets (
    sid             text    PRIMARY KEY NOT NULL,
    rate_limit_sid  text    NOT NULL REFERENCES rate_limits (sid) ON DELETE CASCADE,
    service_sid     text    NOT NULL,
    max             bigint  NOT NULL,
    interval        bigint  NOT NULL,
    created_at      bigint  NOT NULL,
    updated_at      bigint  NOT NULL,
    UNIQUE (rate_limit_sid, interval)
);
