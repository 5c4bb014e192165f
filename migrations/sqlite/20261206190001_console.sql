-- The operator console (DESIGN.md "Operator console"): hourly counts of the attempt log, kept
-- up to date in the same transaction as the rows they count, so the overview reads a few
-- hundred counters instead of scanning the log. One counter per hour (created_at / 3600000),
-- kind, outcome (a send's or a check's status, a refusal's reason), bucket (of a rate-limit
-- refusal), channel, country and prefix; '' where the row has none. Purged with the log.
CREATE TABLE attempt_hourly (
    hour     INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    bucket   TEXT    NOT NULL,
    channel  TEXT    NOT NULL,
    country  TEXT    NOT NULL,
    prefix   TEXT    NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (hour, kind, outcome, bucket, channel, country, prefix)
) WITHOUT ROWID;
INSERT INTO attempt_hourly (hour, kind, outcome, bucket, channel, country, prefix, n)
SELECT created_at / 3600000, kind,
       coalesce(CASE WHEN kind = 'refusal' THEN reason ELSE status END, ''),
       coalesce(bucket, ''), coalesce(channel, ''), coalesce(country, ''), coalesce(prefix, ''),
       count(*)
FROM verification_attempts GROUP BY 1, 2, 3, 4, 5, 6, 7;
-- The console's attempt filters, each in the log's order (an SQLite index ends with the rowid,
-- `seq`), so a page of a filtered list is read from one index however rare its rows are.
CREATE INDEX verification_attempts_by_country ON verification_attempts (country);
CREATE INDEX verification_attempts_by_channel ON verification_attempts (channel);
CREATE INDEX verification_attempts_by_outcome ON verification_attempts (kind, status);
CREATE INDEX verification_attempts_by_number
    ON verification_attempts (phone_lookup) WHERE phone_lookup IS NOT NULL;
