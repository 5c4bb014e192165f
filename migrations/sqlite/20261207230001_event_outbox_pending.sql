-- The dispatcher's lease walks the pending rows oldest first and stops at its limit: with this
-- index it reads the rows it takes (and the few in flight before them), instead of every due
-- row and a sort, so a backlog (a burst, a slow receiver) does not make each lease slower.
CREATE INDEX event_outbox_pending ON event_outbox (seq) WHERE state = 'pending';
