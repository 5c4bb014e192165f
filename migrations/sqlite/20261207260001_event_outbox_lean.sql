-- The outbox row is written in the send's own transaction, so each of its indexes is paid on the
-- request path (issue 23: the send benchmark with events on). Two more go:
-- - `UNIQUE (id, endpoint)`: a row's id is now its own number (`msg_` + creation time + `seq`,
--   made when it is read), so new rows store no id. Rows written before keep theirs, found by
--   `event_outbox_legacy_id`, which new rows (id NULL) never enter.
-- - `event_outbox_by_subject`: a subject's order is kept by `event_outbox_held` instead, the rows
--   the dispatcher has touched (leased, tried, or waiting behind an earlier row of their
--   subject: `lease_until` -1). Only the dispatcher makes a row held; an insert never enters it.
-- SQLite cannot drop a table's constraint, so the table is rebuilt. Pending rows that wait
-- behind an earlier pending row of their subject are marked waiting first (while the old index
-- still finds them), so the order holds across the upgrade.
UPDATE event_outbox SET lease_until = -1
WHERE state = 'pending' AND tries = 0 AND lease_until = 0 AND EXISTS (
    SELECT 1 FROM event_outbox p
    WHERE p.subject_created = event_outbox.subject_created AND p.subject = event_outbox.subject
      AND p.endpoint = event_outbox.endpoint AND p.state = 'pending' AND p.seq < event_outbox.seq);
CREATE TABLE event_outbox_lean (
    seq             INTEGER PRIMARY KEY,
    id              TEXT,
    endpoint        TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    tries           INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    leased_by       TEXT,
    last_error      TEXT,
    delivered_at    INTEGER,
    subject_created INTEGER NOT NULL DEFAULT 0
);
INSERT INTO event_outbox_lean (seq, id, endpoint, type, subject, payload, created_at, state,
    tries, next_at, lease_until, leased_by, last_error, delivered_at, subject_created)
SELECT seq, id, endpoint, type, subject, payload, created_at, state, tries, next_at, lease_until,
    leased_by, last_error, delivered_at, subject_created FROM event_outbox;
DROP TABLE event_outbox;
ALTER TABLE event_outbox_lean RENAME TO event_outbox;
CREATE INDEX event_outbox_pending ON event_outbox (seq) WHERE state = 'pending';
CREATE INDEX event_outbox_held ON event_outbox (subject, endpoint, seq)
    WHERE state = 'pending' AND (tries > 0 OR lease_until <> 0);
CREATE INDEX event_outbox_legacy_id ON event_outbox (id) WHERE id IS NOT NULL;
