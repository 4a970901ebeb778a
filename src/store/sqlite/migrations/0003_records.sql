-- Coordination records (issue #3): one row per record, its typed JSON in `body`,
-- keyed by kind and the id of the FHIR resource it is derived from. `patient`,
-- `status` and `updated` are copies of the body's fields for the internal API's filters.
CREATE TABLE records (
    kind    TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    patient TEXT,
    status  TEXT    NOT NULL,
    updated INTEGER NOT NULL,  -- microseconds since the Unix epoch
    body    TEXT    NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX records_patient ON records (kind, patient);
CREATE INDEX records_status ON records (kind, status, updated);

-- Domain events, written in the transaction that changed the record. `seq` orders
-- them; subscriptions (issue #4) deliver from here.
CREATE TABLE domain_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event       TEXT    NOT NULL,
    record_kind TEXT    NOT NULL,
    record_id   TEXT    NOT NULL,
    rtype       TEXT    NOT NULL,  -- the resource version that raised it
    rid         TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    patient     TEXT,
    at          INTEGER NOT NULL,
    detail      TEXT    NOT NULL   -- JSON: {"from": status|null, "to": status}
);
CREATE INDEX domain_events_record ON domain_events (record_kind, record_id, seq);
