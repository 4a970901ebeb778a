//! The SQLite writer: group commit on a dedicated thread.
//!
//! SQLite has one writer at a time, so one thread owns the only write connection.
//! It takes every job waiting in its queue (up to `max_batch`), runs them one after
//! the other within one `BEGIN IMMEDIATE ... COMMIT`, and pays one fsync for the lot.
//! A job that fails must not take the others down with it. A SAVEPOINT per job would
//! do that, but it costs every job a copy of each page it touches (SQLite's statement
//! journal), about a sixth of this thread's time: so the batch first runs without
//! savepoints, and only when a job fails is it rolled back and run again, from the
//! copy of its ops each job brings (made by its sender, not on this thread), with a
//! savepoint per job, where the failure stays the failing job's own.
//! Replies are sent only after COMMIT has returned, so a 201 means durable.
//!
//! The thread uses rusqlite rather than sqlx: sqlx runs each SQLite statement on a
//! worker thread behind a channel, and with a dozen statements per create those
//! thread hand-offs, not SQLite, were the limit (see README, Benchmark). The shared
//! write logic (`executor::execute`) is async; its `Tx` calls here never suspend, so
//! the thread drives it with `block_on` and nothing ever waits on a runtime.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Statement};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::{Checkpointer, Schedule};
use super::index_rows;
use crate::fhir::search::{IndexEntry, SearchQuery};
use crate::store::executor::{self, Cell, Tx};
use crate::store::sql::{self, Bind};
use crate::store::{StoreError, StoredResource, WriteOp, WriteOutcome};

pub struct Job {
    pub ops: Vec<WriteOp>,
    /// A copy of `ops`, made by the sender (off this thread): used only when the
    /// batch must be run again with savepoints (see [`guarded`]).
    pub spare: Vec<WriteOp>,
    pub reply: oneshot::Sender<Reply>,
}

impl Job {
    pub fn new(ops: Vec<WriteOp>, reply: oneshot::Sender<Reply>) -> Self {
        Job {
            spare: ops.clone(),
            ops,
            reply,
        }
    }
}

/// A job's outcomes, and whether it made notifications due (then committed).
pub type Reply = (Result<Vec<WriteOutcome>, StoreError>, bool);

/// Open the write connection and start the thread. The schema must exist already.
/// The policies applied inside the write transaction.
pub struct Policies {
    /// Consent decisions at match and claim time.
    pub consent: crate::consent::Policy,
    /// Handoff deadlines and escalation targets.
    pub handoffs: Arc<crate::handoffs::Policy>,
}

pub fn spawn(
    path: &Path,
    max_batch: usize,
    policies: Policies,
) -> Result<mpsc::Sender<Job>, StoreError> {
    // The WAL's frames go out in one write per commit, not two per page (walbuf.rs).
    super::walbuf::register().map_err(StoreError::Conflict)?;
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        super::walbuf::NAME,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -16000)?;
    // Statement journals (one per SAVEPOINT'd statement) in memory, not in temporary
    // files created and deleted per batch: a fifth more A08/s (README). They only
    // serve to roll a statement back inside the open transaction.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on their own thread (checkpoint.rs), not inside our COMMITs.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let checkpointer = Checkpointer::spawn(path, Schedule::default())?;
    conn.set_prepared_statement_cache_capacity(64);
    let (jobs, rx) = mpsc::channel(4096);
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, rx, max_batch.max(1), &policies, &checkpointer))
        .map_err(|e| StoreError::Conflict(format!("cannot start the SQLite writer: {e}")))?;
    Ok(jobs)
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    policies: &Policies,
    checkpointer: &Checkpointer,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(&mut conn, &mut batch, policies);
        checkpointer.committed(&conn);
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
    // Every sender is gone: the store was dropped. The connection closes here.
}

/// One transaction and one fsync for all the jobs.
fn commit_batch(conn: &mut Connection, batch: &mut [Job], policies: &Policies) -> Vec<Reply> {
    match unguarded(conn, batch, policies) {
        Some(replies) => replies,
        None => guarded(conn, batch, policies),
    }
}

fn all_failed(e: &rusqlite::Error, n: usize) -> Vec<Reply> {
    (0..n)
        .map(|_| {
            let e = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(e.to_string()),
            ));
            (Err(e), false)
        })
        .collect()
}

/// The jobs straight in the transaction, without savepoints. None when a job failed
/// after changing rows, in a batch of several: the transaction was rolled back, and
/// the jobs' spare copies are run again by [`guarded`]. A batch of one needs no second
/// run: its failure rolls back only itself. A job that fails before it changed a row
/// (a resent HL7 message's receipt, a stale `If-Match`, a conditional create that
/// matched twice: what is checked before anything is written) leaves the transaction
/// as the jobs before it left it, so the batch goes on without it.
fn unguarded(conn: &mut Connection, batch: &mut [Job], policies: &Policies) -> Option<Vec<Reply>> {
    if let Err(failed) = begin(conn, batch.len()) {
        return Some(failed);
    }
    let single = batch.len() == 1;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let changes = conn.total_changes();
        match execute_ops(conn, std::mem::take(&mut job.ops), policies) {
            (Ok(outcomes), due) => results.push((Ok(outcomes), due)),
            // Nothing of this job to take back (SQLite counts every row a completed
            // statement changed; a statement that failed took its own rows back), and
            // the transaction is still open (an I/O error or a full disk ends it).
            (Err(e), _) if conn.total_changes() == changes && !conn.is_autocommit() => {
                results.push((Err(e), false));
            }
            (Err(e), _) => {
                // Also when SQLite has rolled back already (an I/O error, a full disk).
                let _ = conn.execute_batch("ROLLBACK");
                return single.then(|| vec![(Err(e), false)]);
            }
        }
    }
    Some(commit(conn, results))
}

/// One transaction, one savepoint per job: a job that fails rolls back to its
/// savepoint without touching the others.
fn guarded(conn: &mut Connection, batch: &mut [Job], policies: &Policies) -> Vec<Reply> {
    if let Err(failed) = begin(conn, batch.len()) {
        return failed;
    }
    let results = batch
        .iter_mut()
        .map(|job| run_job(conn, std::mem::take(&mut job.spare), policies))
        .collect();
    commit(conn, results)
}

/// `BEGIN IMMEDIATE`; when it fails, the failure of each of the `n` jobs.
fn begin(conn: &Connection, n: usize) -> Result<(), Vec<Reply>> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| {
        tracing::error!(error = %e, "SQLite BEGIN failed; failing the batch");
        all_failed(&e, n)
    })
}

/// `COMMIT`: the jobs' results, or each a failure when the commit fails.
fn commit(conn: &Connection, results: Vec<Reply>) -> Vec<Reply> {
    match conn.execute_batch("COMMIT") {
        Ok(()) => results,
        Err(e) => {
            tracing::error!(error = %e, "SQLite COMMIT failed; rolling back the batch");
            let _ = conn.execute_batch("ROLLBACK");
            all_failed(&e, results.len())
        }
    }
}

/// One job's ops in the open transaction, and whether they made notifications due.
fn execute_ops(conn: &mut Connection, ops: Vec<WriteOp>, policies: &Policies) -> Reply {
    let mut tx = SqliteTx(conn, &policies.consent, false);
    let result = block_on(executor::execute(&mut tx, ops, &policies.handoffs));
    let due = tx.2 && result.is_ok();
    (result, due)
}

fn run_job(conn: &mut Connection, ops: Vec<WriteOp>, policies: &Policies) -> Reply {
    if let Err(e) = conn.execute_batch("SAVEPOINT job") {
        return (Err(e.into()), false);
    }
    let (result, due) = execute_ops(conn, ops, policies);
    if result.is_err() {
        if let Err(e) = conn.execute_batch("ROLLBACK TO job") {
            return (Err(e.into()), false);
        }
    }
    match conn.execute_batch("RELEASE job") {
        Ok(()) => (result, due),
        Err(e) => (Err(e.into()), false),
    }
}

fn value(b: &Bind) -> SqlValue {
    match b {
        Bind::Text(s) => SqlValue::Text(s.clone()),
        Bind::OptText(Some(s)) => SqlValue::Text(s.clone()),
        Bind::OptText(None) => SqlValue::Null,
        Bind::Int(i) => SqlValue::Integer(*i),
        Bind::OptInt(Some(i)) => SqlValue::Integer(*i),
        Bind::OptInt(None) => SqlValue::Null,
        Bind::Bool(v) => SqlValue::Integer(i64::from(*v)),
    }
}

/// Bind `$N` placeholders by their number (SQLite numbers named parameters by first
/// appearance, which need not be N).
fn bind(stmt: &mut Statement<'_>, values: &[SqlValue]) -> rusqlite::Result<()> {
    for i in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=values.len()).contains(n))
            .ok_or(rusqlite::Error::InvalidParameterCount(i, values.len()))?;
        stmt.raw_bind_parameter(i, &values[n - 1])?;
    }
    Ok(())
}

fn execute(conn: &Connection, text: &str, values: &[SqlValue]) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(text)?;
    bind(&mut stmt, values)?;
    stmt.raw_execute()
}

fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResource> {
    Ok(StoredResource {
        rtype: row.get(0)?,
        id: row.get(1)?,
        version: row.get(2)?,
        last_updated: row.get(3)?,
        deleted: row.get(4)?,
        body: row.get::<_, Option<String>>(5)?.map(Into::into),
    })
}

fn key(rtype: &str, id: &str) -> [SqlValue; 2] {
    [
        SqlValue::Text(rtype.to_owned()),
        SqlValue::Text(id.to_owned()),
    ]
}

/// A job's transaction: the connection, the consent policy, and whether notifications
/// became due in it.
struct SqliteTx<'c>(&'c mut Connection, &'c crate::consent::Policy, bool);

#[async_trait::async_trait]
impl Tx for SqliteTx<'_> {
    fn consent_policy(&self) -> &crate::consent::Policy {
        self.1
    }
    async fn current(&mut self, rtype: &str, id: &str) -> Result<Option<(i64, bool)>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql::CURRENT)?;
        bind(&mut stmt, &key(rtype, id))?;
        let mut rows = stmt.raw_query();
        Ok(match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        })
    }

    async fn load(&mut self, rtype: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql::READ)?;
        bind(&mut stmt, &key(rtype, id))?;
        let mut rows = stmt.raw_query();
        Ok(match rows.next()? {
            Some(r) => Some(stored(r)?),
            None => None,
        })
    }

    async fn lock_conditional(&mut self, _rtype: &str) -> Result<(), StoreError> {
        Ok(()) // the single writer already serialises every write
    }

    async fn find(&mut self, q: &SearchQuery, limit: i64) -> Result<Vec<String>, StoreError> {
        let s = sql::find_ids(q, limit);
        let values: Vec<_> = s.binds.iter().map(value).collect();
        let mut stmt = self.0.prepare_cached(&s.text)?;
        bind(&mut stmt, &values)?;
        let mut rows = stmt.raw_query();
        let mut ids = Vec::new();
        while let Some(r) = rows.next()? {
            ids.push(r.get(0)?);
        }
        Ok(ids)
    }

    async fn write(
        &mut self,
        v: &StoredResource,
        index: &[IndexEntry],
        existed: bool,
    ) -> Result<(), StoreError> {
        let c = &*self.0;
        let head = |deleted: bool| {
            vec![
                SqlValue::Text(v.rtype.clone()),
                SqlValue::Text(v.id.clone()),
                SqlValue::Integer(v.version),
                SqlValue::Integer(v.last_updated),
                SqlValue::Integer(i64::from(deleted)),
            ]
        };
        let mut history = head(v.deleted);
        history.push(
            v.body
                .as_deref()
                .map_or(SqlValue::Null, |b| SqlValue::Text(b.to_owned())),
        );
        execute(c, sql::INSERT_HISTORY, &history)?;
        execute(c, sql::UPSERT_CURRENT, &head(v.deleted))?;
        index_rows::replace(c, &v.rtype, &v.id, index, existed)?;
        Ok(())
    }

    async fn exec(&mut self, s: &sql::Sql) -> Result<u64, StoreError> {
        let values: Vec<_> = s.binds.iter().map(value).collect();
        Ok(execute(self.0, &s.text, &values)? as u64)
    }

    /// The rowid, which is the table's INTEGER PRIMARY KEY `key`.
    async fn insert_key(&mut self, s: &sql::Sql, _key: &str) -> Result<i64, StoreError> {
        let values: Vec<_> = s.binds.iter().map(value).collect();
        execute(self.0, &s.text, &values)?;
        Ok(self.0.last_insert_rowid())
    }

    async fn fetch_rows(&mut self, s: &sql::Sql) -> Result<Vec<Vec<Cell>>, StoreError> {
        use rusqlite::types::ValueRef;
        let values: Vec<_> = s.binds.iter().map(value).collect();
        let mut stmt = self.0.prepare_cached(&s.text)?;
        bind(&mut stmt, &values)?;
        let n = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Real(v) => Cell::Int(v as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Cell::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(cells);
        }
        Ok(out)
    }

    fn skip_locked(&self) -> &'static str {
        ""
    }

    fn mark_due(&mut self) {
        self.2 = true;
    }

    async fn fetch_text(&mut self, s: &sql::Sql) -> Result<Option<String>, StoreError> {
        let values: Vec<_> = s.binds.iter().map(value).collect();
        let mut stmt = self.0.prepare_cached(&s.text)?;
        bind(&mut stmt, &values)?;
        let mut rows = stmt.raw_query();
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }
}

#[cfg(test)]
mod tests;
