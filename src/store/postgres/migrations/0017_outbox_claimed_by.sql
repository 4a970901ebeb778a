-- Who claimed a row: the key of the advisory lock its gateway process holds for as
-- long as it lives (src/store/postgres/claimer.rs). A claim whose process is gone
-- (its lock is free) is taken over at once instead of after the lease
-- (src/store/outbox/claim.rs). Rows claimed before this have none and wait out
-- their lease as before.
ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
