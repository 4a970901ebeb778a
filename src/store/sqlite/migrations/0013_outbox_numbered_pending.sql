-- Event rows are numbered when first claimed, not when queued (src/store/outbox/claim.rs).
-- A subscription's numbered pending rows (the notification in flight, or waiting for
-- its retry) go before any row not yet numbered, whatever their ids: on PostgreSQL a
-- row may commit after rows queued later than it were claimed. This partial index
-- finds them without reading the subscription's backlog; it holds only such rows.
CREATE INDEX outbox_numbered_pending ON outbox (subscription_id, id)
    WHERE state = 'pending' AND event_number IS NOT NULL;
