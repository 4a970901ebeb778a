-- Search index rows clustered by the resource they index.
--
-- Each create used to touch two B-trees per search table (the rowid table and the
-- (rtype, rid) index used to clear a resource's rows on update). As WITHOUT ROWID
-- tables keyed by (rtype, rid, n), the table itself is ordered by resource: one
-- B-tree per table, and clearing a resource's rows is a range delete. `n` is the
-- row's position among the resource's entries.
CREATE TABLE search_token_c  (rtype TEXT NOT NULL, rid TEXT NOT NULL, n INTEGER NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT NOT NULL, PRIMARY KEY (rtype, rid, n)) WITHOUT ROWID;
CREATE TABLE search_string_c (rtype TEXT NOT NULL, rid TEXT NOT NULL, n INTEGER NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, exact TEXT NOT NULL, PRIMARY KEY (rtype, rid, n)) WITHOUT ROWID;
CREATE TABLE search_date_c   (rtype TEXT NOT NULL, rid TEXT NOT NULL, n INTEGER NOT NULL, param TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, PRIMARY KEY (rtype, rid, n)) WITHOUT ROWID;
CREATE TABLE search_ref_c    (rtype TEXT NOT NULL, rid TEXT NOT NULL, n INTEGER NOT NULL, param TEXT NOT NULL, target TEXT NOT NULL, PRIMARY KEY (rtype, rid, n)) WITHOUT ROWID;

INSERT INTO search_token_c  SELECT rtype, rid, rowid, param, system, code FROM search_token;
INSERT INTO search_string_c SELECT rtype, rid, rowid, param, value, exact FROM search_string;
INSERT INTO search_date_c   SELECT rtype, rid, rowid, param, lo, hi FROM search_date;
INSERT INTO search_ref_c    SELECT rtype, rid, rowid, param, target FROM search_ref;

DROP TABLE search_token;
DROP TABLE search_string;
DROP TABLE search_date;
DROP TABLE search_ref;
ALTER TABLE search_token_c  RENAME TO search_token;
ALTER TABLE search_string_c RENAME TO search_string;
ALTER TABLE search_date_c   RENAME TO search_date;
ALTER TABLE search_ref_c    RENAME TO search_ref;

CREATE INDEX search_token_value  ON search_token  (rtype, param, code);
CREATE INDEX search_string_value ON search_string (rtype, param, value);
CREATE INDEX search_date_value   ON search_date   (rtype, param, lo, hi);
CREATE INDEX search_ref_value    ON search_ref    (rtype, param, target);
