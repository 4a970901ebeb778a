//! SQLite backend: the zero-setup embedded store.
//!
//! Durability: WAL with `synchronous = FULL`, so a COMMIT returns only after the WAL
//! is fsynced. Throughput comes from group commit: one writer task owns the only
//! write connection, takes every request waiting in its queue (up to `max_batch`),
//! runs them inside one transaction and pays one fsync for all of them. A request
//! that fails takes back only its own writes (writer.rs: savepoints are used when a
//! batch has a failure). Reads use a separate pool and never wait for the writer
//! (WAL readers).

mod checkpoint;
mod index_rows;
pub mod pcache;
pub mod walbuf;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use super::sql;
use super::{StoreError, StoreSettings, WriteOp, WriteOutcome};

/// Configure SQLite for this process: its memory statistics off (with them on, its
/// default, every allocation SQLite makes takes one process-wide mutex, which the
/// writer, the readers and the checkpointer share; nothing here reads them), and the
/// page cache of pcache.rs in place of its own. Call it first thing in `main`, before
/// any thread uses SQLite: `sqlite3_config` is not thread-safe, and once SQLite is
/// initialised it refuses (then nothing changes, and SQLite runs on its defaults).
/// Later calls do nothing.
pub fn configure_process() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: called before any other use of SQLite in the process (see above);
        // the variadic argument is the int that SQLITE_CONFIG_MEMSTATUS takes.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite's memory statistics stay on");
        }
        if let Err(rc) = pcache::install() {
            tracing::debug!(rc, "SQLite keeps its own page cache");
        }
    });
}

pub struct SqliteStore {
    reads: SqlitePool,
    jobs: mpsc::Sender<writer::Job>,
    signal: std::sync::Arc<tokio::sync::Notify>,
}

impl SqliteStore {
    /// One writer commits in `seq` order: the event log is read by `seq`.
    const EVENTS_BY_TRANSACTION: bool = false;

    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite:{url}")
        };
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Conflict(
                "in-memory SQLite is not supported: the writer and the readers share one file"
                    .into(),
            ));
        }
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // Small (2 MB): a reader's cache is dropped whole whenever the WAL moved
            // since its last read (every read under a steady write load), and dropping
            // it walks a hash table sized by the most pages it ever held (README "The
            // Provenance's id and the readers' page cache").
            .pragma("cache_size", "-2000");
        let reads = SqlitePoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("src/store/sqlite/migrations")
            .run(&reads)
            .await?;
        let file = options.get_filename().to_owned();
        let policies = writer::Policies {
            consent: settings.consent_policy.clone(),
            handoffs: settings.handoffs.clone(),
        };
        let jobs = writer::spawn(&file, settings.max_batch, policies)?;
        Ok(SqliteStore {
            reads,
            jobs,
            signal: Default::default(),
        })
    }

    async fn fetch(&self, s: &sql::Sql) -> Result<Vec<SqliteRow>, StoreError> {
        Ok(bind_all(sqlx::query(&s.text), &s.binds)
            .fetch_all(&self.reads)
            .await?)
    }

    /// A page's rows and the total (the first column of `count`'s row) from one
    /// snapshot: a read transaction, so a commit between the two statements cannot
    /// make the total disagree with the page.
    async fn fetch_counted(
        &self,
        page: &sql::Sql,
        count: &sql::Sql,
    ) -> Result<(Vec<SqliteRow>, i64), StoreError> {
        use sqlx::Row;
        let mut tx = self.reads.begin().await?;
        let rows = bind_all(sqlx::query(&page.text), &page.binds)
            .fetch_all(&mut *tx)
            .await?;
        let total = bind_all(sqlx::query(&count.text), &count.binds)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok((rows, total))
    }
}

row_helpers!(sqlx::Sqlite, SqliteRow);

impl_store!(SqliteStore, reads, {
    async fn commit(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(writer::Job::new(ops, reply))
            .await
            .map_err(|_| StoreError::Unavailable)?;
        let (out, due) = rx.await.map_err(|_| StoreError::Unavailable)?;
        if due {
            self.signal.notify_one();
        }
        out
    }

    fn signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.signal.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
});
