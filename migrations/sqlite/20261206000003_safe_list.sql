-- The safe list (TWILIO-COMPAT.md "Attempts, safe list"): numbers exempt from the country
-- allowlist, the number-type rules and the prefix, country and global buckets (never from the
-- per-number and per-IP limits). The number is kept as a keyed digest (the key) and a
-- ciphertext, like everywhere.
CREATE TABLE safe_list (
    phone_lookup  BLOB    PRIMARY KEY NOT NULL,
    sid           TEXT    NOT NULL UNIQUE,
    phone_sealed  BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);
