-- Key-check records (see the SQLite migration of the same name): one row per server secret that
-- data may be sealed under, holding the database's stable key sealed under that secret.
CREATE TABLE key_checks (
    key_id      bytea   PRIMARY KEY,
    sealed      bytea   NOT NULL,
    created_at  bigint  NOT NULL
);
