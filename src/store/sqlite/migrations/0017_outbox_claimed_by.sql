-- Who claimed a row (PostgreSQL's claims, src/store/postgres/claimer.rs). The column
-- is here so that both stores share the claim's statements; one gateway serves an
-- SQLite store and releases every claim at its start, so it is always NULL here.
ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
