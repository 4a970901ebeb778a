//! A version's whole write on PostgreSQL as one statement of data-modifying CTEs: the
//! history row, the current row and the search index rows, one round trip instead of
//! up to ten.
//!
//! The statement's texts are fixed (one for an update; for a new resource, one per
//! set of search tables it has rows for): the index rows travel as arrays, one per
//! column, unnested in the statement, so writes run a few prepared statements with
//! cached plans, whatever their row counts. (The rows as a `VALUES` list, a text per
//! row count, measured slower than the wholesale replacement they were to improve on:
//! README, "A fast hour".)
//!
//! The index rows of an update are replaced by difference, as on SQLite
//! (`sqlite::index_rows`): per search table, one CTE inserts the new rows that have no
//! equal stored row (same position `n`, parameter and value) and another deletes the
//! stored rows that have no equal new row. All parts of one statement see the same
//! snapshot (the rows before it), so an unchanged row is neither deleted nor inserted:
//! no dead tuple, no new entries in the table's two indexes.

use std::sync::LazyLock;

use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

use crate::fhir::search::{IndexEntry, IndexValue};
use crate::store::sql::{INSERT_HISTORY, UPSERT_CURRENT};
use crate::store::StoredResource;

/// A search table: its name, its value columns with their array types, and how a
/// stored row `t` equals a new row `v` on them.
type Table = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// The search tables in `sql::table_of` order.
const TABLES: [Table; 4] = [
    (
        "search_token",
        &[("system", "text"), ("code", "text")],
        "t.system IS NOT DISTINCT FROM v.a AND t.code = v.b",
    ),
    (
        "search_string",
        &[("value", "text"), ("exact", "text")],
        "t.value = v.a AND t.exact = v.b",
    ),
    (
        "search_date",
        &[("lo", "int8"), ("hi", "int8")],
        "t.lo = v.a AND t.hi = v.b",
    ),
    ("search_ref", &[("target", "text")], "t.target = v.a"),
];

/// The statements for a resource's first version (no rows to compare with), by which
/// search tables get rows (bit `t` for `TABLES[t]`): a table with none is left out of
/// the statement, as opening it and its indexes is most of an empty insert's cost.
static CREATE: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..1 << TABLES.len())
        .map(|m| statement(false, m))
        .collect()
});
/// The statement for a later version (or a version of a resource that may have rows):
/// every table, since any may hold rows to delete.
static UPDATE: LazyLock<String> = LazyLock::new(|| statement(true, (1 << TABLES.len()) - 1));

/// `$1`-`$6` are the version's (`INSERT_HISTORY`, `UPSERT_CURRENT`); then per table
/// the arrays `n`, `param` and its value columns, bound for every table (those of a
/// table left out are unused).
fn statement(existed: bool, tables: usize) -> String {
    let mut s = format!("WITH h AS ({INSERT_HISTORY}), c AS ({UPSERT_CURRENT})");
    let mut next = 7;
    for (t, (table, values, same)) in TABLES.iter().enumerate() {
        let mut arrays = format!("${}::int4[], ${}::text[]", next, next + 1);
        next += 2;
        for (_, ty) in values.iter() {
            arrays.push_str(&format!(", ${next}::{ty}[]"));
            next += 1;
        }
        if tables & (1 << t) == 0 {
            continue;
        }
        let names = ["a", "b"][..values.len()].join(", ");
        let picked = ["v.a", "v.b"][..values.len()].join(", ");
        let columns: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
        s.push_str(&format!(
            ", v{t} AS (SELECT * FROM unnest({arrays}) AS v(n, param, {names})), \
             i{t} AS (INSERT INTO {table} (rtype, rid, n, param, {}) \
             SELECT $1, $2, v.n, v.param, {picked} FROM v{t} v",
            columns.join(", ")
        ));
        if existed {
            s.push_str(&format!(
                " WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.rtype = $1 AND t.rid = $2 \
                 AND t.n = v.n AND t.param = v.param AND {same})), \
                 d{t} AS (DELETE FROM {table} t WHERE t.rtype = $1 AND t.rid = $2 \
                 AND NOT EXISTS (SELECT 1 FROM v{t} v WHERE v.n = t.n AND v.param = t.param \
                 AND {same})"
            ));
        }
        s.push(')');
    }
    s.push_str(" SELECT 1");
    s
}

/// One search table's rows as arrays, one per column (`b` unused for references).
#[derive(Debug, Default, PartialEq)]
struct Columns<A, B> {
    n: Vec<i32>,
    param: Vec<String>,
    a: Vec<A>,
    b: Vec<B>,
}

impl<A, B> Columns<A, B> {
    fn push(&mut self, n: usize, param: &str, a: A, b: B) {
        self.n.push(n as i32);
        self.param.push(param.to_owned());
        self.a.push(a);
        self.b.push(b);
    }
}

/// A version's index rows as the statement's arrays.
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    token: Columns<Option<String>, String>,
    string: Columns<String, String>,
    date: Columns<i64, i64>,
    reference: Columns<String, ()>,
}

impl Rows {
    pub fn new(index: &[IndexEntry]) -> Self {
        let mut r = Rows::default();
        r.extend(index);
        r
    }

    /// Rows per search table, in `TABLES` order.
    fn lens(&self) -> [usize; 4] {
        [
            self.token.n.len(),
            self.string.n.len(),
            self.date.n.len(),
            self.reference.n.len(),
        ]
    }

    /// Add one version's rows (numbered from 0 in `index`).
    fn extend(&mut self, index: &[IndexEntry]) {
        let r = self;
        for (n, e) in index.iter().enumerate() {
            match &e.value {
                IndexValue::Token { system, code } => {
                    r.token.push(n, e.param, system.clone(), code.clone())
                }
                IndexValue::Str { value, exact } => {
                    r.string.push(n, e.param, value.clone(), exact.clone())
                }
                IndexValue::Date { lo, hi } => r.date.push(n, e.param, *lo, *hi),
                IndexValue::Ref(target) => r.reference.push(n, e.param, target.clone(), ()),
            }
        }
    }
}

/// The statement writing version `v` with `rows` as its search rows, bound; `existed`:
/// the resource may have rows already.
pub fn write_version<'q>(
    v: &'q StoredResource,
    rows: &'q Rows,
    existed: bool,
) -> Query<'q, Postgres, PgArguments> {
    let (t, s, d, r) = (&rows.token, &rows.string, &rows.date, &rows.reference);
    let text: &'static str = if existed {
        UPDATE.as_str()
    } else {
        let filled = [t.n.len(), s.n.len(), d.n.len(), r.n.len()];
        let tables = (0..TABLES.len()).filter(|&i| filled[i] > 0);
        CREATE[tables.fold(0, |m, i| m | 1 << i)].as_str()
    };
    sqlx::query(text)
        .bind(&v.rtype)
        .bind(&v.id)
        .bind(v.version)
        .bind(v.last_updated)
        .bind(v.deleted)
        .bind(v.body.as_deref())
        .bind(&t.n)
        .bind(&t.param)
        .bind(&t.a)
        .bind(&t.b)
        .bind(&s.n)
        .bind(&s.param)
        .bind(&s.a)
        .bind(&s.b)
        .bind(&d.n)
        .bind(&d.param)
        .bind(&d.a)
        .bind(&d.b)
        .bind(&r.n)
        .bind(&r.param)
        .bind(&r.a)
}

/// First versions of several new resources (new ids, so no rows to compare with) as
/// one statement: a notification's ledger entries in one round trip instead of one
/// each. Every row carries its resource's type and id.
#[derive(Debug, Default)]
pub struct Many {
    rtype: Vec<String>,
    id: Vec<String>,
    version: Vec<i64>,
    last_updated: Vec<i64>,
    deleted: Vec<bool>,
    body: Vec<Option<String>>,
    /// Per search table (in `TABLES` order): the rows' resource type and id.
    keys: [(Vec<String>, Vec<String>); 4],
    rows: Rows,
}

static CREATE_MANY: LazyLock<String> = LazyLock::new(|| {
    let mut s = String::from(
        "WITH h AS (INSERT INTO resource_history (rtype, id, version, last_updated, deleted, body) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bool[], $6::text[])), \
         c AS (INSERT INTO resources (rtype, id, version, last_updated, deleted) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bool[]))",
    );
    let mut next = 7;
    for (t, (table, values, _)) in TABLES.iter().enumerate() {
        let mut arrays = format!(
            "${}::text[], ${}::text[], ${}::int4[], ${}::text[]",
            next,
            next + 1,
            next + 2,
            next + 3
        );
        next += 4;
        for (_, ty) in values.iter() {
            arrays.push_str(&format!(", ${next}::{ty}[]"));
            next += 1;
        }
        let columns: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
        s.push_str(&format!(
            ", i{t} AS (INSERT INTO {table} (rtype, rid, n, param, {}) SELECT * FROM unnest({arrays}))",
            columns.join(", ")
        ));
    }
    s.push_str(" SELECT 1");
    s
});

impl Many {
    pub fn new(versions: &[&crate::store::executor::Prepared]) -> Self {
        let mut m = Many::default();
        for p in versions {
            let v = &p.stored;
            m.rtype.push(v.rtype.clone());
            m.id.push(v.id.clone());
            m.version.push(v.version);
            m.last_updated.push(v.last_updated);
            m.deleted.push(v.deleted);
            m.body.push(v.body.as_deref().map(str::to_owned));
            let before = m.rows.lens();
            m.rows.extend(&p.index);
            for (t, (rtype, rid)) in m.keys.iter_mut().enumerate() {
                let added = m.rows.lens()[t] - before[t];
                rtype.extend(std::iter::repeat_n(v.rtype.clone(), added));
                rid.extend(std::iter::repeat_n(v.id.clone(), added));
            }
        }
        m
    }

    /// The statement, bound.
    pub fn write(&self) -> Query<'_, Postgres, PgArguments> {
        let r = &self.rows;
        let (t, s, d, f) = (&r.token, &r.string, &r.date, &r.reference);
        let k = &self.keys;
        sqlx::query(CREATE_MANY.as_str())
            .bind(&self.rtype)
            .bind(&self.id)
            .bind(&self.version)
            .bind(&self.last_updated)
            .bind(&self.deleted)
            .bind(&self.body)
            .bind(&k[0].0)
            .bind(&k[0].1)
            .bind(&t.n)
            .bind(&t.param)
            .bind(&t.a)
            .bind(&t.b)
            .bind(&k[1].0)
            .bind(&k[1].1)
            .bind(&s.n)
            .bind(&s.param)
            .bind(&s.a)
            .bind(&s.b)
            .bind(&k[2].0)
            .bind(&k[2].1)
            .bind(&d.n)
            .bind(&d.param)
            .bind(&d.a)
            .bind(&d.b)
            .bind(&k[3].0)
            .bind(&k[3].1)
            .bind(&f.n)
            .bind(&f.param)
            .bind(&f.a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                param: "status",
                value: IndexValue::Token {
                    system: None,
                    code: "active".into(),
                },
            },
            IndexEntry {
                param: "patient",
                value: IndexValue::Ref("Patient/1".into()),
            },
            IndexEntry {
                param: "code",
                value: IndexValue::Token {
                    system: Some("s".into()),
                    code: "c".into(),
                },
            },
        ]
    }

    #[test]
    fn rows_travel_as_one_array_per_column_with_their_positions() {
        let r = Rows::new(&entries());
        assert_eq!(r.token.n, vec![0, 2]);
        assert_eq!(r.token.param, vec!["status", "code"]);
        assert_eq!(r.token.a, vec![None, Some("s".to_owned())]);
        assert_eq!(r.token.b, vec!["active", "c"]);
        assert_eq!(
            (r.reference.n, r.reference.param, r.reference.a),
            (vec![1], vec!["patient".into()], vec!["Patient/1".into()])
        );
        assert!(r.string.n.is_empty() && r.date.n.is_empty());
    }

    #[test]
    fn an_update_replaces_rows_by_difference() {
        let s = UPDATE.as_str();
        assert!(s.starts_with("WITH h AS (INSERT INTO resource_history"));
        assert!(s.ends_with(" SELECT 1"));
        // The arrays follow the six version binds, table by table; the type and id
        // are $1 and $2 throughout.
        assert!(s.contains(", v0 AS (SELECT * FROM unnest($7::int4[], $8::text[], $9::text[], $10::text[]) AS v(n, param, a, b))"), "{s}");
        assert!(s.contains("unnest($15::int4[], $16::text[], $17::int8[], $18::int8[])"));
        assert!(s.contains("unnest($19::int4[], $20::text[], $21::text[]) AS v(n, param, a))"));
        assert!(!s.contains("$22"));
        // Unchanged rows stay: the insert skips a row stored equal, the delete keeps it.
        assert!(s.contains("i0 AS (INSERT INTO search_token (rtype, rid, n, param, system, code) SELECT $1, $2, v.n, v.param, v.a, v.b FROM v0 v WHERE NOT EXISTS (SELECT 1 FROM search_token t WHERE t.rtype = $1 AND t.rid = $2 AND t.n = v.n AND t.param = v.param AND t.system IS NOT DISTINCT FROM v.a AND t.code = v.b))"), "{s}");
        for t in 0..4 {
            assert!(s.contains(&format!("d{t} AS (DELETE FROM ")), "{s}");
        }
    }

    #[test]
    fn a_new_resource_only_inserts() {
        let s = CREATE[0b1111].as_str();
        assert!(!s.contains("DELETE"), "{s}");
        assert!(!s.contains("NOT EXISTS"), "{s}");
        assert!(s.contains("i3 AS (INSERT INTO search_ref (rtype, rid, n, param, target) SELECT $1, $2, v.n, v.param, v.a FROM v3 v)"), "{s}");
        assert!(s.contains("$21::text[]") && !s.contains("$22"));
    }

    #[test]
    fn several_new_resources_go_as_one_statement_each_row_keyed() {
        let p = |id: &str, index: Vec<IndexEntry>| crate::store::executor::Prepared {
            stored: StoredResource {
                rtype: "AuditEvent".into(),
                id: id.into(),
                version: 1,
                last_updated: 7,
                deleted: false,
                body: Some("{}".into()),
            },
            index,
        };
        let (a, b) = (p("a", entries()), p("b", entries()[1..2].to_vec()));
        let m = Many::new(&[&a, &b]);
        assert_eq!(m.id, ["a", "b"]);
        // Each table's rows carry their own resource's key and keep their positions.
        assert_eq!(m.keys[0].1, ["a", "a"]);
        assert_eq!(m.keys[3].1, ["a", "b"]);
        assert_eq!(m.rows.reference.n, [1, 0]);
        assert!(m.keys[1].0.is_empty() && m.keys[2].1.is_empty());
        let s = CREATE_MANY.as_str();
        assert!(s.contains("INSERT INTO search_ref (rtype, rid, n, param, target) SELECT * FROM unnest($25::text[], $26::text[], $27::int4[], $28::text[], $29::text[])"), "{s}");
        assert!(!s.contains("$30") && !s.contains("DELETE"), "{s}");
    }

    #[test]
    fn a_new_resource_leaves_out_the_tables_it_has_no_rows_for() {
        // Tokens and references only: no string or date table in the statement, and
        // their arrays keep their numbers.
        let s = CREATE[0b1001].as_str();
        assert!(s.contains("INSERT INTO search_token") && s.contains("INSERT INTO search_ref"));
        assert!(
            !s.contains("search_string") && !s.contains("search_date"),
            "{s}"
        );
        assert!(
            s.contains("unnest($19::int4[], $20::text[], $21::text[])"),
            "{s}"
        );
        assert_eq!(
            CREATE[0],
            format!("WITH h AS ({INSERT_HISTORY}), c AS ({UPSERT_CURRENT}) SELECT 1")
        );
    }
}
