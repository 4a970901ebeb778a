-- Every version of every resource; the body is the JSON text the server returns.
CREATE TABLE resource_history (
    seq          BIGSERIAL PRIMARY KEY,
    rtype        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,  -- microseconds since the Unix epoch
    deleted      BOOLEAN NOT NULL DEFAULT FALSE,
    body         TEXT,
    UNIQUE (rtype, id, version)
);
CREATE INDEX resource_history_type ON resource_history (rtype, seq);

-- The current version of each resource (a deletion leaves a tombstone row).
CREATE TABLE resources (
    rtype        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (rtype, id)
);
CREATE INDEX resources_updated ON resources (rtype, last_updated);

-- Search index rows for the current version, rewritten with each version.
CREATE TABLE search_token  (rtype TEXT NOT NULL, rid TEXT NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT NOT NULL);
CREATE TABLE search_string (rtype TEXT NOT NULL, rid TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, exact TEXT NOT NULL);
CREATE TABLE search_date   (rtype TEXT NOT NULL, rid TEXT NOT NULL, param TEXT NOT NULL, lo BIGINT NOT NULL, hi BIGINT NOT NULL);
CREATE TABLE search_ref    (rtype TEXT NOT NULL, rid TEXT NOT NULL, param TEXT NOT NULL, target TEXT NOT NULL);
CREATE INDEX search_token_value  ON search_token  (rtype, param, code);
CREATE INDEX search_token_res    ON search_token  (rtype, rid);
CREATE INDEX search_string_value ON search_string (rtype, param, value text_pattern_ops);
CREATE INDEX search_string_res   ON search_string (rtype, rid);
CREATE INDEX search_date_value   ON search_date   (rtype, param, lo, hi);
CREATE INDEX search_date_res     ON search_date   (rtype, rid);
CREATE INDEX search_ref_value    ON search_ref    (rtype, param, target);
CREATE INDEX search_ref_res      ON search_ref    (rtype, rid);
