-- A token search names the system as well as the code (`identifier=urn:x|123`). With
-- the value index on (rtype, param, code) only, SQLite must visit the row for
-- `system`, and its planner then prefers walking every token row of the type. With
-- `system` in the index, the index alone answers the search (see store/sql.rs).
DROP INDEX search_token_value;
CREATE INDEX search_token_value ON search_token (rtype, param, code, system);
