-- Subscriptions (issue #4). The Subscription resource is stored like any other; this
-- row is the server's side of it: the parsed channel and filters, the signing secret,
-- the status the server drives (requested -> active | error, off) and the number of
-- the last event assigned to it (event numbers never skip or repeat).
CREATE TABLE subscriptions (
    id                 TEXT    PRIMARY KEY,
    topic              TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    spec               TEXT    NOT NULL,  -- JSON: topics::subscription::SubscriptionSpec
    secret             TEXT    NOT NULL,
    events_since_start INTEGER NOT NULL DEFAULT 0,
    error              TEXT,
    heartbeat_secs     INTEGER,           -- from the spec; NULL: no heartbeats
    last_notified      INTEGER NOT NULL DEFAULT 0,  -- last notification of any kind queued
    updated            INTEGER NOT NULL
);
CREATE INDEX subscriptions_topic ON subscriptions (topic, status);

-- Notifications owed: one row per (event, subscription), written in the transaction
-- that raised the event; handshakes and heartbeats too (event_seq NULL). A row is
-- pending until delivered or dead; `claimed_until` is a worker's lease on it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT    NOT NULL,
    kind            TEXT    NOT NULL,  -- handshake | heartbeat | event-notification
    event_seq       INTEGER,           -- domain_events.seq
    event_number    INTEGER,           -- the subscription's event number
    webhook_id      TEXT    NOT NULL,  -- the same on every attempt: receivers dedupe on it
    state           TEXT    NOT NULL,  -- pending | delivered | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt    INTEGER NOT NULL,  -- microseconds since the Unix epoch
    claimed_until   INTEGER,
    created         INTEGER NOT NULL,
    done_at         INTEGER
);
CREATE INDEX outbox_pending ON outbox (state, subscription_id, id);
CREATE INDEX outbox_subscription ON outbox (subscription_id, event_number);

-- Every delivery attempt, for operators and `$status`.
CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id       INTEGER NOT NULL,
    subscription_id TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    http_status     INTEGER,
    latency_us      INTEGER NOT NULL,
    error           TEXT
);
CREATE INDEX delivery_attempts_subscription ON delivery_attempts (subscription_id, id);
