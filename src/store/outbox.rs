//! Subscriptions' server state and the notification outbox, inside store transactions.
//!
//! - A Subscription write is *prepared* before its version is stored (its channel and
//!   filters parsed, the status the server decides set on the resource, the webhook
//!   secret taken out of it) and *saved* after (the `subscriptions` row, and a
//!   handshake owed when the subscription is new or its channel changed).
//! - When a domain event is written, [`match_event`] finds the active subscriptions
//!   whose topic and filters it matches, in the same transaction: an outbox row exists
//!   if and only if the event committed. It is numbered when first claimed (below).
//! - Workers [`claim`] due rows (only the oldest pending row of each subscription, so
//!   each subscriber receives its notifications in order), give the events they carry
//!   the subscription's next event numbers, deliver them outside any transaction, and
//!   [`finish`] them: delivered, retry later, or dead.

use serde_json::Value;

use super::disclosure;
use super::executor::Tx;
use super::sql::{Bind, Sql};
use super::{StoreError, StoredResource};
use crate::consent::ledger::Effect;
use crate::consent::Decision;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::records::Record;
use crate::topics::{catalog, subscription};

/// The channel extension carrying the subscriber's webhook secret. It is taken out of
/// the resource before storage: the secret lives only in the `subscriptions` row.
pub const SECRET_URL: &str = "http://handoff.example.org/fhir/StructureDefinition/webhook-secret";

/// What a Subscription write will do once its version is stored.
#[derive(Debug)]
pub struct Prepared {
    spec: subscription::SubscriptionSpec,
    spec_json: String,
    status: String,
    secret: Option<String>,
    handshake: bool,
}

fn stmt(text: &str, binds: Vec<Bind>) -> Sql {
    Sql::with(text, binds)
}

fn t(s: &str) -> Bind {
    Bind::Text(s.to_owned())
}

fn take_secret(resource: &mut Value) -> Option<String> {
    let channel = resource.get_mut("channel")?.as_object_mut()?;
    let exts = channel.get_mut("extension")?.as_array_mut()?;
    let i = exts.iter().position(|e| e["url"] == SECRET_URL)?;
    let secret = exts.remove(i)["valueString"].as_str().map(str::to_owned);
    if exts.is_empty() {
        channel.remove("extension");
    }
    secret
}

/// Parse and decide, before the version is written; sets `status` on the resource.
pub async fn prepare<T: Tx>(
    tx: &mut T,
    id: &str,
    resource: &mut Value,
) -> Result<Prepared, StoreError> {
    let secret = take_secret(resource);
    let mut spec = subscription::parse(resource).map_err(StoreError::Unprocessable)?;
    // The status is the server's to drive; the spec is what the subscriber asked for.
    spec.status.clear();
    let spec_json = serde_json::to_string(&spec).expect("specs serialise");
    let existing = tx
        .fetch_rows(&stmt(
            "SELECT spec, status FROM subscriptions WHERE id = $1",
            vec![t(id)],
        ))
        .await?
        .pop();
    let asked = resource["status"]
        .as_str()
        .unwrap_or("requested")
        .to_owned();
    let (status, handshake) = match existing {
        _ if asked == "off" => ("off".to_owned(), false),
        Some(row) if row[0].text() == Some(spec_json.as_str()) && row[1].text() != Some("off") => {
            // Same channel and filters: the status stays the server's to decide.
            (row[1].text().unwrap_or("requested").to_owned(), false)
        }
        // The Da Vinci message channel has no handshake message: active at once.
        Some(_) | None if spec.channel == subscription::Channel::DaVinciMessage => {
            ("active".to_owned(), false)
        }
        Some(_) | None => ("requested".to_owned(), true),
    };
    if secret.is_none() {
        let has_one = tx
            .fetch_text(&stmt(
                "SELECT secret FROM subscriptions WHERE id = $1",
                vec![t(id)],
            ))
            .await?
            .is_some();
        if !has_one {
            return Err(StoreError::Unprocessable(vec![Issue::error(
                IssueCode::Required,
                format!("The subscription needs a webhook secret: an extension {SECRET_URL} (valueString) on Subscription.channel; notifications are signed with it"),
            )
            .at("Subscription.channel.extension")]));
        }
    }
    resource["status"] = Value::String(status.clone());
    Ok(Prepared {
        spec,
        spec_json,
        status,
        secret,
        handshake,
    })
}

/// After the version is written: the server row, and the handshake owed.
pub async fn save<T: Tx>(tx: &mut T, v: &StoredResource, p: Prepared) -> Result<(), StoreError> {
    if p.status == "off" {
        // Switched off: nothing more goes out, not even what was owed. (The outbox rows
        // first, then the subscription's row: the order claims lock them in.)
        drop_pending(tx, &v.id, v.last_updated).await?;
    }
    tx.exec(&stmt(
        "INSERT INTO subscriptions (id, topic, status, spec, secret, updated, heartbeat_secs, last_notified) \
         VALUES ($1, $2, $3, $4, $5, $6, $8, $6) \
         ON CONFLICT (id) DO UPDATE SET topic = excluded.topic, status = excluded.status, spec = excluded.spec, \
         secret = COALESCE($7, subscriptions.secret), error = NULL, updated = excluded.updated, \
         heartbeat_secs = excluded.heartbeat_secs, last_notified = excluded.last_notified",
        vec![
            t(&v.id),
            t(&p.spec.topic),
            t(&p.status),
            t(&p.spec_json),
            Bind::Text(p.secret.clone().unwrap_or_default()),
            Bind::Int(v.last_updated),
            Bind::OptText(p.secret),
            Bind::OptInt(p.spec.heartbeat_secs.map(i64::from)),
        ],
    ))
    .await?;
    if p.handshake {
        enqueue(tx, &v.id, "handshake", None, v.last_updated).await?;
    }
    Ok(())
}

async fn drop_pending<T: Tx>(tx: &mut T, id: &str, now: i64) -> Result<(), StoreError> {
    tx.exec(&stmt(
        "UPDATE outbox SET state = 'dead', done_at = $2 WHERE subscription_id = $1 AND state = 'pending'",
        vec![t(id), Bind::Int(now)],
    ))
    .await
    .map(|_| ())
}

/// A Subscription deleted: nothing more is owed to it.
pub async fn remove<T: Tx>(tx: &mut T, id: &str, now: i64) -> Result<(), StoreError> {
    // The outbox rows first, then the subscription's row: the order claims lock them in.
    drop_pending(tx, id, now).await?;
    tx.exec(&stmt(
        "DELETE FROM subscriptions WHERE id = $1",
        vec![t(id)],
    ))
    .await
    .map(|_| ())
}

async fn enqueue<T: Tx>(
    tx: &mut T,
    sub: &str,
    kind: &str,
    event_seq: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    tx.mark_due();
    tx.exec(&stmt(
        "INSERT INTO outbox (subscription_id, kind, event_seq, webhook_id, state, next_attempt, created) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
        vec![
            t(sub),
            t(kind),
            Bind::OptInt(event_seq),
            Bind::Text(uuid::Uuid::new_v4().to_string()),
            Bind::Int(now),
        ],
    ))
    .await
    .map(|_| ())
}

/// Queue a notification of event `seq` for every active subscription it matches.
/// Returns how many were queued.
pub async fn match_event<T: Tx>(
    tx: &mut T,
    seq: i64,
    event: &str,
    record: &Record,
    now: i64,
) -> Result<usize, StoreError> {
    let values = |topic: &catalog::Topic, param: &str| catalog::filter_values(topic, param, record);
    match_event_with(tx, seq, event, &values, now).await
}

/// [`match_event`] for an event whose filter values come from elsewhere than a record
/// (a handoff's): `values(topic, param)`.
pub async fn match_event_with<T: Tx>(
    tx: &mut T,
    seq: i64,
    event: &str,
    values: &(dyn Fn(&catalog::Topic, &str) -> Vec<String> + Send + Sync),
    now: i64,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    let mut memo = disclosure::FactsMemo::new();
    for topic in catalog::for_event(event) {
        let subs = tx
            .fetch_rows(&stmt(
                "SELECT id, spec FROM subscriptions WHERE topic = $1 AND status = 'active' ORDER BY id",
                vec![t(topic.url)],
            ))
            .await?;
        for row in subs {
            let (Some(id), Some(spec)) = (row[0].text(), row[1].text()) else {
                continue;
            };
            let Ok(spec) = serde_json::from_str::<subscription::SubscriptionSpec>(spec) else {
                tracing::error!(subscription = id, "stored subscription spec unreadable");
                continue;
            };
            let matches = spec
                .filters
                .iter()
                .all(|f| values(topic, &f.param).contains(&f.value));
            if !matches {
                continue;
            }
            // Consent, at match time: a denied disclosure is never queued (and takes no
            // event number); the denial is in the ledger.
            let facts = disclosure::EventFacts::memo(tx, &mut memo, seq).await?;
            let decided = facts.map(|f| {
                f.decide(
                    id,
                    spec.recipient.as_ref(),
                    "",
                    None,
                    now,
                    tx.consent_policy(),
                )
            });
            if let Some(d) = decided.filter(|d| d.decision.decision == Decision::Deny) {
                disclosure::record(tx, &d, &Effect::Denied, now).await?;
                continue;
            }
            // No number yet: the claim numbers it (see `claim`), so event-raising
            // transactions never update, and wait on, the subscription's row.
            enqueue(tx, id, "event-notification", Some(seq), now).await?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Queue a heartbeat for every active subscription that asked for them and has had
/// nothing queued for its heartbeat period (and nothing still pending). Returns how many.
pub async fn heartbeats<T: Tx>(tx: &mut T, now: i64) -> Result<usize, StoreError> {
    let due = tx
        .fetch_rows(&stmt(
            &format!(
                "SELECT id FROM subscriptions s WHERE status = 'active' AND heartbeat_secs IS NOT NULL \
                 AND last_notified + heartbeat_secs * 1000000 <= $1 \
                 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subscription_id = s.id AND o.state = 'pending') \
                 ORDER BY id LIMIT 100{}",
                tx.skip_locked()
            ),
            vec![Bind::Int(now)],
        ))
        .await?;
    for row in &due {
        let Some(id) = row[0].text() else { continue };
        tx.exec(&stmt(
            "UPDATE subscriptions SET last_notified = $2 WHERE id = $1",
            vec![t(id), Bind::Int(now)],
        ))
        .await?;
        enqueue(tx, id, "heartbeat", None, now).await?;
    }
    Ok(due.len())
}

/// Forget notifications finished before `before`: delivered ones and those consent
/// withheld (the disclosure ledger keeps what was sent or denied, as AuditEvents), at
/// most `limit`, oldest first; then the attempts (up to `limit`) of notifications no
/// longer kept. Kept whatever their age: dead-lettered notifications (an operator may
/// replay them), the pending, and handshakes (replay tells by a delivered handshake
/// whether a subscription goes back to `active`). The rows removed.
///
/// Both tables are scanned by id only as far as the first row of the period kept, so
/// a pass over a large outbox reads the old rows, not the whole table (ids grow with
/// time; on PostgreSQL nearly so, which is enough for a horizon of days). `state || ''`
/// keeps SQLite's planner off the `outbox_pending` index, which would read every
/// delivered row of every subscription.
pub async fn prune<T: Tx>(tx: &mut T, before: i64, limit: i64) -> Result<usize, StoreError> {
    let rows = tx
        .fetch_rows(&stmt(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
               WHERE id < coalesce((SELECT id FROM outbox WHERE created >= $1 ORDER BY id LIMIT 1), \
                 9223372036854775807) \
               AND state || '' IN ('delivered', 'denied') AND kind <> 'handshake' AND done_at < $1 \
               ORDER BY id LIMIT $2) RETURNING id",
            vec![Bind::Int(before), Bind::Int(limit)],
        ))
        .await?;
    let attempts = tx
        .fetch_rows(&stmt(
            "DELETE FROM delivery_attempts WHERE id IN (SELECT a.id FROM delivery_attempts a \
               WHERE a.id < coalesce((SELECT id FROM delivery_attempts WHERE at >= $1 ORDER BY id LIMIT 1), \
                 9223372036854775807) \
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = a.outbox_id) \
               ORDER BY a.id LIMIT $2) RETURNING id",
            vec![Bind::Int(before), Bind::Int(limit)],
        ))
        .await?;
    Ok(rows.len() + attempts.len())
}

/// Operator replay: dead notifications of one subscription (or all) are owed again,
/// from now, with fresh attempts (same webhook ids, so receivers still dedupe). A
/// subscription in `error` is reactivated: `active` when its handshake once
/// succeeded, else `requested` with a new handshake. Returns the rows requeued and
/// the subscriptions whose status changed (for their resources).
pub async fn replay<T: Tx>(
    tx: &mut T,
    subscription: Option<&str>,
    now: i64,
) -> Result<(usize, Vec<(String, &'static str)>), StoreError> {
    let rows = tx
        .fetch_rows(&stmt(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt = $2, claimed_until = NULL, done_at = NULL \
             WHERE state = 'dead' AND kind <> 'handshake' AND ($1 = '' OR subscription_id = $1) \
             AND subscription_id IN (SELECT id FROM subscriptions) RETURNING subscription_id",
            vec![t(subscription.unwrap_or("")), Bind::Int(now)],
        ))
        .await?;
    let errored = tx
        .fetch_rows(&stmt(
            "SELECT s.id, EXISTS (SELECT 1 FROM outbox o WHERE o.subscription_id = s.id \
                AND o.kind = 'handshake' AND o.state = 'delivered') \
             FROM subscriptions s WHERE s.status = 'error' AND ($1 = '' OR s.id = $1) ORDER BY s.id",
            vec![t(subscription.unwrap_or(""))],
        ))
        .await?;
    let mut changed = Vec::new();
    for row in errored {
        let Some(id) = row[0].text().map(str::to_owned) else {
            continue;
        };
        let shaken = row[1].int().unwrap_or(0) != 0;
        let status = if shaken { "active" } else { "requested" };
        tx.exec(&stmt(
            "UPDATE subscriptions SET status = $2, error = NULL, updated = $3 WHERE id = $1",
            vec![t(&id), t(status), Bind::Int(now)],
        ))
        .await?;
        if !shaken {
            enqueue(tx, &id, "handshake", None, now).await?;
        }
        changed.push((id, status));
    }
    Ok((rows.len(), changed))
}

mod claim;
mod finish;
mod rows;

pub use claim::{claim, pick_text, Claimed, Member, MAX_EVENTS};
pub use finish::{finish, ledger, Attempt, Next};
pub use rows::{BEHIND_LISTED, STAMP_LISTED};

/// The Subscription resource's status (and `error`) as the server now sees it: a new
/// version written without passing through [`prepare`].
pub fn with_status(mut resource: Value, status: &str, error: Option<&str>) -> Value {
    resource["status"] = Value::String(status.to_owned());
    match error {
        Some(e) => resource["error"] = Value::String(e.to_owned()),
        None => {
            if let Some(o) = resource.as_object_mut() {
                o.remove("error");
            }
        }
    }
    resource
}

// ---- the read side: `$status`, `$events` -------------------------------------------

/// A subscription's server state, for `$status`.
#[derive(Debug, Clone)]
pub struct SubState {
    pub id: String,
    pub topic: String,
    pub status: String,
    pub events_since_start: i64,
    pub error: Option<String>,
}

pub const SELECT_STATES: &str =
    "SELECT id, topic, status, events_since_start, error FROM subscriptions \
     WHERE ($1 = '' OR id = $1) ORDER BY id LIMIT 1000";

/// Events notified to a subscription, numbered, oldest first (for `$events`).
pub const SELECT_SUB_EVENTS: &str =
    "SELECT o.event_number, e.seq, e.event, e.record_kind, e.record_id, \
     e.rtype, e.rid, e.version, e.patient, e.at, e.detail \
     FROM outbox o JOIN domain_events e ON e.seq = o.event_seq \
     WHERE o.subscription_id = $1 AND o.kind = 'event-notification' AND o.state <> 'denied' \
     AND o.event_number >= $2 AND o.event_number <= $3 ORDER BY o.event_number LIMIT $4";

/// A subscription's notifications, newest first, with each one's last attempt.
pub const SELECT_DELIVERIES: &str = "SELECT o.id, o.kind, o.event_number, o.webhook_id, o.state, o.attempts, \
     o.next_attempt, o.created, o.done_at, \
     (SELECT a.http_status FROM delivery_attempts a WHERE a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1), \
     (SELECT a.error FROM delivery_attempts a WHERE a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1) \
     FROM outbox o WHERE o.subscription_id = $1 ORDER BY o.id DESC LIMIT $2";

/// A subscription's delivery attempts, newest first.
pub const SELECT_ATTEMPTS: &str = "SELECT outbox_id, at, http_status, latency_us, error \
     FROM delivery_attempts WHERE subscription_id = $1 ORDER BY id DESC LIMIT $2";
