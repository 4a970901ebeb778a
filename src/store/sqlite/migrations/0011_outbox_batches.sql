-- Several pending events of one subscription travel in one notification (a batch).
-- Every event row claimed is stamped with the id of the first row of its batch, so a
-- retry (after a failure, a lost answer or a crash) sends exactly the same events
-- under the same webhook id, and receivers that dedupe on that id lose nothing.
ALTER TABLE outbox ADD COLUMN batch_head INTEGER;
