//! Who holds a delivery claim, and whether that process is still there.
//!
//! A claim on an outbox row is a lease (`outbox::claim`): several gateways on one
//! PostgreSQL never send a row at the same time, and a row whose gateway died is
//! taken over when the lease runs out (35 s by default, longer than any request may
//! take). Waiting out the lease after a crash is needless when the claimer is known
//! to be gone. So each gateway process holds, on a connection of its own, a
//! session-level advisory lock under a random key for as long as it lives, and
//! writes that key into every row it claims (`outbox.claimed_by`). When PostgreSQL
//! ends that session (the process exited or was killed, and the kernel closed its
//! socket) the lock is free; a claim tries it (`pg_try_advisory_xact_lock`, which
//! succeeds only when no live session holds the key) and takes the row over at once.
//! A live claimer's lock is held, the try fails, and the lease stands.
//!
//! Should the lock's own connection drop while the process lives (a PostgreSQL
//! restart, a network cut), the process connects again and takes its key again, or
//! a new one if the old session still holds it on the server. Until then its claims
//! can be taken over while it still sends them: at worst the subscriber receives a
//! notification twice, under the same webhook id, as after a timeout.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// The first key of the two-key advisory locks that mark live claimers ("hoff"),
/// apart from the one-key locks of conditional writes (`lock_conditional`).
pub const LOCK_CLASS: i32 = 0x686f_6666;

/// How often the lock's connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The `OR` term of the claim's lease test for the process whose key is in `column`:
/// true when no live session holds that key. NULL (a row claimed before the column
/// existed) makes it NULL, so such a row waits for its lease.
pub fn gone(column: &str) -> String {
    format!(" OR pg_try_advisory_xact_lock({LOCK_CLASS}, {column})")
}

/// This process's claimer key, held as a lock until the store is dropped.
pub struct Claimer {
    key: Arc<AtomicI32>,
    /// Dropping it ends the task that holds the lock (and closes its connection).
    _stop: oneshot::Sender<()>,
}

impl Claimer {
    /// Take a free key on a connection of its own, and keep it.
    pub async fn hold(options: &PgConnectOptions) -> Result<Self, StoreError> {
        let mut conn = PgConnection::connect_with(options).await?;
        let key = Arc::new(AtomicI32::new(take_key(&mut conn, None).await?));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(keep(conn, options.clone(), key.clone(), stopped));
        Ok(Claimer { key, _stop: stop })
    }

    pub fn key(&self) -> i32 {
        self.key.load(Ordering::Relaxed)
    }
}

/// Lock `wanted` if given and free, else a random free key; the key locked.
async fn take_key(conn: &mut PgConnection, wanted: Option<i32>) -> Result<i32, StoreError> {
    let mut candidate = wanted;
    loop {
        let key = candidate.unwrap_or_else(|| uuid::Uuid::new_v4().as_u128() as i32);
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            return Ok(key);
        }
        candidate = None;
    }
}

/// Hold the lock until `stopped`: check the connection now and then, and take the
/// key again on a new one when it is lost.
async fn keep(
    mut conn: PgConnection,
    options: PgConnectOptions,
    key: Arc<AtomicI32>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        // A ping that hangs (a cut without a reset) counts as lost, like one that fails.
        if let Ok(Ok(())) = tokio::time::timeout(CHECK_EVERY, conn.ping()).await {
            continue;
        }
        tracing::warn!("the delivery claimer's lock connection was lost; taking the key again");
        loop {
            let again = async {
                let mut c = PgConnection::connect_with(&options).await?;
                let k = take_key(&mut c, Some(key.load(Ordering::Relaxed))).await?;
                Ok::<_, StoreError>((c, k))
            };
            match again.await {
                Ok((c, k)) => {
                    conn = c;
                    key.store(k, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the delivery claimer cannot reach PostgreSQL");
                    tokio::select! {
                        _ = &mut stopped => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
    let _ = conn.close().await;
}
