-- HL7 v2 messages applied (issue #7): one row per (sender, MSH-10), written in the
-- same transaction as the message's data, holding the ACK that was sent. A resend of
-- the same message (interface engines resend on ACK timeout) finds the row and gets
-- the same ACK again, and nothing is applied twice.
CREATE TABLE hl7_messages (
    sender     TEXT    NOT NULL,  -- MSH-3|MSH-4
    control_id TEXT    NOT NULL,  -- MSH-10
    ack_code   TEXT    NOT NULL,  -- AA or AE
    ack        TEXT    NOT NULL,
    received   BIGINT  NOT NULL,  -- microseconds since the Unix epoch
    PRIMARY KEY (sender, control_id)
);
