-- Receipts older than the retention (hl7_receipt_retention_secs) are pruned by age.
CREATE INDEX hl7_messages_received ON hl7_messages (received);
