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
    events_since_start BIGINT  NOT NULL DEFAULT 0,
    error              TEXT,
    heartbeat_secs     BIGINT ,           -- from the spec; NULL: no heartbeats
    last_notified      BIGINT  NOT NULL DEFAULT 0,  -- last notification of any kind queued
    updated            BIGINT  NOT NULL
);
CREATE INDEX subscriptions_topic ON subscriptions (topic, status);

-- Notifications owed: one row per (event, subscription), written in the transaction
-- that raised the event; handshakes and heartbeats too (event_seq NULL). A row is
-- pending until delivered or dead; `claimed_until` is a worker's lease on it.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    subscription_id TEXT    NOT NULL,
    kind            TEXT    NOT NULL,  -- handshake | heartbeat | event-notification
    event_seq       BIGINT,           -- domain_events.seq
    event_number    BIGINT,           -- the subscription's event number
    webhook_id      TEXT    NOT NULL,  -- the same on every attempt: receivers dedupe on it
    state           TEXT    NOT NULL,  -- pending | delivered | dead
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt    BIGINT  NOT NULL,  -- microseconds since the Unix epoch
    claimed_until   BIGINT,
    created         BIGINT  NOT NULL,
    done_at         BIGINT
);
CREATE INDEX outbox_pending ON outbox (state, subscription_id, id);
CREATE INDEX outbox_subscription ON outbox (subscription_id, event_number);

-- Every delivery attempt, for operators and `$status`.
CREATE TABLE delivery_attempts (
    id              BIGSERIAL PRIMARY KEY,
    outbox_id       BIGINT  NOT NULL,
    subscription_id TEXT    NOT NULL,
    at              BIGINT  NOT NULL,
    http_status     BIGINT,
    latency_us      BIGINT  NOT NULL,
    error           TEXT
);
CREATE INDEX delivery_attempts_subscription ON delivery_attempts (subscription_id, id);
