//! What is kept only for a while: message receipts (HL7 v2 and FHIR messages, to
//! answer resends) and finished notifications (for `$events` and the delivery log).
//! Each is pruned by age, in batches of [`BATCH`] rows, one commit each, by a loop
//! every gateway runs: several gateways on one store may all prune (a row is deleted
//! once, whoever gets there first).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::fhir::search::dates;
use crate::store::{Store, WriteOp, WriteOutcome};

/// Rows removed per commit at most, so a large backlog never holds the writer long.
pub const BATCH: i64 = 1000;

/// Forget what `op(before, limit)` selects as older than `retention`, checking every
/// quarter of it (at least every 250 ms, at most hourly), until `stop` turns true.
/// `what` names the rows in the log.
pub async fn prune(
    store: Arc<dyn Store>,
    retention: Duration,
    what: &'static str,
    op: impl Fn(i64, i64) -> WriteOp,
    mut stop: watch::Receiver<bool>,
) {
    let every = (retention / 4).clamp(Duration::from_millis(250), Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let before = dates::now_micros() - retention.as_micros() as i64;
        loop {
            match store
                .commit(vec![op(before, BATCH)])
                .await
                .map(|mut o| o.pop())
            {
                Ok(Some(WriteOutcome::Pruned(n))) => {
                    if n > 0 {
                        tracing::info!(rows = n, what, "pruned past retention");
                    }
                    // A full batch's worth (for notifications, the rows and attempts
                    // of one pass together): there may be more.
                    if (n as i64) < BATCH {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, what, "pruning failed; trying later");
                    break;
                }
            }
        }
    }
}
