//! The claim's reads and writes over all its notifications at once.
//!
//! Where each statement is a round trip (PostgreSQL, [`Tx::round_trips`]) every
//! function here is one statement over a JSON list of what it concerns, with each key
//! probed in its index (`= ANY(ARRAY(...))`, or a `LATERAL` subquery per key), never a
//! join the planner could turn into a scan of a table it misjudges. On SQLite, where a
//! statement costs no trip, one cached statement per key.

use std::collections::HashMap;

use serde_json::json;

use super::{stmt, t};
use crate::store::executor::{Cell, Tx};
use crate::store::sql::Bind;
use crate::store::StoreError;

/// A subscription's columns a notification needs.
pub struct Subscription {
    pub topic: String,
    pub status: String,
    pub spec: String,
    pub secret: String,
    pub events_since_start: i64,
}

const SUBSCRIPTION_COLUMNS: &str = "id, topic, status, spec, secret, events_since_start";

/// The subscriptions `ids` that still exist, by id.
pub async fn subscriptions<'a, T: Tx>(
    tx: &mut T,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Subscription>, StoreError> {
    let ids: Vec<&str> = ids.collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut rows = Vec::new();
    if tx.round_trips() {
        let list = json!(ids).to_string();
        rows = tx
            .fetch_rows(&stmt(
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
                     WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))"
                ),
                vec![t(&list)],
            ))
            .await?;
    } else {
        let one = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1");
        for id in ids {
            rows.extend(tx.fetch_rows(&stmt(&one, vec![t(id)])).await?);
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter();
            let mut col = || r.next().unwrap_or(Cell::Null);
            let id = col().into_text().unwrap_or_default();
            let s = Subscription {
                topic: col().into_text().unwrap_or_default(),
                status: col().into_text().unwrap_or_default(),
                spec: col().into_text().unwrap_or_default(),
                secret: col().into_text().unwrap_or_default(),
                events_since_start: col().int().unwrap_or(0),
            };
            (id, s)
        })
        .collect())
}

/// PostgreSQL: for each `{i, sub, head, stamped, lim}` of the list `$1`, the
/// subscription's pending rows after its head (of its stamped batch only, if any), in
/// id order, at most `lim`; each key probed in the outbox's pending index.
pub const BEHIND_LISTED: &str = "SELECT h.i, o.id, o.kind, o.event_seq, o.event_number, o.batch_head \
     FROM jsonb_to_recordset($1::jsonb) AS h(i bigint, sub text, head bigint, stamped bigint, lim bigint) \
     CROSS JOIN LATERAL (SELECT id, kind, event_seq, event_number, batch_head FROM outbox \
       WHERE state = 'pending' AND subscription_id = h.sub AND id > h.head \
         AND (h.stamped IS NULL OR batch_head = h.stamped) \
       ORDER BY id LIMIT h.lim) o \
     ORDER BY h.i, o.id";

/// PostgreSQL: stamp each `{id, n, b}` of the list `$1` with its number and batch, and
/// the lease `$2`; the rows found by key (`= ANY`), then matched with their stamps.
pub const STAMP_LISTED: &str = "UPDATE outbox SET claimed_until = $2, batch_head = s.b, event_number = s.n \
     FROM jsonb_to_recordset($1::jsonb) AS s(id bigint, n bigint, b bigint) \
     WHERE outbox.id = s.id \
       AND outbox.id = ANY(ARRAY(SELECT (e->>'id')::bigint FROM jsonb_array_elements($1::jsonb) e))";

/// The pending rows a notification's head may take along.
pub struct Behind {
    pub sub: String,
    pub head: i64,
    /// The batch the head was stamped with: then only that batch's rows.
    pub stamped: Option<i64>,
    pub limit: i64,
}

/// For each ask, the subscription's pending rows after its head, in id order, at most
/// `limit` (`id, kind, event_seq, event_number, batch_head`).
pub async fn behind<T: Tx>(tx: &mut T, asks: &[Behind]) -> Result<Vec<Vec<Vec<Cell>>>, StoreError> {
    let mut out: Vec<Vec<Vec<Cell>>> = asks.iter().map(|_| Vec::new()).collect();
    if tx.round_trips() {
        let list: Vec<_> = asks
            .iter()
            .enumerate()
            .filter(|(_, a)| a.limit > 0)
            .map(|(i, a)| json!({"i": i, "sub": a.sub, "head": a.head, "stamped": a.stamped, "lim": a.limit}))
            .collect();
        if list.is_empty() {
            return Ok(out);
        }
        let rows = tx
            .fetch_rows(&stmt(
                BEHIND_LISTED,
                vec![t(&serde_json::Value::from(list).to_string())],
            ))
            .await?;
        for mut r in rows {
            let i = r.remove(0).int().and_then(|i| usize::try_from(i).ok());
            if let Some(rows) = i.and_then(|i| out.get_mut(i)) {
                rows.push(r);
            }
        }
        return Ok(out);
    }
    for (a, rows) in asks.iter().zip(out.iter_mut()) {
        if a.limit <= 0 {
            continue;
        }
        *rows = match a.stamped {
            // Exactly the batch's rows: rows that committed after it was put together
            // may lie between them.
            Some(b) => {
                tx.fetch_rows(&stmt(
                    "SELECT id, kind, event_seq, event_number, batch_head FROM outbox \
                     WHERE state = 'pending' AND subscription_id = $1 AND id > $2 AND batch_head = $3 \
                     ORDER BY id LIMIT $4",
                    vec![t(&a.sub), Bind::Int(a.head), Bind::Int(b), Bind::Int(a.limit)],
                ))
                .await?
            }
            None => {
                tx.fetch_rows(&stmt(
                    "SELECT id, kind, event_seq, event_number, batch_head FROM outbox \
                     WHERE state = 'pending' AND subscription_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    vec![t(&a.sub), Bind::Int(a.head), Bind::Int(a.limit)],
                ))
                .await?
            }
        };
    }
    Ok(out)
}

/// Add `k` to each subscription's event counter (`(id, k)`): the counters after, by
/// id, for the subscriptions that still exist. The rows stay locked to the commit.
pub async fn count_events<T: Tx>(
    tx: &mut T,
    counts: &[(String, i64)],
    now: i64,
) -> Result<HashMap<String, i64>, StoreError> {
    if counts.is_empty() {
        return Ok(HashMap::new());
    }
    let mut rows = Vec::new();
    if tx.round_trips() {
        let list: Vec<_> = counts
            .iter()
            .map(|(id, k)| json!({"id": id, "k": k}))
            .collect();
        rows = tx
            .fetch_rows(&stmt(
                "UPDATE subscriptions SET events_since_start = events_since_start + \
                   (SELECT (e->>'k')::bigint FROM jsonb_array_elements($1::jsonb) e \
                    WHERE e->>'id' = subscriptions.id), last_notified = $2 \
                 WHERE id = ANY(ARRAY(SELECT e->>'id' FROM jsonb_array_elements($1::jsonb) e)) \
                 RETURNING id, events_since_start",
                vec![
                    t(&serde_json::Value::from(list).to_string()),
                    Bind::Int(now),
                ],
            ))
            .await?;
    } else {
        for (id, k) in counts {
            rows.extend(
                tx.fetch_rows(&stmt(
                    "UPDATE subscriptions SET events_since_start = events_since_start + $2, last_notified = $3 \
                     WHERE id = $1 RETURNING id, events_since_start",
                    vec![t(id), Bind::Int(*k), Bind::Int(now)],
                ))
                .await?,
            );
        }
    }
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let id = r.next()?.into_text()?;
            Some((id, r.next()?.int()?))
        })
        .collect())
}

/// One outbox row's stamp: its event number and its batch.
pub struct Stamp {
    pub id: i64,
    pub number: Option<i64>,
    pub batch: i64,
}

/// Stamp rows with their batch, their number and the lease. On PostgreSQL the update is
/// planned at each run (`replanned`), by key whatever the outbox's size.
pub async fn stamp<T: Tx>(
    tx: &mut T,
    stamps: &[Stamp],
    lease_until: i64,
) -> Result<(), StoreError> {
    if stamps.is_empty() {
        return Ok(());
    }
    if tx.round_trips() {
        let list: Vec<_> = stamps
            .iter()
            .map(|s| json!({"id": s.id, "n": s.number, "b": s.batch}))
            .collect();
        tx.exec(
            &stmt(
                STAMP_LISTED,
                vec![
                    t(&serde_json::Value::from(list).to_string()),
                    Bind::Int(lease_until),
                ],
            )
            .replanned(),
        )
        .await?;
        return Ok(());
    }
    for s in stamps {
        tx.exec(&stmt(
            "UPDATE outbox SET batch_head = $2, claimed_until = $3, event_number = $4 WHERE id = $1",
            vec![
                Bind::Int(s.id),
                Bind::Int(s.batch),
                Bind::Int(lease_until),
                Bind::OptInt(s.number),
            ],
        ))
        .await?;
    }
    Ok(())
}
