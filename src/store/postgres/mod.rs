//! PostgreSQL backend, for several gateway replicas sharing one database.
//!
//! Each commit is its own transaction on a pooled connection; PostgreSQL flushes the
//! WAL of concurrent commits together, so concurrent requests share fsyncs without a
//! writer task. Rows being updated are locked (`SELECT ... FOR UPDATE`); conditional
//! operations take a transaction-scoped advisory lock per resource type so two
//! replicas cannot both create the "only" match. Unique-key races and serialization
//! failures are retried a few times.

pub mod claimer;
mod version;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, Row};

use super::executor::{self, Cell, Tx};
use super::sql;
use super::{StoreError, StoreSettings, StoredResource, WriteOp, WriteOutcome};
use crate::fhir::search::{IndexEntry, SearchQuery};

pub struct PgStore {
    pool: PgPool,
    consent: crate::consent::Policy,
    handoffs: std::sync::Arc<crate::handoffs::Policy>,
    signal: std::sync::Arc<tokio::sync::Notify>,
    /// The key this process claims deliveries under, held as a lock while it lives.
    claimer: claimer::Claimer,
}

const RETRIES: usize = 3;
/// A pooled connection idle this long is pinged before it is handed out.
const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

impl PgStore {
    /// Concurrent transactions commit out of `seq` order: the event log is read by
    /// `(tx, seq)` behind the oldest running transaction (`store::events`).
    const EVENTS_BY_TRANSACTION: bool = true;

    pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(schema) = &settings.pg_schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::Conflict(
                    "PostgreSQL schema names are limited to [A-Za-z0-9_]".into(),
                ));
            }
            let mut c = PgConnection::connect_with(&options).await?;
            c.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
                .await?;
            c.close().await?;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(2))
            // sqlx pings every connection it hands out (and again as it takes it
            // back): a round trip each way per request. Only a connection that sat
            // idle a while is pinged before use (one that PostgreSQL may have closed
            // meanwhile, as on its restart); a busy one was checked on its release.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("src/store/postgres/migrations")
            .run(&pool)
            .await?;
        Ok(PgStore {
            pool,
            consent: settings.consent_policy.clone(),
            handoffs: settings.handoffs.clone(),
            signal: Default::default(),
            claimer: claimer::Claimer::hold(&options).await?,
        })
    }

    async fn fetch(&self, s: &sql::Sql) -> Result<Vec<PgRow>, StoreError> {
        Ok(bind_all(sqlx::query(&s.text), &s.binds)
            .persistent(!s.replan)
            .fetch_all(&self.pool)
            .await?)
    }

    /// A page's rows and the total (the first column of `count`'s row) from one
    /// snapshot: under READ COMMITTED each statement would take its own, and a commit
    /// between them would make the total disagree with the page.
    async fn fetch_counted(
        &self,
        page: &sql::Sql,
        count: &sql::Sql,
    ) -> Result<(Vec<PgRow>, i64), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let rows = bind_all(sqlx::query(&page.text), &page.binds)
            .persistent(!page.replan)
            .fetch_all(&mut *tx)
            .await?;
        let total = bind_all(sqlx::query(&count.text), &count.binds)
            .persistent(!count.replan)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok((rows, total))
    }

    /// One transaction; the outcomes, and whether notifications became due.
    async fn commit_once(
        &self,
        ops: Vec<WriteOp>,
    ) -> Result<(Vec<WriteOutcome>, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut ptx = PgTx(&mut tx, &self.consent, false, self.claimer.key());
        let outcomes = executor::execute(&mut ptx, ops, &self.handoffs).await?;
        let due = ptx.2;
        tx.commit().await?;
        Ok((outcomes, due))
    }
}

row_helpers!(sqlx::Postgres, PgRow);

/// Unique violation, serialization failure, deadlock: safe to run the whole commit again.
fn retryable(e: &StoreError) -> bool {
    let e = match e {
        StoreError::Entry { source, .. } => source.as_ref(),
        other => other,
    };
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(
                db.code().as_deref(),
                Some("23505") | Some("40001") | Some("40P01")
            )
        }
        _ => false,
    }
}

impl_store!(PgStore, pool, {
    async fn commit(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut attempt = 0;
        loop {
            match self.commit_once(ops.clone()).await {
                Err(e) if retryable(&e) && attempt + 1 < RETRIES => attempt += 1,
                Ok((out, due)) => {
                    if due {
                        self.signal.notify_one();
                    }
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.signal.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
});

/// Rows claimed by one transaction are passed over by the others.
pub const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

/// [`Tx::in_list`] on PostgreSQL.
pub fn in_list(sub: &str) -> String {
    format!("= ANY(ARRAY({sub}))")
}

/// A transaction: the connection, the consent policy, whether notifications became
/// due in it, and this process's claimer key.
struct PgTx<'c>(&'c mut PgConnection, &'c crate::consent::Policy, bool, i32);

#[async_trait]
impl Tx for PgTx<'_> {
    fn consent_policy(&self) -> &crate::consent::Policy {
        self.1
    }
    async fn load(&mut self, rtype: &str, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let row = sqlx::query(sql::READ)
            .bind(rtype)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(row.as_ref().map(stored).transpose()?)
    }

    async fn load_many(
        &mut self,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredResource>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(sql::READ_MANY_CHUNK) {
            let s = sql::read_many_chunk(chunk);
            let rows = bind_all(sqlx::query(&s.text), &s.binds)
                .fetch_all(&mut *self.0)
                .await?;
            for row in rows {
                out.push(stored(&row)?);
            }
        }
        Ok(out)
    }

    async fn find(&mut self, q: &SearchQuery, limit: i64) -> Result<Vec<String>, StoreError> {
        let s = sql::find_ids(q, limit);
        let rows = bind_all(sqlx::query(&s.text), &s.binds)
            .persistent(!s.replan)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn write(
        &mut self,
        v: &StoredResource,
        index: &[IndexEntry],
        existed: bool,
    ) -> Result<(), StoreError> {
        let rows = version::Rows::new(index);
        version::write_version(v, &rows, existed)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn write_new_many(&mut self, versions: &[&executor::Prepared]) -> Result<(), StoreError> {
        match versions {
            [] => Ok(()),
            [one] => self.write(&one.stored, &one.index, false).await,
            _ => {
                let many = version::Many::new(versions);
                many.write().execute(&mut *self.0).await?;
                Ok(())
            }
        }
    }

    async fn current(&mut self, rtype: &str, id: &str) -> Result<Option<(i64, bool)>, StoreError> {
        let q = format!("{} FOR UPDATE", sql::CURRENT);
        let row = sqlx::query(&q)
            .bind(rtype)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    async fn lock_conditional(&mut self, rtype: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(rtype)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn exec(&mut self, s: &sql::Sql) -> Result<u64, StoreError> {
        let done = bind_all(sqlx::query(&s.text), &s.binds)
            .persistent(!s.replan)
            .execute(&mut *self.0)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_key(&mut self, s: &sql::Sql, key: &str) -> Result<i64, StoreError> {
        let text = format!("{} RETURNING {key}", s.text);
        let row = bind_all(sqlx::query(&text), &s.binds)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    async fn fetch_rows(&mut self, s: &sql::Sql) -> Result<Vec<Vec<Cell>>, StoreError> {
        use sqlx::{Column, TypeInfo};
        let rows = bind_all(sqlx::query(&s.text), &s.binds)
            .persistent(!s.replan)
            .fetch_all(&mut *self.0)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut cells = Vec::with_capacity(r.columns().len());
            for (i, c) in r.columns().iter().enumerate() {
                cells.push(match c.type_info().name() {
                    "INT8" | "INT4" | "INT2" => r
                        .try_get::<Option<i64>, _>(i)
                        .map(|v| v.map_or(Cell::Null, Cell::Int))
                        .or_else(|_| {
                            r.try_get::<Option<i32>, _>(i)
                                .map(|v| v.map_or(Cell::Null, |v| Cell::Int(v.into())))
                        })?,
                    "BOOL" => r
                        .try_get::<Option<bool>, _>(i)?
                        .map_or(Cell::Null, |b| Cell::Int(b.into())),
                    _ => r
                        .try_get::<Option<String>, _>(i)?
                        .map_or(Cell::Null, Cell::Text),
                });
            }
            out.push(cells);
        }
        Ok(out)
    }

    fn skip_locked(&self) -> &'static str {
        SKIP_LOCKED
    }

    fn in_list(&self, sub: &str) -> String {
        in_list(sub)
    }

    fn claimer(&self) -> Option<i64> {
        Some(self.3.into())
    }

    fn gone_claimer(&self, column: &str) -> String {
        claimer::gone(column)
    }

    fn round_trips(&self) -> bool {
        true
    }

    fn mark_due(&mut self) {
        self.2 = true;
    }

    async fn fetch_text(&mut self, s: &sql::Sql) -> Result<Option<String>, StoreError> {
        let row = bind_all(sqlx::query(&s.text), &s.binds)
            .persistent(!s.replan)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}
