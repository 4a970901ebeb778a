-- Several pending events of one subscription travel in one notification (a batch).
-- Every event row claimed is stamped with the id of the first row of its batch, so a
-- retry (after a failure, a lost answer or a crash) sends exactly the same events
-- under the same webhook id, and receivers that dedupe on that id lose nothing.
ALTER TABLE outbox ADD COLUMN batch_head BIGINT;
-- Rows queued before batches existed travel alone: one of them may have been sent
-- already (retried, or dead-lettered and replayed) under its webhook id, and a
-- receiver that saw it would drop a retry carrying more events under that id.
UPDATE outbox SET batch_head = id WHERE kind = 'event-notification';
