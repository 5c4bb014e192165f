-- Signed events: the transactional outbox; see migrations/sqlite for the same tables in SQLite.
CREATE TABLE event_outbox (
    seq           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text    NOT NULL,
    endpoint      text    NOT NULL,
    type          text    NOT NULL,
    subject       text    NOT NULL,
    payload       text    NOT NULL,
    created_at    bigint  NOT NULL,
    state         text    NOT NULL DEFAULT 'pending',
    tries         integer NOT NULL DEFAULT 0,
    next_at       bigint  NOT NULL,
    lease_until   bigint  NOT NULL DEFAULT 0,
    leased_by     text,
    last_error    text,
    delivered_at  bigint,
    UNIQUE (id, endpoint)
);
CREATE INDEX event_outbox_due ON event_outbox (next_at) WHERE state = 'pending';
CREATE INDEX event_outbox_by_subject ON event_outbox (subject, endpoint, seq) WHERE state = 'pending';
CREATE INDEX event_outbox_by_time ON event_outbox (created_at);

CREATE TABLE event_sweeps (
    name         text    PRIMARY KEY NOT NULL,
    swept_until  bigint  NOT NULL
);
