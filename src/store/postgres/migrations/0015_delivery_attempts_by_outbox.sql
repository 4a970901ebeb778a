-- A notification's attempts by its outbox row: the delivery log shows each
-- notification's last attempt, which without this was found by reading the attempts
-- of every subscription back from the newest until one matched (all of them, for an
-- old dead-lettered notification). Outbox ids grow with time, so new entries land at
-- the end of this index.
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, id);
