-- The safe list; see migrations/sqlite for the same table in SQLite.
CREATE TABLE safe_list (
    phone_lookup  bytea   PRIMARY KEY NOT NULL,
    sid           text    NOT NULL UNIQUE,
    phone_sealed  bytea   NOT NULL,
    created_at    bigint  NOT NULL
);
