-- A row's id is now its own number (`msg_` + creation time + `seq`, made when it is read), so
-- new rows store no id and the unique index on (id, endpoint), paid by every request that writes
-- an event, goes (issue 23). Rows written before keep theirs, found by `event_outbox_legacy_id`,
-- which new rows (id NULL) never enter. PostgreSQL keeps `event_outbox_by_subject` for the
-- order: its replicas lease concurrently, which the lease's NOT EXISTS over that index handles.
ALTER TABLE event_outbox DROP CONSTRAINT IF EXISTS event_outbox_id_endpoint_key;
ALTER TABLE event_outbox ALTER COLUMN id DROP NOT NULL;
CREATE INDEX event_outbox_legacy_id ON event_outbox (id) WHERE id IS NOT NULL;
