//! The server-internal write ops, never built from a request: the notification
//! outbox's work (claims, results, heartbeats, replay, released claims, pruning) and the handoff
//! deadline sweep. `executor::execute` runs them alone in their transaction.

use super::executor::{write_server_version, Tx};
use super::sql::Sql;
use super::{handoffs, outbox, HandoffOp, OutboxOp, StoreError, WriteOutcome};
use crate::handoffs::Policy;

pub(super) async fn outbox_op<T: Tx>(tx: &mut T, op: OutboxOp) -> Result<WriteOutcome, StoreError> {
    match op {
        OutboxOp::ReleaseClaims => {
            tx.mark_due();
            let rows = tx
                .fetch_rows(&Sql::new(
                    "UPDATE outbox SET claimed_until = NULL WHERE state = 'pending' \
                     AND claimed_until IS NOT NULL RETURNING id",
                ))
                .await?;
            Ok(WriteOutcome::Queued(rows.len()))
        }
        OutboxOp::Heartbeats { now } => {
            Ok(WriteOutcome::Queued(outbox::heartbeats(tx, now).await?))
        }
        OutboxOp::Prune { before, limit } => Ok(WriteOutcome::Pruned(
            outbox::prune(tx, before, limit).await?,
        )),
        OutboxOp::Replay { subscription, now } => {
            tx.mark_due();
            let (n, changed) = outbox::replay(tx, subscription.as_deref(), now).await?;
            for (id, status) in changed {
                set_subscription_status(tx, &id, status, None, now).await?;
            }
            Ok(WriteOutcome::Queued(n))
        }
        OutboxOp::Claim {
            now,
            lease_until,
            limit,
            max_events,
        } => Ok(WriteOutcome::Claimed(
            outbox::claim(tx, now, lease_until, limit, max_events).await?,
        )),
        OutboxOp::Finish {
            claimed,
            attempt,
            next,
            ledger,
        } => {
            let status = outbox::finish(tx, &claimed, &attempt, &next, &ledger).await?;
            if let Some(status) = status {
                let error = match &next {
                    outbox::Next::Dead(why) => Some(why.as_str()),
                    _ => None,
                };
                set_subscription_status(tx, &claimed.subscription_id, status, error, attempt.at)
                    .await?;
            }
            Ok(WriteOutcome::Finished(status))
        }
    }
}

pub(super) async fn handoffs_op<T: Tx>(
    tx: &mut T,
    op: HandoffOp,
    policy: &Policy,
) -> Result<WriteOutcome, StoreError> {
    match op {
        HandoffOp::Sweep {
            now,
            holder,
            lease_until,
        } => Ok(WriteOutcome::Swept(
            handoffs::sweep(tx, now, &holder, lease_until, policy).await?,
        )),
    }
}

/// The Subscription resource says what the server now says: a new version with its
/// status (and error), unless it was switched off.
async fn set_subscription_status<T: Tx>(
    tx: &mut T,
    id: &str,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    tx.current("Subscription", id).await?; // locks the row on PostgreSQL
    if let Some(current) = tx.load("Subscription", id).await?.filter(|s| !s.deleted) {
        if let Some(body) = current.json() {
            if body["status"] != "off" {
                let mut updated = outbox::with_status(body, status, error);
                let v = current.version + 1;
                write_server_version(tx, "Subscription", id, &mut updated, v, now, true).await?;
            }
        }
    }
    Ok(())
}
