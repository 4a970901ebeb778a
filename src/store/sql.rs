//! SQL shared by both backends. SQLite and PostgreSQL both accept `$N` placeholders,
//! `ON CONFLICT ... DO UPDATE`, `LIKE ... ESCAPE` and boolean literals, so each
//! statement is written once; the backends only bind and run it.

use crate::fhir::search::{Cond, Filter, IndexValue, Prefix, SearchQuery, Sort, StrMode};

#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

/// A statement under construction: SQL text plus its binds, placeholders numbered as
/// they are pushed.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    /// Planned afresh at each run on PostgreSQL, not prepared once per connection: see
    /// [`Sql::replanned`].
    pub replan: bool,
}

impl Sql {
    /// A whole statement with its binds (`$N` already in the text).
    pub fn with(text: &str, binds: Vec<Bind>) -> Self {
        Sql {
            text: text.to_owned(),
            binds,
            replan: false,
        }
    }
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            binds: Vec::new(),
            replan: false,
        }
    }
    /// Plan this statement at each run (PostgreSQL). A prepared statement is planned
    /// for its first runs, then PostgreSQL may keep one generic plan for the life of
    /// the connection, made from the table's size at that moment: on a young outbox
    /// the finish's update by key was seen as a scan of the table with a filter, a
    /// plan that would then be kept as the table grows. For the few statements over
    /// the outbox, which keeps every delivered row, that find rows by key.
    pub fn replanned(mut self) -> Self {
        self.replan = true;
        self
    }
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    pub fn bind(&mut self, b: Bind) -> &mut Self {
        self.binds.push(b);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }
}

pub const RESOURCE_COLUMNS: &str = "r.rtype, r.id, r.version, r.last_updated, r.deleted, h.body";
const FROM_CURRENT: &str = " FROM resources r JOIN resource_history h \
     ON h.rtype = r.rtype AND h.id = r.id AND h.version = r.version";

pub const READ: &str = "SELECT r.rtype, r.id, r.version, r.last_updated, r.deleted, h.body \
     FROM resources r JOIN resource_history h ON h.rtype = r.rtype AND h.id = r.id AND h.version = r.version \
     WHERE r.rtype = $1 AND r.id = $2";
/// Most resources one [`read_many`] statement names (two binds each).
pub const READ_MANY_CHUNK: usize = 200;

/// The current versions of `n` resources, by (`$1`, `$2`), (`$3`, `$4`), … as type
/// and id: [`READ`] for many at once (each pair found by the primary key).
pub fn read_many(n: usize) -> String {
    format!("SELECT {RESOURCE_COLUMNS}{FROM_CURRENT} WHERE {}", pairs(n))
}

/// `(r.rtype = $1 AND r.id = $2) OR …` for `n` pairs.
fn pairs(n: usize) -> String {
    let pairs: Vec<String> = (0..n)
        .map(|k| format!("(r.rtype = ${} AND r.id = ${})", 2 * k + 1, 2 * k + 2))
        .collect();
    pairs.join(" OR ")
}

/// `chunk`'s keys as binds, their count padded to a power of two with the last key
/// repeated (a key named twice still matches its row once): a handful of statement
/// texts in the caches, not one per count. The padded count is returned.
fn pair_binds<S: AsRef<str>>(chunk: &[(S, S)]) -> (usize, Vec<Bind>) {
    let n = chunk.len().next_power_of_two().min(READ_MANY_CHUNK);
    let binds = (0..n)
        .flat_map(|k| {
            let (t, id) = &chunk[k.min(chunk.len() - 1)];
            [
                Bind::Text(t.as_ref().to_owned()),
                Bind::Text(id.as_ref().to_owned()),
            ]
        })
        .collect();
    (n, binds)
}

/// One chunk (at most [`READ_MANY_CHUNK`]) of keys as a [`read_many`] statement with its
/// binds.
pub fn read_many_chunk<S: AsRef<str>>(chunk: &[(S, S)]) -> Sql {
    let (n, binds) = pair_binds(chunk);
    Sql::with(&read_many(n), binds)
}

/// Type, id and version of those of one chunk of keys (at most [`READ_MANY_CHUNK`])
/// that are live (not deleted): the current-rows table alone, no body.
pub fn live_versions_chunk<S: AsRef<str>>(chunk: &[(S, S)]) -> Sql {
    let (n, binds) = pair_binds(chunk);
    let text = format!(
        "SELECT r.rtype, r.id, r.version FROM resources r WHERE NOT r.deleted AND ({})",
        pairs(n)
    );
    Sql::with(&text, binds)
}
pub const VREAD: &str =
    "SELECT rtype, id, version, last_updated, deleted, body FROM resource_history \
     WHERE rtype = $1 AND id = $2 AND version = $3";
pub const CURRENT: &str = "SELECT version, deleted FROM resources WHERE rtype = $1 AND id = $2";
pub const INSERT_HISTORY: &str =
    "INSERT INTO resource_history (rtype, id, version, last_updated, deleted, body) \
     VALUES ($1, $2, $3, $4, $5, $6)";
pub const UPSERT_CURRENT: &str =
    "INSERT INTO resources (rtype, id, version, last_updated, deleted) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rtype, id) DO UPDATE SET version = excluded.version, \
     last_updated = excluded.last_updated, deleted = excluded.deleted";
/// The search tables' order (token, string, date, reference) for a value.
pub(crate) fn table_of(v: &IndexValue) -> usize {
    match v {
        IndexValue::Token { .. } => 0,
        IndexValue::Str { .. } => 1,
        IndexValue::Date { .. } => 2,
        IndexValue::Ref(_) => 3,
    }
}

/// `SELECT` of the current, non-deleted resources matching `q`, one page.
pub fn search(q: &SearchQuery) -> Sql {
    let mut sql = Sql::new("SELECT ");
    sql.push(RESOURCE_COLUMNS).push(FROM_CURRENT);
    where_clause(&mut sql, q);
    sql.push(match q.sort {
        Sort::LastUpdatedAsc => " ORDER BY r.last_updated ASC, r.id ASC",
        Sort::LastUpdatedDesc => " ORDER BY r.last_updated DESC, r.id DESC",
        Sort::IdAsc => " ORDER BY r.id ASC",
        Sort::IdDesc => " ORDER BY r.id DESC",
    });
    sql.push(" LIMIT ").bind(Bind::Int(q.count as i64));
    sql.push(" OFFSET ").bind(Bind::Int(q.offset as i64));
    sql
}

pub fn count(q: &SearchQuery) -> Sql {
    let mut sql = Sql::new("SELECT COUNT(*) FROM resources r");
    where_clause(&mut sql, q);
    sql
}

/// Ids of at most `limit` matches (conditional create/update/delete).
pub fn find_ids(q: &SearchQuery, limit: i64) -> Sql {
    let mut sql = Sql::new("SELECT r.id FROM resources r");
    where_clause(&mut sql, q);
    sql.push(" LIMIT ").bind(Bind::Int(limit));
    sql
}

fn where_clause(sql: &mut Sql, q: &SearchQuery) {
    sql.push(" WHERE r.rtype = ")
        .bind(Bind::Text(q.rtype.clone()));
    sql.push(" AND r.deleted = FALSE");
    for f in &q.filters {
        sql.push(" AND (");
        filter(sql, &q.rtype, f);
        sql.push(")");
    }
}

fn filter(sql: &mut Sql, rtype: &str, f: &Filter) {
    // The values of one parameter (`status=requested,accepted`) on one search table,
    // none negated: one subquery with the values ORed inside it, so the value index
    // serves them all (an OR of subqueries makes SQLite walk the type instead).
    let first = f.any_of.first().and_then(table_of_cond);
    if let Some((table, false)) = first {
        if f.any_of.iter().all(|c| table_of_cond(c) == first) {
            member_head(sql, false, table, rtype, f.param);
            sql.push(" AND (");
            for (i, cond) in f.any_of.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push("(");
                value_cond(sql, cond);
                sql.push(")");
            }
            sql.push("))");
            return;
        }
    }
    for (i, cond) in f.any_of.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        match table_of_cond(cond) {
            Some((table, negate)) => {
                member_head(sql, negate, table, rtype, f.param);
                sql.push(" AND ");
                value_cond(sql, cond);
                sql.push(")");
            }
            None => value_cond(sql, cond),
        }
    }
}

/// The search table a condition reads, and whether it is negated (`:not`, `ne`);
/// `None` for conditions on the resource row itself.
fn table_of_cond(cond: &Cond) -> Option<(&'static str, bool)> {
    match cond {
        Cond::Id(_) | Cond::LastUpdated { .. } => None,
        Cond::Token { negate, .. } => Some(("search_token", *negate)),
        Cond::Str { .. } => Some(("search_string", false)),
        Cond::Date { prefix, .. } => Some(("search_date", *prefix == Prefix::Ne)),
        Cond::Ref { .. } => Some(("search_ref", false)),
    }
}

/// The condition on the value: on `r` for `_id`/`_lastUpdated`, else on the search
/// row `s` (inside the subquery [`member_head`] opens).
fn value_cond(sql: &mut Sql, cond: &Cond) {
    match cond {
        Cond::Id(id) => {
            sql.push("r.id = ").bind(Bind::Text(id.clone()));
        }
        Cond::LastUpdated { prefix, lo, hi } => {
            let (lo, hi) = (Bind::Int(*lo), Bind::Int(*hi));
            match prefix {
                Prefix::Eq => sql
                    .push("(r.last_updated >= ")
                    .bind(lo)
                    .push(" AND r.last_updated < ")
                    .bind(hi)
                    .push(")"),
                Prefix::Ne => sql
                    .push("(r.last_updated < ")
                    .bind(lo)
                    .push(" OR r.last_updated >= ")
                    .bind(hi)
                    .push(")"),
                Prefix::Gt => sql.push("r.last_updated >= ").bind(hi),
                Prefix::Lt => sql.push("r.last_updated < ").bind(lo),
                Prefix::Ge => sql.push("r.last_updated >= ").bind(lo),
                Prefix::Le => sql.push("r.last_updated < ").bind(hi),
            };
        }
        Cond::Token { system, code, .. } => {
            sql.push("TRUE");
            match system.as_deref() {
                None => {}
                Some("") => {
                    sql.push(" AND s.system IS NULL");
                }
                Some(s) => {
                    sql.push(" AND s.system = ").bind(Bind::Text(s.to_owned()));
                }
            }
            if let Some(c) = code {
                sql.push(" AND s.code = ").bind(Bind::Text(c.clone()));
            }
        }
        Cond::Str { value, mode } => {
            match mode {
                StrMode::Exact => sql.push("s.exact = ").bind(Bind::Text(value.clone())),
                StrMode::Prefix => sql
                    .push("s.value LIKE ")
                    .bind(Bind::Text(format!("{}%", like_escape(value)))),
                StrMode::Contains => sql
                    .push("s.value LIKE ")
                    .bind(Bind::Text(format!("%{}%", like_escape(value)))),
            };
            if *mode != StrMode::Exact {
                sql.push(" ESCAPE '\\'");
            }
        }
        Cond::Date { prefix, lo, hi } => {
            let (lo, hi) = (Bind::Int(*lo), Bind::Int(*hi));
            match prefix {
                Prefix::Eq | Prefix::Ne => {
                    sql.push("s.lo >= ").bind(lo).push(" AND s.hi <= ").bind(hi)
                }
                Prefix::Gt => sql.push("s.hi > ").bind(hi),
                Prefix::Lt => sql.push("s.lo < ").bind(lo),
                Prefix::Ge => sql.push("s.hi > ").bind(lo),
                Prefix::Le => sql.push("s.lo < ").bind(hi),
            };
        }
        Cond::Ref { target, any_type } => {
            if *any_type {
                sql.push("s.target LIKE ")
                    .bind(Bind::Text(format!("%/{}", like_escape(target))));
                sql.push(" ESCAPE '\\'");
            } else {
                sql.push("s.target = ").bind(Bind::Text(target.clone()));
            }
        }
    }
}

/// `r.id [NOT] IN (SELECT s.rid FROM table s WHERE s.rtype = .. AND s.param = ..`,
/// left open for the value's condition and the closing parenthesis.
///
/// Not `EXISTS (... s.rid = r.id ...)`: SQLite runs a correlated EXISTS once per
/// resource of the type, so every search (and every lookup inside a write, such as
/// the Task whose focus is a referral) scanned the whole type; measured, creates/s
/// fell with the number of Tasks stored. As an uncorrelated IN list, the subquery
/// walks the value index (`search_*_value`: rtype, param, value) to the matching
/// rows and the resources are then found by primary key. PostgreSQL plans both
/// forms as a semi-join.
fn member_head(sql: &mut Sql, negate: bool, table: &str, rtype: &str, param: &str) {
    sql.push(if negate { "r.id NOT IN" } else { "r.id IN" })
        .push(" (SELECT s.rid FROM ")
        .push(table)
        .push(" s WHERE s.rtype = ")
        .bind(Bind::Text(rtype.to_owned()))
        .push(" AND s.param = ")
        .bind(Bind::Text(param.to_owned()));
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// History, newest first, with optional type, id and `_since` filters.
pub fn history(
    rtype: Option<&str>,
    id: Option<&str>,
    since: Option<i64>,
    page: Option<(usize, usize)>,
) -> Sql {
    let mut sql = Sql::new(match page {
        Some(_) => "SELECT rtype, id, version, last_updated, deleted, body FROM resource_history WHERE TRUE",
        None => "SELECT COUNT(*) FROM resource_history WHERE TRUE",
    });
    if let Some(t) = rtype {
        sql.push(" AND rtype = ").bind(Bind::Text(t.to_owned()));
    }
    if let Some(i) = id {
        sql.push(" AND id = ").bind(Bind::Text(i.to_owned()));
    }
    if let Some(s) = since {
        sql.push(" AND last_updated >= ").bind(Bind::Int(s));
    }
    if let Some((count, offset)) = page {
        sql.push(" ORDER BY seq DESC LIMIT ")
            .bind(Bind::Int(count as i64));
        sql.push(" OFFSET ").bind(Bind::Int(offset as i64));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::search::query;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let q = query::parse(
            "Task",
            &[
                ("owner".into(), "Organization/o1".into()),
                ("status".into(), "requested,accepted".into()),
            ],
            false,
        )
        .unwrap();
        let s = search(&q);
        // The type; per parameter the type again and the param, then each value
        // (the two statuses share one subquery); paging.
        assert_eq!(s.binds.len(), 1 + (2 + 1) + (2 + 2) + 2);
        assert!(s.text.contains("$10"));
        assert!(!s.text.contains("$11"));
    }

    /// An in-memory database with every SQLite migration applied, in order.
    fn sqlite_schema() -> rusqlite::Connection {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sqlite/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let c = rusqlite::Connection::open_in_memory().unwrap();
        for f in files {
            c.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
        c
    }

    /// The plan SQLite chooses for `text` (unbound parameters are NULL: enough).
    fn plan_of(c: &rusqlite::Connection, text: &str) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {text}")).unwrap();
        let mut rows = stmt.raw_query();
        let mut plan = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            plan.push(r.get::<_, String>(3).unwrap());
        }
        plan.join("\n")
    }

    /// The plan SQLite chooses for a search, on the real schema.
    fn sqlite_plan(rtype: &str, params: &[(&str, &str)]) -> String {
        let params: Vec<_> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let q = query::parse(rtype, &params, false).unwrap();
        plan_of(&sqlite_schema(), &find_ids(&q, 1).text)
    }

    #[test]
    fn opening_a_handoff_finds_the_open_one_by_index() {
        let plan = plan_of(&sqlite_schema(), crate::store::handoffs::OPEN_ON_FOCUS);
        assert!(plan.contains("USING INDEX handoffs_focus"), "{plan}");
    }

    #[test]
    fn reading_many_finds_each_by_its_key() {
        let plan = plan_of(&sqlite_schema(), &read_many(3));
        let by_key = plan.matches("SEARCH r USING PRIMARY KEY (rtype=? AND id=?)");
        assert_eq!(by_key.count(), 3, "{plan}");
        assert!(!plan.contains("SCAN"), "{plan}");
        assert!(read_many(2).ends_with("(r.rtype = $3 AND r.id = $4)"));
    }

    #[test]
    fn a_chunk_of_keys_is_padded_with_its_last_key() {
        let s = read_many_chunk(&[("Patient", "a"), ("Patient", "b"), ("Encounter", "c")]);
        assert_eq!(s.text, read_many(4));
        let last = [Bind::Text("Encounter".into()), Bind::Text("c".into())];
        assert_eq!(s.binds[4..6], last);
        assert_eq!(s.binds[6..8], last);
    }

    #[test]
    fn a_search_by_value_walks_the_value_index_not_the_type() {
        for (rtype, param, value, index) in [
            ("Task", "focus", "ServiceRequest/1", "search_ref_value"),
            ("Patient", "identifier", "urn:x|1", "search_token_value"),
            ("Patient", "identifier", "1", "search_token_value"),
            ("Task", "status", "requested,accepted", "search_token_value"),
            (
                "Task",
                "focus",
                "ServiceRequest/1,ServiceRequest/2",
                "search_ref_value",
            ),
            ("Encounter", "date", "2026-11-01", "search_date_value"),
            ("Practitioner", "name", "smith", "search_string_value"),
        ] {
            let plan = sqlite_plan(rtype, &[(param, value)]);
            assert!(plan.contains(index), "{rtype}?{param}: {plan}");
            // The resources are found by their key, not by scanning the type.
            assert!(
                plan.contains("PRIMARY KEY (rtype=? AND id=?)"),
                "{rtype}?{param}: {plan}"
            );
        }
    }
}
