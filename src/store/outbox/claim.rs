//! Claiming due outbox rows for delivery and recording what became of them.
//!
//! Only each subscription's oldest pending row (its *head*) may be claimed, so every
//! subscriber receives its notifications in order. When a rest-hook subscriber has a
//! backlog, the head takes the pending event rows right behind it along (up to
//! `max_events`, lowered by the subscription's `max-count`): one notification Bundle
//! carries them all, as the Backport IG allows. Every event row claimed is stamped
//! with its batch (`batch_head`, the id of the batch's first row) in the claim's
//! transaction, so a retry, or a claim after a crash, sends exactly the same events
//! under the same webhook id. Heartbeats, handshakes and Da Vinci messages travel
//! alone.

use super::{stmt, t};
use crate::consent::ledger::{Disclosure, Effect};
use crate::consent::Decision;
use crate::store::disclosure;
use crate::store::executor::{Cell, Tx};
use crate::store::sql::Bind;
use crate::store::StoreError;
use crate::topics::subscription::{Channel, SubscriptionSpec};

/// The most events one notification may carry, whatever the configuration says.
pub const MAX_EVENTS: u32 = 100;

/// A claimed notification: its first row, with what the worker needs to send it, and
/// the further events it carries.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub outbox_id: i64,
    pub subscription_id: String,
    pub kind: String,
    pub event_seq: Option<i64>,
    pub event_number: Option<i64>,
    /// The notification's webhook id: its batch's first row's, the same on every attempt.
    pub webhook_id: String,
    pub attempts: i64,
    pub topic: String,
    pub status: String,
    pub spec: String,
    pub secret: String,
    pub events_since_start: i64,
    /// For an event notification: the disclosure as consent decided it at the claim
    /// (what to withhold, and what the ledger entry says).
    pub disclosure: Option<Disclosure>,
    /// The other events of the same notification, in event order.
    pub more: Vec<Member>,
}

/// A further event row of a claimed notification.
#[derive(Debug, Clone)]
pub struct Member {
    pub outbox_id: i64,
    pub event_seq: i64,
    pub event_number: Option<i64>,
    pub disclosure: Option<Disclosure>,
}

impl Claimed {
    /// Every outbox row the notification carries, first row first.
    pub fn rows(&self) -> Vec<(i64, Option<&Disclosure>)> {
        let first = (self.outbox_id, self.disclosure.as_ref());
        std::iter::once(first)
            .chain(
                self.more
                    .iter()
                    .map(|m| (m.outbox_id, m.disclosure.as_ref())),
            )
            .collect()
    }
}

/// An event row of a batch being put together.
struct Row {
    id: i64,
    seq: Option<i64>,
    number: Option<i64>,
}

/// The ids of up to `$3` due heads at `$1`, in id order: the subscriptions' heads
/// looked up by key with `in_list` ([`Tx::in_list`]), locked with `lock`
/// ([`Tx::skip_locked`]).
pub fn pick_text(in_list: &dyn Fn(&str) -> String, lock: &str) -> String {
    let heads = in_list(
        "SELECT COALESCE( \
           (SELECT min(p.id) FROM outbox p WHERE p.state = 'pending' \
              AND p.event_number IS NOT NULL AND p.subscription_id = s.id), \
           (SELECT min(p.id) FROM outbox p \
              WHERE p.state = 'pending' AND p.subscription_id = s.id)) FROM subscriptions s",
    );
    format!(
        "SELECT o.id FROM outbox o WHERE o.id {heads} \
         AND o.next_attempt <= $1 AND (o.claimed_until IS NULL OR o.claimed_until < $1) \
         ORDER BY o.id LIMIT $3{lock}"
    )
}

/// Claim up to `limit` due notifications until `lease_until`: only the oldest pending
/// row of each subscription (per-subscriber order), none leased by another worker, each
/// with up to `max_events - 1` further events of its subscription.
pub async fn claim<T: Tx>(
    tx: &mut T,
    now: i64,
    lease_until: i64,
    limit: i64,
    max_events: u32,
) -> Result<Vec<Claimed>, StoreError> {
    // Only each subscription's head may go (order per subscriber): its oldest numbered
    // pending row (a notification in flight or waiting for its retry: nothing passes
    // it), else its oldest pending row. Found by index probes per subscription, not by
    // testing every pending row for an earlier one, which grew with the backlog and
    // throttled a busy outbox. The heads are then looked up by key (`in_list`): on
    // PostgreSQL an `IN` here was planned as a join with a scan of the whole outbox
    // (its size misjudged), and claims slowed as delivered rows accumulated. Planned at
    // each claim (`replanned`), so that no plan made on a small outbox is kept.
    let pick = pick_text(&|s| tx.in_list(s), tx.skip_locked());
    let rows = tx
        .fetch_rows(
            &stmt(
                &format!(
                    "UPDATE outbox SET claimed_until = $2 WHERE id IN ({pick}) \
                 RETURNING id, subscription_id, kind, event_seq, event_number, webhook_id, \
                 attempts, batch_head"
                ),
                vec![Bind::Int(now), Bind::Int(lease_until), Bind::Int(limit)],
            )
            .replanned(),
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    // An event fanned out to many subscribers is decided for each, on facts loaded once.
    let mut memo = disclosure::FactsMemo::new();
    // Event notifications, with their rows, decided once every row is known.
    let mut events = Vec::new();
    for r in rows {
        let mut r = r.into_iter();
        let mut next = || r.next().unwrap_or(Cell::Null);
        let (outbox_id, sub, kind, seq, number, webhook_id, attempts, batch) = (
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
        );
        let sub = sub.into_text().unwrap_or_default();
        let Some(s) = tx
            .fetch_rows(&stmt(
                "SELECT topic, status, spec, secret, events_since_start FROM subscriptions WHERE id = $1",
                vec![t(&sub)],
            ))
            .await?
            .pop()
        else {
            continue; // deleted meanwhile; `remove` marks its rows dead
        };
        let mut s = s.into_iter();
        let mut col = || s.next().unwrap_or(Cell::Null);
        let mut c = Claimed {
            outbox_id: outbox_id.int().unwrap_or(0),
            subscription_id: sub,
            kind: kind.into_text().unwrap_or_default(),
            event_seq: seq.int(),
            event_number: number.int(),
            webhook_id: webhook_id.into_text().unwrap_or_default(),
            attempts: attempts.int().unwrap_or(0),
            topic: col().into_text().unwrap_or_default(),
            status: col().into_text().unwrap_or_default(),
            spec: col().into_text().unwrap_or_default(),
            secret: col().into_text().unwrap_or_default(),
            events_since_start: col().int().unwrap_or(0),
            disclosure: None,
            more: Vec::new(),
        };
        if c.kind != "event-notification" || c.event_seq.is_none() {
            out.push(c);
            continue;
        }
        let spec = serde_json::from_str::<SubscriptionSpec>(&c.spec).ok();
        let cap = match &spec {
            Some(s) if s.channel == Channel::RestHook => {
                max_events.min(s.max_count.unwrap_or(MAX_EVENTS)).max(1)
            }
            _ => 1,
        };
        let (batch, batch_id) = batch_rows(tx, &mut c, batch.int(), cap).await?;
        let recipient = spec.and_then(|s| s.recipient);
        events.push((c, batch, batch_id, recipient));
    }
    // Consent again, before every attempt: a revocation since the last attempt stops
    // the disclosure here, event by event; the facts of all the claim's events first.
    let seqs = events
        .iter()
        .flat_map(|(_, b, _, _)| b.iter().filter_map(|r| r.seq))
        .collect::<Vec<i64>>(); // collected: the borrowing iterator would not be Send
    disclosure::EventFacts::load_all(tx, &mut memo, seqs).await?;
    for (mut c, batch, batch_id, recipient) in events {
        let mut kept = Vec::with_capacity(batch.len());
        for row in batch {
            let Some(seq) = row.seq else { continue };
            let facts = disclosure::EventFacts::memo(tx, &mut memo, seq).await?;
            let d = facts.map(|f| {
                let policy = tx.consent_policy();
                f.decide(
                    &c.subscription_id,
                    recipient.as_ref(),
                    &c.webhook_id,
                    row.number,
                    now,
                    policy,
                )
            });
            if let Some(d) = d.as_ref().filter(|d| d.decision.decision == Decision::Deny) {
                tx.exec(&stmt(
                    "UPDATE outbox SET state = 'denied', claimed_until = NULL, done_at = $2 WHERE id = $1",
                    vec![Bind::Int(row.id), Bind::Int(now)],
                ))
                .await?;
                disclosure::record(tx, d, &Effect::Denied, now).await?;
                continue;
            }
            kept.push(Member {
                outbox_id: row.id,
                event_seq: seq,
                event_number: row.number,
                disclosure: d,
            });
        }
        if !stamp(tx, &mut c, &mut kept, batch_id, lease_until, now).await? {
            continue; // deleted meanwhile; `remove` marks its rows dead
        }
        let mut kept = kept.into_iter();
        let Some(first) = kept.next() else { continue };
        c.outbox_id = first.outbox_id;
        c.event_seq = Some(first.event_seq);
        c.event_number = first.event_number;
        c.disclosure = first.disclosure;
        c.more = kept.collect();
        out.push(c);
    }
    Ok(out)
}

/// Stamp the rows a notification carries with their batch, their lease and, for the
/// events sent for the first time, the subscription's next event numbers (in row
/// order); note the new count in `c`.
///
/// Numbering here, not when the event is written, keeps event-raising transactions off
/// the subscription's row (its lock, held to their commit, made them queue instead of
/// sharing commits); an event withheld by consent at its claim takes no number, so the
/// numbers a subscriber sees never skip; a batch claimed again keeps its numbers. Two
/// claims never number one subscription at once: the `UPDATE` below holds its row to
/// the commit. Rows are stamped one by one, by id: without the subscription's lock,
/// event rows commit out of id order on PostgreSQL, and a range would also catch a row
/// that committed after the batch was read, leaving it leased but never sent. False
/// when the subscription is gone.
async fn stamp<T: Tx>(
    tx: &mut T,
    c: &mut Claimed,
    kept: &mut [Member],
    batch: i64,
    lease_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let fresh = kept.iter().filter(|m| m.event_number.is_none()).count() as i64;
    let mut n = 0;
    if fresh > 0 {
        let Some(end) = tx
            .fetch_rows(&stmt(
                "UPDATE subscriptions SET events_since_start = events_since_start + $2, last_notified = $3 \
                 WHERE id = $1 RETURNING events_since_start",
                vec![t(&c.subscription_id), Bind::Int(fresh), Bind::Int(now)],
            ))
            .await?
            .pop()
            .and_then(|r| r.into_iter().next())
            .and_then(|n| n.int())
        else {
            return Ok(false);
        };
        n = end - fresh;
        c.events_since_start = end;
    }
    for m in kept.iter_mut() {
        if m.event_number.is_none() {
            n += 1;
            m.event_number = Some(n);
            if let Some(d) = m.disclosure.as_mut() {
                d.event_number = Some(n);
            }
        }
    }
    if tx.round_trips() {
        let rows: Vec<_> = kept
            .iter()
            .map(|m| serde_json::json!({"id": m.outbox_id, "n": m.event_number}))
            .collect();
        tx.exec(&stmt(
            "UPDATE outbox SET batch_head = $2, claimed_until = $3, event_number = \
             (SELECT (e->>'n')::bigint FROM jsonb_array_elements($1::jsonb) e WHERE (e->>'id')::bigint = outbox.id) \
             WHERE id = ANY(ARRAY(SELECT (e->>'id')::bigint FROM jsonb_array_elements($1::jsonb) e))",
            vec![
                t(&serde_json::Value::from(rows).to_string()),
                Bind::Int(batch),
                Bind::Int(lease_until),
            ],
        )
        .replanned())
        .await?;
        return Ok(true);
    }
    for m in kept.iter() {
        tx.exec(&stmt(
            "UPDATE outbox SET batch_head = $2, claimed_until = $3, event_number = $4 WHERE id = $1",
            vec![
                Bind::Int(m.outbox_id),
                Bind::Int(batch),
                Bind::Int(lease_until),
                Bind::OptInt(m.event_number),
            ],
        ))
        .await?;
    }
    Ok(true)
}

/// The event rows of the notification `c` heads, first row first, and the batch's id
/// (its first row's). A head already stamped (a retry, or a claim after a crash) takes
/// exactly its batch again; a new one takes the unstamped event rows behind it, up to
/// `cap` in all. [`stamp`] marks them once consent has decided.
async fn batch_rows<T: Tx>(
    tx: &mut T,
    c: &mut Claimed,
    stamped: Option<i64>,
    cap: u32,
) -> Result<(Vec<Row>, i64), StoreError> {
    let head = Row {
        id: c.outbox_id,
        seq: c.event_seq,
        number: c.event_number,
    };
    let batch = stamped.unwrap_or(head.id);
    let behind = match stamped {
        // Exactly the batch's rows: rows that committed after it was put together may
        // lie between them.
        Some(b) => {
            tx.fetch_rows(&stmt(
                "SELECT id, kind, event_seq, event_number, batch_head FROM outbox \
                 WHERE state = 'pending' AND subscription_id = $1 AND id > $2 AND batch_head = $3 \
                 ORDER BY id LIMIT $4",
                vec![
                    t(&c.subscription_id),
                    Bind::Int(head.id),
                    Bind::Int(b),
                    Bind::Int(i64::from(MAX_EVENTS) - 1),
                ],
            ))
            .await?
        }
        None if cap > 1 => {
            tx.fetch_rows(&stmt(
                "SELECT id, kind, event_seq, event_number, batch_head FROM outbox \
                 WHERE state = 'pending' AND subscription_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                vec![
                    t(&c.subscription_id),
                    Bind::Int(head.id),
                    Bind::Int(i64::from(cap) - 1),
                ],
            ))
            .await?
        }
        None => Vec::new(),
    };
    let mut rows = vec![head];
    for r in behind {
        let joins = match stamped {
            Some(b) => r[4].int() == Some(b),
            None => r[1].text() == Some("event-notification") && r[4].int().is_none(),
        };
        if !joins {
            break;
        }
        rows.push(Row {
            id: r[0].int().unwrap_or(0),
            seq: r[2].int(),
            number: r[3].int(),
        });
    }
    if batch != c.outbox_id {
        // The head of a batch whose first row was since withheld by consent: the
        // notification keeps the batch's webhook id, so receivers still dedupe it.
        if let Some(w) = tx
            .fetch_rows(&stmt(
                "SELECT webhook_id FROM outbox WHERE id = $1",
                vec![Bind::Int(batch)],
            ))
            .await?
            .pop()
            .and_then(|r| r.into_iter().next())
            .and_then(Cell::into_text)
        {
            c.webhook_id = w;
        }
    }
    Ok((rows, batch))
}

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
