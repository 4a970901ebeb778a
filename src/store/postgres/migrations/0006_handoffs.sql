-- Handoffs (issue #6): who is accountable for a patient after a discharge, transfer or
-- referral, and by when. One row per handoff Task (the Task is the FHIR face of it;
-- this row is the gateway's working copy for the deadline sweep and the worklist).
CREATE TABLE handoffs (
    task_id         TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL,  -- discharge | transfer | referral
    focus           TEXT    NOT NULL,  -- Encounter/id | ServiceRequest/id
    patient         TEXT,
    sender          TEXT,              -- Task.requester
    receiver        TEXT,              -- Task.owner
    status          TEXT    NOT NULL,  -- Task.status
    business_status TEXT    NOT NULL,  -- Task.businessStatus (the gateway's codes)
    accountable     TEXT,              -- sender until the receiver accepts
    deadline        BIGINT,           -- the current step's deadline (microseconds)
    then_due        BIGINT,           -- after acceptance: an absolute deadline
    escalation      TEXT,              -- last escalation step: alternate | sender
    escalated_to    TEXT,
    opened          BIGINT NOT NULL,
    updated         BIGINT NOT NULL,
    closed          BIGINT            -- completed, rejected, cancelled, failed
);
CREATE INDEX handoffs_due ON handoffs (closed, deadline);
CREATE INDEX handoffs_receiver ON handoffs (receiver);
CREATE INDEX handoffs_sender ON handoffs (sender);

-- Leases for periodic jobs: one replica at a time runs each (the deadline sweep).
CREATE TABLE leases (
    name   TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL,
    expires BIGINT NOT NULL
);

-- The worklist shows each handoff's last delivery: notifications by event.
CREATE INDEX outbox_event ON outbox (event_seq);
