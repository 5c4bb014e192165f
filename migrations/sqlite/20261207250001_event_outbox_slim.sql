-- The outbox row is written in the send's own transaction, so each of its indexes is paid on the
-- request path (issue 23: the send benchmark with events on). Slimmed:
-- - `event_outbox_due` goes: the lease walks `event_outbox_pending` in `seq` order and reads
--   `next_at` from the row.
-- - `event_outbox_by_time` goes: the purge finds its boundary by `seq` (rows are numbered in the
--   order they are written).
-- - The per-subject index leads with the subject's creation time (`subject_created`, the same on
--   every event of one subject): a new event lands at the index's recent end, not at a random
--   page (verification sids are random), which under a backlog cost a page write per insert.
--   The rows already pending take their verification's (or attempt's) creation time, as new
--   ones do; a subject without one (a fraud-guard destination) has 0.
ALTER TABLE event_outbox ADD COLUMN subject_created INTEGER NOT NULL DEFAULT 0;
UPDATE event_outbox SET subject_created = COALESCE(
    (SELECT v.created_at FROM verifications v WHERE v.sid = event_outbox.subject),
    (SELECT a.created_at FROM verification_attempts a WHERE a.sid = event_outbox.subject),
    0)
WHERE state = 'pending';
DROP INDEX event_outbox_due;
DROP INDEX event_outbox_by_time;
DROP INDEX event_outbox_by_subject;
CREATE INDEX event_outbox_by_subject ON event_outbox (subject_created, subject, endpoint, seq)
    WHERE state = 'pending';
