//! What became of a claimed notification: its attempt recorded, its rows delivered,
//! retried or dead-lettered, and its ledger entries written.

use super::claim::Claimed;
use super::{stmt, t};
use crate::consent::ledger::Effect;
use crate::store::disclosure;
use crate::store::executor::Tx;
use crate::store::sql::Bind;
use crate::store::StoreError;

/// One delivery attempt's result.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: i64,
    pub http_status: Option<i64>,
    pub latency_us: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Delivered,
    RetryAt(i64),
    /// Given up: the row is dead-lettered and the subscription goes to `error`.
    Dead(String),
}

/// The ledger entries of an attempt's outcome, one per event the notification carried
/// (a heartbeat or handshake carries none). Made by the delivery worker, outside the
/// transaction that [`finish`] writes them in.
pub fn ledger(c: &Claimed, a: &Attempt, next: &Next) -> Result<Vec<disclosure::Entry>, StoreError> {
    let effect = match (next, &a.error) {
        (Next::Delivered, _) => Effect::Delivered,
        (_, Some(e)) => Effect::Unacknowledged(e.clone()),
        (_, None) => Effect::Unacknowledged("no answer".into()),
    };
    c.rows()
        .into_iter()
        .filter_map(|(_, d)| d)
        .map(|d| disclosure::entry(d, &effect, a.at))
        .collect()
}

/// Record an attempt (one row per event it carried) and what follows from it, with
/// its ledger entries (from [`ledger`]). A delivered handshake makes the subscription
/// `active`; a dead notification (handshake or not) puts it in `error`.
pub async fn finish<T: Tx>(
    tx: &mut T,
    c: &Claimed,
    a: &Attempt,
    next: &Next,
    ledger: &[disclosure::Entry],
) -> Result<Option<&'static str>, StoreError> {
    // The subscription's next notification may go now (or this one, later).
    tx.mark_due();
    let rows = c.rows();
    let (state, next_attempt, done) = match next {
        Next::Delivered => ("delivered", a.at, Some(a.at)),
        Next::RetryAt(when) => ("pending", *when, None),
        Next::Dead(_) => ("dead", a.at, Some(a.at)),
    };
    // Statements of fixed text: they stay prepared in the statement caches, where an
    // IN list of literal ids would be parsed anew every time. Each statement is a round
    // trip on PostgreSQL: there the rows go as one JSON list, matched by `id = ANY(...)`,
    // and the update is planned at each run (`replanned`): on a small outbox it was
    // seen planned as a scan with a filter, a plan PostgreSQL may keep as it grows. On
    // SQLite one statement per row, which costs no trip and needs no statement journal.
    let (selectors, insert, update) = if tx.round_trips() {
        let ids: Vec<_> = rows
            .iter()
            .map(|(id, _)| serde_json::json!({"id": id}))
            .collect();
        let list = vec![t(&serde_json::Value::from(ids).to_string())];
        (list, ATTEMPTS_LISTED, FINISH_LISTED)
    } else {
        let each = rows.iter().map(|(id, _)| Bind::Int(*id)).collect();
        (each, ATTEMPT_ONE, FINISH_ONE)
    };
    for rows in selectors {
        let attempt = vec![
            rows.clone(),
            t(&c.subscription_id),
            Bind::Int(a.at),
            Bind::OptInt(a.http_status),
            Bind::Int(a.latency_us),
            Bind::OptText(a.error.clone()),
        ];
        tx.exec(&stmt(insert, attempt)).await?;
        let done = vec![rows, t(state), Bind::Int(next_attempt), Bind::OptInt(done)];
        tx.exec(&stmt(update, done).replanned()).await?;
    }
    disclosure::Entry::write_all(tx, ledger).await?;
    let new_status = match (next, c.kind.as_str()) {
        (Next::Delivered, "handshake") => Some(("active", None)),
        (Next::Dead(why), _) => Some(("error", Some(why.clone()))),
        _ => None,
    };
    let Some((status, error)) = new_status else {
        return Ok(None);
    };
    tx.exec(&stmt(
        "UPDATE subscriptions SET status = $2, error = $3, updated = $4 WHERE id = $1 AND status <> 'off'",
        vec![t(&c.subscription_id), t(status), Bind::OptText(error.clone()), Bind::Int(a.at)],
    ))
    .await?;
    Ok(Some(status))
}

const ATTEMPT_ONE: &str = "INSERT INTO delivery_attempts \
     (outbox_id, subscription_id, at, http_status, latency_us, error) VALUES ($1, $2, $3, $4, $5, $6)";
const ATTEMPTS_LISTED: &str = "INSERT INTO delivery_attempts \
     (outbox_id, subscription_id, at, http_status, latency_us, error) \
     SELECT (e->>'id')::bigint, $2, $3, $4, $5, $6 FROM jsonb_array_elements($1::jsonb) e";
const FINISH_ONE: &str =
    "UPDATE outbox SET state = $2, attempts = attempts + 1, next_attempt = $3, \
     claimed_until = NULL, done_at = $4 WHERE id = $1";
const FINISH_LISTED: &str =
    "UPDATE outbox SET state = $2, attempts = attempts + 1, next_attempt = $3, \
     claimed_until = NULL, done_at = $4 \
     WHERE id = ANY(ARRAY(SELECT (e->>'id')::bigint FROM jsonb_array_elements($1::jsonb) e))";
