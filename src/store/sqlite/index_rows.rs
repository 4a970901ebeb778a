//! A resource version's search index rows on SQLite, replaced by difference.
//!
//! An update used to delete every index row of the resource and insert the new
//! version's. Rows that did not change (most of an Encounter's when an A08 repeats the
//! visit) were still deleted and inserted again, and each of those rewrote its entry in
//! the table's value index (`search_*_value`, ordered by value, so one page per row)
//! in every commit. Now the rows already there are read first (clustered by resource,
//! so a page or two per table) and only a row that differs at its position `n` is
//! deleted and inserted; the rows past the new version's are deleted.
//!
//! One statement per row, each of fixed text: SQLite runs a multi-row VALUES as a
//! SELECT, such a statement gets a statement journal (a copy of every page it
//! touches, in case it fails half-way), and its text, one per row count, crowds the
//! statement cache.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::fhir::search::{IndexEntry, IndexValue};
use crate::store::sql::table_of;

/// The search tables in `sql::table_of` order: (name, value columns).
const TABLES: [(&str, &str); 4] = [
    ("search_token", "system, code"),
    ("search_string", "value, exact"),
    ("search_date", "lo, hi"),
    ("search_ref", "target, NULL"),
];

/// Write `index` as the rows of `rtype/id`; `existed`: it may have rows already.
pub fn replace(
    c: &Connection,
    rtype: &str,
    id: &str,
    index: &[IndexEntry],
    existed: bool,
) -> rusqlite::Result<()> {
    let mut old = if existed {
        current(c, rtype, id)?
    } else {
        HashMap::new()
    };
    for (n, e) in index.iter().enumerate() {
        let (t, n) = (table_of(&e.value), n as i64);
        match old.remove(&(t, n)) {
            Some((param, value)) if param == e.param && value == e.value => continue,
            Some(_) => delete(c, t, rtype, id, n)?,
            None => {}
        }
        insert(c, rtype, id, n, e)?;
    }
    for (t, n) in old.into_keys() {
        delete(c, t, rtype, id, n)?;
    }
    Ok(())
}

/// The rows stored for `rtype/id`, by (table, n). Keyed by table too: rows that
/// migration 0002 carried over numbered each table's rows on its own.
fn current(
    c: &Connection,
    rtype: &str,
    id: &str,
) -> rusqlite::Result<HashMap<(usize, i64), (String, IndexValue)>> {
    let mut out = HashMap::new();
    for (t, (table, columns)) in TABLES.iter().enumerate() {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT n, param, {columns} FROM {table} WHERE rtype = ?1 AND rid = ?2"
        ))?;
        let mut rows = stmt.query(params![rtype, id])?;
        while let Some(r) = rows.next()? {
            let value = match t {
                0 => IndexValue::Token {
                    system: r.get(2)?,
                    code: r.get(3)?,
                },
                1 => IndexValue::Str {
                    value: r.get(2)?,
                    exact: r.get(3)?,
                },
                2 => IndexValue::Date {
                    lo: r.get(2)?,
                    hi: r.get(3)?,
                },
                _ => IndexValue::Ref(r.get(2)?),
            };
            out.insert((t, r.get(0)?), (r.get(1)?, value));
        }
    }
    Ok(out)
}

fn delete(c: &Connection, table: usize, rtype: &str, id: &str, n: i64) -> rusqlite::Result<()> {
    c.prepare_cached(&format!(
        "DELETE FROM {} WHERE rtype = ?1 AND rid = ?2 AND n = ?3",
        TABLES[table].0
    ))?
    .execute(params![rtype, id, n])?;
    Ok(())
}

fn insert(c: &Connection, rtype: &str, id: &str, n: i64, e: &IndexEntry) -> rusqlite::Result<()> {
    match &e.value {
        IndexValue::Token { system, code } => c
            .prepare_cached(
                "INSERT INTO search_token (rtype, rid, n, param, system, code) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![rtype, id, n, e.param, system, code]),
        IndexValue::Str { value, exact } => c
            .prepare_cached(
                "INSERT INTO search_string (rtype, rid, n, param, value, exact) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![rtype, id, n, e.param, value, exact]),
        IndexValue::Date { lo, hi } => c
            .prepare_cached(
                "INSERT INTO search_date (rtype, rid, n, param, lo, hi) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![rtype, id, n, e.param, lo, hi]),
        IndexValue::Ref(target) => c
            .prepare_cached(
                "INSERT INTO search_ref (rtype, rid, n, param, target) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![rtype, id, n, e.param, target]),
    }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(param: &'static str, code: &str) -> IndexEntry {
        IndexEntry {
            param,
            value: IndexValue::Token {
                system: None,
                code: code.into(),
            },
        }
    }

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        for sql in [
            include_str!("migrations/0001_resources.sql"),
            include_str!("migrations/0002_cluster_search_rows.sql"),
        ] {
            c.execute_batch(sql).unwrap();
        }
        c
    }

    fn rows(c: &Connection) -> Vec<(i64, String, String)> {
        let mut s = c
            .prepare(
                "SELECT n, param, code FROM search_token UNION ALL \
                 SELECT n, param, target FROM search_ref ORDER BY 1",
            )
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn only_rows_that_changed_are_written() {
        let c = db();
        let reference = |t: &str| IndexEntry {
            param: "subject",
            value: IndexValue::Ref(t.into()),
        };
        let first = [
            token("status", "planned"),
            reference("Patient/a"),
            token("class", "IMP"),
        ];
        replace(&c, "Encounter", "e1", &first, false).unwrap();
        assert_eq!(c.total_changes(), 3);

        // The same rows again: nothing is written.
        replace(&c, "Encounter", "e1", &first, true).unwrap();
        assert_eq!(c.total_changes(), 3);

        // One value changes, one row goes: that row rewritten (2), the last deleted (1).
        let second = [token("status", "finished"), reference("Patient/a")];
        replace(&c, "Encounter", "e1", &second, true).unwrap();
        assert_eq!(c.total_changes(), 6);
        assert_eq!(
            rows(&c),
            [
                (0, "status".into(), "finished".into()),
                (1, "subject".into(), "Patient/a".into())
            ]
        );

        // A position that changes table: the old row goes, the new one comes.
        let third = [token("status", "finished"), token("class", "AMB")];
        replace(&c, "Encounter", "e1", &third, true).unwrap();
        assert_eq!(
            rows(&c),
            [
                (0, "status".into(), "finished".into()),
                (1, "class".into(), "AMB".into())
            ]
        );
    }
}
