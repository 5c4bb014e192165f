-- Signed events (DESIGN.md "Events"): the transactional outbox. A row is written in the same
-- transaction as the change it reports, one per (event, endpoint); the dispatcher leases due
-- rows (`lease_until`, clock milliseconds), posts them and marks them delivered, or schedules the
-- next try (`next_at`), or marks them dead after the last one (kept, replayable). `subject` is
-- the verification the event is about: a subject's events go out in `seq` order.
CREATE TABLE event_outbox (
    seq           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL,
    endpoint      TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending',
    tries         INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    lease_until   INTEGER NOT NULL DEFAULT 0,
    leased_by     TEXT,
    last_error    TEXT,
    delivered_at  INTEGER,
    UNIQUE (id, endpoint)
);
CREATE INDEX event_outbox_due ON event_outbox (next_at) WHERE state = 'pending';
CREATE INDEX event_outbox_by_subject ON event_outbox (subject, endpoint, seq) WHERE state = 'pending';
CREATE INDEX event_outbox_by_time ON event_outbox (created_at);

-- How far the expiry sweeper has looked: every verification whose `expires_at` is at or before
-- `swept_until` has had its `verification.expired` written. Replicas advance it by
-- compare-and-set, so each expiry is written once.
CREATE TABLE event_sweeps (
    name         TEXT    PRIMARY KEY NOT NULL,
    swept_until  INTEGER NOT NULL
);
