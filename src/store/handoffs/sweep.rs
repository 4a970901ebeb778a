//! The deadline sweep and the worklist's query.
//!
//! The sweep runs in one transaction and only under the `handoff-sweep` lease, so that
//! one replica at a time escalates (several gateways share one PostgreSQL). Each
//! overdue handoff takes one step per sweep: to the alternate recipient configured for
//! the receiver (when there is one; a fresh deadline of `escalation_grace`), then back
//! to the sender's coordinator (no further deadline). Every step is a new Task version
//! (businessStatus, an `escalation` extension and a note with the reason) and a
//! `HandoffEscalated` event, which notifies the escalation topic's subscribers.

use serde_json::json;

use super::{from_row, load, raise, save, write_task, COLUMNS};
use crate::fhir::search::dates::{self, format_instant};
use crate::handoffs::{self, task, Handoff, Policy};
use crate::store::executor::Tx;
use crate::store::sql::{Bind, Sql};
use crate::store::StoreError;

pub const LEASE_NAME: &str = "handoff-sweep";
/// At most this many handoffs are escalated per sweep (the next sweep takes the rest).
const BATCH: i64 = 200;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Swept {
    /// Whether this gateway held the lease and swept.
    pub ran: bool,
    /// Handoffs escalated by this sweep.
    pub escalated: Vec<String>,
}

/// Take (or renew) the lease; false when another holder has it.
async fn lease<T: Tx>(tx: &mut T, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
    let s = Sql::with(
        "INSERT INTO leases (name, holder, expires) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires \
         WHERE leases.expires < $4 OR leases.holder = excluded.holder RETURNING holder",
        vec![
            Bind::Text(LEASE_NAME.into()),
            Bind::Text(holder.into()),
            Bind::Int(until),
            Bind::Int(now),
        ],
    );
    Ok(!tx.fetch_rows(&s).await?.is_empty())
}

pub async fn sweep<T: Tx>(
    tx: &mut T,
    now: i64,
    holder: &str,
    lease_until: i64,
    policy: &Policy,
) -> Result<Swept, StoreError> {
    if !lease(tx, holder, now, lease_until).await? {
        return Ok(Swept {
            ran: false,
            escalated: Vec::new(),
        });
    }
    let s = Sql::with(
        &format!(
            "SELECT {COLUMNS} FROM handoffs WHERE closed IS NULL AND deadline IS NOT NULL \
             AND deadline <= $1 ORDER BY deadline, task_id LIMIT $2"
        ),
        vec![Bind::Int(now), Bind::Int(BATCH)],
    );
    let due: Vec<Handoff> = tx
        .fetch_rows(&s)
        .await?
        .iter()
        .filter_map(|r| from_row(r))
        .collect();
    let mut escalated = Vec::new();
    for h in due {
        // Re-read under the transaction (PostgreSQL: the Task row is locked first).
        tx.current("Task", &h.task_id).await?;
        let Some(h) = load(tx, &h.task_id).await? else {
            continue;
        };
        if escalate(tx, h.clone(), now, policy).await? {
            escalated.push(h.task_id);
        }
    }
    Ok(Swept {
        ran: true,
        escalated,
    })
}

/// One escalation step for an overdue handoff; false when there was none to take.
async fn escalate<T: Tx>(
    tx: &mut T,
    mut h: Handoff,
    now: i64,
    policy: &Policy,
) -> Result<bool, StoreError> {
    let Some(task) = tx.load("Task", &h.task_id).await?.filter(|t| !t.deleted) else {
        h.closed = Some(now);
        h.deadline = None;
        save(tx, &h).await?;
        return Ok(false);
    };
    let Some(mut body) = task.json() else {
        return Ok(false);
    };
    let due = h.deadline.map(format_instant).unwrap_or_default();
    let owed = if handoffs::is_accepted(&h.status) {
        "accepted but not completed"
    } else {
        "not accepted"
    };
    let receiver = h.receiver.clone().unwrap_or_else(|| "no receiver".into());
    let alternate = policy.alternate(h.receiver.as_deref()).map(str::to_owned);
    let (step, to, reason) = match (h.escalation.as_deref(), alternate) {
        (None, Some(alt)) => {
            h.deadline = Some(policy.escalation_grace.after(now));
            let reason = format!(
                "{owed} by {due} by {receiver}: escalated to {alt}, the alternate recipient for {receiver}"
            );
            ("alternate", Some(alt), reason)
        }
        (Some("sender"), _) => return Ok(false),
        _ => {
            h.deadline = None;
            let to = policy.coordinator(h.sender.as_deref()).map(str::to_owned);
            let reason = format!(
                "{owed} by {due} by {}: returned to {}, the sender's coordinator",
                h.escalated_to.as_deref().unwrap_or(&receiver),
                to.as_deref().unwrap_or("the sender")
            );
            ("sender", to, reason)
        }
    };
    h.escalation = Some(step.into());
    h.escalated_to = to.clone();
    h.business_status = format!("escalated-to-{step}");
    h.updated = now;
    task::decorate(&mut body, &h);
    task::add_escalation(&mut body, step, to.as_deref(), &reason, now);
    // Stored at the real time (notifications are due now), decided at the sweep's.
    let stored = write_task(tx, &h.task_id, body, dates::now_micros()).await?;
    save(tx, &h).await?;
    let detail = json!({"step": step, "to": to, "reason": reason, "deadline": h.deadline});
    raise(tx, handoffs::ESCALATED, &h, &stored, detail).await?;
    Ok(true)
}

/// A party's handoffs: open ones, and those closed since `since`.
#[derive(Debug, Clone)]
pub struct WorklistQuery {
    pub party: String,
    pub since: i64,
    pub limit: i64,
}

/// The rows: [`COLUMNS`], then the last notification about the handoff or its focus as
/// `state|attempts|at` (NULL when none).
pub fn worklist_sql(q: &WorklistQuery) -> Sql {
    let last_delivery = "(SELECT o.state || '|' || o.attempts || '|' || COALESCE(o.done_at, o.created) \
         FROM outbox o JOIN domain_events e ON e.seq = o.event_seq \
         WHERE (e.record_kind = 'handoff' AND e.record_id = h.task_id) \
         OR (h.kind <> 'referral' AND e.record_kind = 'transition' AND e.record_id = substr(h.focus, 11)) \
         OR (h.kind = 'referral' AND e.record_kind = 'referral' AND e.record_id = substr(h.focus, 16)) \
         ORDER BY o.id DESC LIMIT 1)";
    let mut s = Sql::new(&format!(
        "SELECT {COLUMNS}, {last_delivery} FROM handoffs h WHERE ("
    ));
    for (i, col) in ["receiver", "sender", "escalated_to", "accountable"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            s.push(" OR ");
        }
        s.push(col).push(" = ").bind(Bind::Text(q.party.clone()));
    }
    s.push(") AND (closed IS NULL OR closed >= ")
        .bind(Bind::Int(q.since))
        .push(") ORDER BY COALESCE(deadline, opened), task_id LIMIT ")
        .bind(Bind::Int(q.limit));
    s
}
