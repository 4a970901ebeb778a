//! The SQLite writer task: group commit over one connection.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{bind_all, stored};
use crate::store::executor;
use crate::store::sql;
use crate::store::{StoreError, WriteOp, WriteOutcome};

pub struct Job {
    pub ops: Vec<WriteOp>,
    pub reply: oneshot::Sender<Result<Vec<WriteOutcome>, StoreError>>,
}

pub async fn open(options: &SqliteConnectOptions) -> Result<SqliteConnection, StoreError> {
    Ok(options.connect().await?)
}

pub async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let results = commit_batch(&mut conn, &mut batch).await;
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
    let _ = conn.close().await;
}

/// One transaction, one savepoint per job, one fsync for all.
async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &mut [Job],
) -> Vec<Result<Vec<WriteOutcome>, StoreError>> {
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        let msg = e.to_string();
        return batch
            .iter()
            .map(|_| Err(StoreError::Database(sqlx::Error::Protocol(msg.clone()))))
            .collect();
    }
    let mut results = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let ops = std::mem::take(&mut job.ops);
        results.push(run_job(conn, ops).await);
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        tracing::error!(error = %e, "SQLite commit failed; rolling back the batch");
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        let msg = e.to_string();
        return results
            .iter()
            .map(|_| Err(StoreError::Database(sqlx::Error::Protocol(msg.clone()))))
            .collect();
    }
    results
}

async fn run_job(
    conn: &mut SqliteConnection,
    ops: Vec<WriteOp>,
) -> Result<Vec<WriteOutcome>, StoreError> {
    sqlx::query("SAVEPOINT job").execute(&mut *conn).await?;
    let result = executor::execute(&mut SqliteTx(conn), ops).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO job").execute(&mut *conn).await?;
    }
    sqlx::query("RELEASE job").execute(&mut *conn).await?;
    result
}

struct SqliteTx<'c>(&'c mut SqliteConnection);

impl_tx!(SqliteTx<'_>, {
    async fn current(&mut self, rtype: &str, id: &str) -> Result<Option<(i64, bool)>, StoreError> {
        let row = sqlx::query(sql::CURRENT)
            .bind(rtype)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    async fn lock_conditional(&mut self, _rtype: &str) -> Result<(), StoreError> {
        Ok(()) // the single writer already serialises every write
    }
});
