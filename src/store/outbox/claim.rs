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

use super::stmt;
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
/// ([`Tx::skip_locked`]). A head is free when unclaimed, when its lease has run out,
/// or when `gone` (an `OR` term over `o.claimed_by`, [`Tx::gone_claimer`]) finds the
/// process that claimed it no longer there.
pub fn pick_text(in_list: &dyn Fn(&str) -> String, lock: &str, gone: &str) -> String {
    let heads = in_list(
        "SELECT COALESCE( \
           (SELECT min(p.id) FROM outbox p WHERE p.state = 'pending' \
              AND p.event_number IS NOT NULL AND p.subscription_id = s.id), \
           (SELECT min(p.id) FROM outbox p \
              WHERE p.state = 'pending' AND p.subscription_id = s.id)) FROM subscriptions s",
    );
    format!(
        "SELECT o.id FROM outbox o WHERE o.id {heads} \
         AND o.next_attempt <= $1 AND (o.claimed_until IS NULL OR o.claimed_until < $1{gone}) \
         ORDER BY o.id LIMIT $3{lock}"
    )
}

/// Claim up to `limit` due notifications until `lease_until`: only the oldest pending
/// row of each subscription (per-subscriber order), none leased by another worker, each
/// with up to `max_events - 1` further events of its subscription.
///
/// The claim runs in phases, each over all its notifications at once: the heads, their
/// subscriptions, the event rows behind each head, consent for every event, the event
/// numbers, the stamps. Where a statement is a round trip (PostgreSQL) each phase is one
/// statement over a JSON list, so a claim costs the same handful of round trips however
/// many notifications it makes (it cost four per notification, and the claim loop is
/// the delivery worker's serial path); SQLite runs one cached statement per row.
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
    let gone = tx.gone_claimer("o.claimed_by");
    let pick = pick_text(&|s| tx.in_list(s), tx.skip_locked(), &gone);
    let heads = tx
        .fetch_rows(
            &stmt(
                &format!(
                    "UPDATE outbox SET claimed_until = $2, claimed_by = $4 WHERE id IN ({pick}) \
                 RETURNING id, subscription_id, kind, event_seq, event_number, webhook_id, \
                 attempts, batch_head"
                ),
                vec![
                    Bind::Int(now),
                    Bind::Int(lease_until),
                    Bind::Int(limit),
                    Bind::OptInt(tx.claimer()),
                ],
            )
            .replanned(),
        )
        .await?;
    // Returned in no particular order: claimed in id order, as picked.
    let mut heads: Vec<Head> = heads.into_iter().map(Head::from).collect();
    heads.sort_by_key(|h| h.id);
    let mut subs = super::rows::subscriptions(tx, heads.iter().map(|h| h.sub.as_str())).await?;
    let mut out = Vec::with_capacity(heads.len());
    // Event notifications, with their rows, decided once every row is known.
    let mut events = Vec::new();
    for h in heads {
        // Taken, not copied: each head is its subscription's only one in the claim.
        let Some(s) = subs.remove(&h.sub) else {
            continue; // deleted meanwhile; `remove` marks its rows dead
        };
        let batch = h.batch;
        let c = h.claimed(s);
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
        let recipient = spec.and_then(|s| s.recipient);
        events.push((c, batch, cap, recipient));
    }
    let asks: Vec<_> = events
        .iter()
        .map(|(c, stamped, cap, _)| super::rows::Behind {
            sub: c.subscription_id.clone(),
            head: c.outbox_id,
            stamped: *stamped,
            // A stamped batch is taken again exactly; a new one up to its cap.
            limit: match stamped {
                Some(_) => i64::from(MAX_EVENTS) - 1,
                None => i64::from(*cap) - 1,
            },
        })
        .collect();
    let behind = super::rows::behind(tx, &asks).await?;
    let mut batches = Vec::with_capacity(events.len());
    for ((mut c, stamped, _, recipient), behind) in events.into_iter().zip(behind) {
        let (rows, batch) = batch_rows(tx, &mut c, stamped, behind).await?;
        batches.push((c, rows, batch, recipient));
    }
    // Consent again, before every attempt: a revocation since the last attempt stops
    // the disclosure here, event by event; the facts of all the claim's events first.
    let seqs = batches
        .iter()
        .flat_map(|(_, b, _, _)| b.iter().filter_map(|r| r.seq))
        .collect::<Vec<i64>>(); // collected: the borrowing iterator would not be Send
    let mut memo = disclosure::FactsMemo::new();
    disclosure::EventFacts::load_all(tx, &mut memo, seqs).await?;
    let mut notes = Vec::with_capacity(batches.len());
    for (c, batch, batch_id, recipient) in batches {
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
        notes.push(Note {
            c,
            kept,
            batch: batch_id,
        });
    }
    stamp(tx, &mut notes, lease_until, now).await?;
    for Note { mut c, kept, .. } in notes {
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

/// A head row as the claim's `UPDATE ... RETURNING` gave it.
struct Head {
    id: i64,
    sub: String,
    kind: String,
    seq: Option<i64>,
    number: Option<i64>,
    webhook_id: String,
    attempts: i64,
    /// Its batch, when a claim before this one stamped it.
    batch: Option<i64>,
}

impl From<Vec<Cell>> for Head {
    fn from(r: Vec<Cell>) -> Self {
        let mut r = r.into_iter();
        let mut next = || r.next().unwrap_or(Cell::Null);
        Head {
            id: next().int().unwrap_or(0),
            sub: next().into_text().unwrap_or_default(),
            kind: next().into_text().unwrap_or_default(),
            seq: next().int(),
            number: next().int(),
            webhook_id: next().into_text().unwrap_or_default(),
            attempts: next().int().unwrap_or(0),
            batch: next().int(),
        }
    }
}

impl Head {
    fn claimed(self, s: super::rows::Subscription) -> Claimed {
        Claimed {
            outbox_id: self.id,
            subscription_id: self.sub,
            kind: self.kind,
            event_seq: self.seq,
            event_number: self.number,
            webhook_id: self.webhook_id,
            attempts: self.attempts,
            topic: s.topic,
            status: s.status,
            spec: s.spec,
            secret: s.secret,
            events_since_start: s.events_since_start,
            disclosure: None,
            more: Vec::new(),
        }
    }
}

/// An event notification decided: the rows it keeps, and its batch's id.
struct Note {
    c: Claimed,
    kept: Vec<Member>,
    batch: i64,
}

/// Stamp the rows each notification carries with its batch, its lease and, for the
/// events sent for the first time, the subscription's next event numbers (in row
/// order); note the new count in each notification. A notification whose subscription
/// is gone keeps no rows (`remove` marks them dead).
///
/// Numbering here, not when the event is written, keeps event-raising transactions off
/// the subscription's row (its lock, held to their commit, made them queue instead of
/// sharing commits); an event withheld by consent at its claim takes no number, so the
/// numbers a subscriber sees never skip; a batch claimed again keeps its numbers. Two
/// claims never number one subscription at once: the counters' `UPDATE` holds the rows
/// to the commit (and a claim's heads, each its subscription's, are locked by it alone).
/// Rows are stamped by id: without the subscription's lock, event rows commit out of id
/// order on PostgreSQL, and a range would also catch a row that committed after the
/// batch was read, leaving it leased but never sent.
async fn stamp<T: Tx>(
    tx: &mut T,
    notes: &mut [Note],
    lease_until: i64,
    now: i64,
) -> Result<(), StoreError> {
    // Events of each notification sent for the first time: they take new numbers.
    let fresh: Vec<i64> = notes
        .iter()
        .map(|n| n.kept.iter().filter(|m| m.event_number.is_none()).count() as i64)
        .collect();
    let counts: Vec<(String, i64)> = notes
        .iter()
        .zip(&fresh)
        .filter(|(_, k)| **k > 0)
        .map(|(n, k)| (n.c.subscription_id.clone(), *k))
        .collect();
    let ends = super::rows::count_events(tx, &counts, now).await?;
    let mut stamps = Vec::new();
    for (n, &k) in notes.iter_mut().zip(&fresh) {
        let mut next = 0;
        if k > 0 {
            let Some(end) = ends.get(&n.c.subscription_id) else {
                n.kept.clear(); // the subscription is gone
                continue;
            };
            next = end - k;
            n.c.events_since_start = *end;
        }
        for m in n.kept.iter_mut() {
            if m.event_number.is_none() {
                next += 1;
                m.event_number = Some(next);
                if let Some(d) = m.disclosure.as_mut() {
                    d.event_number = Some(next);
                }
            }
            stamps.push(super::rows::Stamp {
                id: m.outbox_id,
                number: m.event_number,
                batch: n.batch,
            });
        }
    }
    super::rows::stamp(tx, &stamps, lease_until).await
}

/// The event rows of the notification `c` heads, first row first, and the batch's id
/// (its first row's), from the rows `behind` its head (see [`super::rows::behind`]). A
/// head already stamped (a retry, or a claim after a crash) takes exactly its batch
/// again; a new one takes the unstamped event rows behind it, up to its cap. [`stamp`]
/// marks them once consent has decided.
async fn batch_rows<T: Tx>(
    tx: &mut T,
    c: &mut Claimed,
    stamped: Option<i64>,
    behind: Vec<Vec<Cell>>,
) -> Result<(Vec<Row>, i64), StoreError> {
    let head = Row {
        id: c.outbox_id,
        seq: c.event_seq,
        number: c.event_number,
    };
    let batch = stamped.unwrap_or(head.id);
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
