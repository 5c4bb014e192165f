-- The operator console's hourly counts and attempt filters; see migrations/sqlite for the same
-- table and indexes in SQLite.
CREATE TABLE attempt_hourly (
    hour     bigint NOT NULL,
    kind     text   NOT NULL,
    outcome  text   NOT NULL,
    bucket   text   NOT NULL,
    channel  text   NOT NULL,
    country  text   NOT NULL,
    prefix   text   NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (hour, kind, outcome, bucket, channel, country, prefix)
);
INSERT INTO attempt_hourly (hour, kind, outcome, bucket, channel, country, prefix, n)
SELECT created_at / 3600000, kind,
       coalesce(CASE WHEN kind = 'refusal' THEN reason ELSE status END, ''),
       coalesce(bucket, ''), coalesce(channel, ''), coalesce(country, ''), coalesce(prefix, ''),
       count(*)
FROM verification_attempts GROUP BY 1, 2, 3, 4, 5, 6, 7;
CREATE INDEX verification_attempts_by_country ON verification_attempts (country, seq);
CREATE INDEX verification_attempts_by_channel ON verification_attempts (channel, seq);
CREATE INDEX verification_attempts_by_outcome ON verification_attempts (kind, status, seq);
CREATE INDEX verification_attempts_by_number
    ON verification_attempts (phone_lookup, seq) WHERE phone_lookup IS NOT NULL;
