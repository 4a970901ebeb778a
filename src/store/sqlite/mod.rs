//! SQLite backend: the zero-setup embedded store.
//!
//! Durability: WAL with `synchronous = FULL`, so a COMMIT returns only after the WAL
//! is fsynced. Throughput comes from group commit: one writer task owns the only
//! write connection, takes every request waiting in its queue (up to `max_batch`),
//! runs each in its own SAVEPOINT inside one transaction and pays one fsync for all
//! of them. A request that fails rolls back to its savepoint without touching the
//! others. Reads use a separate pool and never wait for the writer (WAL readers).

mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::sql::{self, Bind};
use super::{
    HistoryQuery, Page, Store, StoreError, StoreSettings, StoredResource, WriteOp, WriteOutcome,
};
use crate::fhir::search::SearchQuery;

pub struct SqliteStore {
    reads: SqlitePool,
    jobs: mpsc::Sender<writer::Job>,
}

impl SqliteStore {
    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite:{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16000");
        let reads = SqlitePoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("src/store/sqlite/migrations")
            .run(&reads)
            .await?;
        let (jobs, rx) = mpsc::channel(4096);
        let conn = writer::open(&options).await?;
        tokio::spawn(writer::run(conn, rx, settings.max_batch.max(1)));
        Ok(SqliteStore { reads, jobs })
    }

    async fn fetch(&self, s: &sql::Sql) -> Result<Vec<SqliteRow>, StoreError> {
        Ok(bind_all(sqlx::query(&s.text), &s.binds)
            .fetch_all(&self.reads)
            .await?)
    }
}

pub(super) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::OptText(s) => q.bind(s.as_deref()),
            Bind::Int(i) => q.bind(*i),
            Bind::Bool(v) => q.bind(*v),
        };
    }
    q
}

pub(super) fn stored(row: &SqliteRow) -> Result<StoredResource, sqlx::Error> {
    Ok(StoredResource {
        rtype: row.try_get(0)?,
        id: row.try_get(1)?,
        version: row.try_get(2)?,
        last_updated: row.try_get(3)?,
        deleted: row.try_get(4)?,
        body: row.try_get::<Option<String>, _>(5)?.map(Into::into),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn read(&self, rtype: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let row = sqlx::query(sql::READ)
            .bind(rtype)
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(stored).transpose()?)
    }

    async fn vread(
        &self,
        rtype: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredResource>, StoreError> {
        let row = sqlx::query(sql::VREAD)
            .bind(rtype)
            .bind(id)
            .bind(version)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(stored).transpose()?)
    }

    async fn history(&self, q: &HistoryQuery) -> Result<Page, StoreError> {
        let (t, i) = (q.rtype.as_deref(), q.id.as_deref());
        let rows = self
            .fetch(&sql::history(t, i, q.since, Some((q.count, q.offset))))
            .await?;
        let total: i64 = self.fetch(&sql::history(t, i, q.since, None)).await?[0].try_get(0)?;
        let items = rows.iter().map(stored).collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: total as u64,
        })
    }

    async fn search(&self, q: &SearchQuery) -> Result<Page, StoreError> {
        let rows = self.fetch(&sql::search(q)).await?;
        let total: i64 = self.fetch(&sql::count(q)).await?[0].try_get(0)?;
        let items = rows.iter().map(stored).collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: total as u64,
        })
    }

    async fn read_many(&self, refs: &[String]) -> Result<Vec<StoredResource>, StoreError> {
        let mut out = Vec::new();
        for r in refs {
            if let Some((t, i)) = r.split_once('/') {
                if let Some(s) = self.read(t, i).await?.filter(|s| !s.deleted) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    async fn commit(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(writer::Job { ops, reply })
            .await
            .map_err(|_| StoreError::Unavailable)?;
        rx.await.map_err(|_| StoreError::Unavailable)?
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
