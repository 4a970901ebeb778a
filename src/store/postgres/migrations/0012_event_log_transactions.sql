-- The transaction that wrote each domain event, so that the event log can be read
-- without skipping an event whose transaction took its `seq` earlier but committed
-- later than another's (see src/store/events.rs). Rows already here were all
-- committed long ago: the migration's own transaction id orders them together.
ALTER TABLE domain_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX domain_events_tx ON domain_events (tx, seq);
