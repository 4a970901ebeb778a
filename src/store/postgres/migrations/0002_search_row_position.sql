-- The position of a search row among its resource's entries (the shared insert SQL
-- writes it; SQLite clusters its search tables by it, see its 0002 migration).
ALTER TABLE search_token  ADD COLUMN n INTEGER NOT NULL DEFAULT 0;
ALTER TABLE search_string ADD COLUMN n INTEGER NOT NULL DEFAULT 0;
ALTER TABLE search_date   ADD COLUMN n INTEGER NOT NULL DEFAULT 0;
ALTER TABLE search_ref    ADD COLUMN n INTEGER NOT NULL DEFAULT 0;
