//! The periodic deadline sweep. Every gateway runs this loop; the sweep itself only
//! does work under the store's `handoff-sweep` lease, so one replica at a time
//! escalates (the lease outlives a few intervals, so a stopped holder is replaced
//! after that long).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::fhir::search::dates;
use crate::store::{handoffs::Swept, HandoffOp, Store, StoreError, WriteOp, WriteOutcome};

/// How long a sweep's lease lasts: three intervals, at least 30 seconds.
pub fn lease_length(interval: Duration) -> Duration {
    (interval * 3).max(Duration::from_secs(30))
}

/// Run one sweep at `now` (microseconds) as `holder`.
pub async fn sweep_once(
    store: &dyn Store,
    holder: &str,
    now: i64,
    lease: Duration,
) -> Result<Swept, StoreError> {
    let op = HandoffOp::Sweep {
        now,
        holder: holder.to_owned(),
        lease_until: now + lease.as_micros() as i64,
    };
    match store.commit(vec![WriteOp::Handoffs(op)]).await?.pop() {
        Some(WriteOutcome::Swept(s)) => Ok(s),
        _ => Err(StoreError::Conflict("the sweep returned nothing".into())),
    }
}

/// Sweep every `interval` until `stop` says so.
pub fn spawn(
    store: Arc<dyn Store>,
    holder: String,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let lease = lease_length(interval);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            match sweep_once(&*store, &holder, dates::now_micros(), lease).await {
                Ok(s) if !s.escalated.is_empty() => {
                    tracing::info!(escalated = s.escalated.len(), "handoff sweep escalated")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "handoff sweep failed"),
            }
        }
    })
}
