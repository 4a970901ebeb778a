//! The domain event log (`GET /api/v1/events`) pages with the cursor it hands out and
//! never skips an event, on PostgreSQL also when transactions commit out of `seq` order.

use std::time::{Duration, Instant};

use reqwest::Method;
use sqlx::Connection;

use crate::helpers::{postgres_url, spawn, Backend, TestApp};
use crate::records::referral_sr;
use crate::test_both;

test_both!(pages_follow_next_and_hand_out_each_event_once);

/// One page from `since`: (its event seqs, its `next`).
async fn page(app: &TestApp, since: &str, limit: usize) -> (Vec<i64>, String) {
    let (status, page) = app
        .api(
            Method::GET,
            &format!("events?since={since}&limit={limit}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let seqs = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    let next = page["next"].as_str().expect("next is a cursor string");
    (seqs, next.to_owned())
}

/// Every event from `since` on, page by page: (event seqs, the last `next`).
async fn read_all(app: &TestApp, since: &str, limit: usize) -> (Vec<i64>, String) {
    let (mut seqs, mut next) = (Vec::new(), since.to_owned());
    loop {
        let (items, cursor) = page(app, &next, limit).await;
        if items.is_empty() {
            assert_eq!(cursor, next, "an empty page leaves the cursor where it was");
            return (seqs, next);
        }
        seqs.extend(items);
        next = cursor;
    }
}

fn sorted_unique(seqs: &[i64]) -> Vec<i64> {
    let mut s = seqs.to_vec();
    s.sort_unstable();
    s.dedup();
    s
}

async fn pages_follow_next_and_hand_out_each_event_once(app: TestApp) {
    for i in 0..5 {
        app.create(&referral_sr(&format!("Patient/log-{i}"))).await;
    }
    let (all, _) = read_all(&app, "0", 500).await;
    let (paged, next) = read_all(&app, "0", 2).await;
    assert!(all.len() >= 5, "{all:?}");
    assert_eq!(paged, all, "pages of 2 give what one page of 500 gives");
    assert_eq!(sorted_unique(&paged), sorted_unique(&all));
    assert_eq!(sorted_unique(&paged).len(), paged.len(), "no event twice");

    // From the last cursor, only what came after it.
    app.create(&referral_sr("Patient/log-late")).await;
    let (later, _) = read_all(&app, &next, 500).await;
    assert!(!later.is_empty());
    assert!(later.iter().all(|s| !all.contains(s)), "{later:?} {all:?}");

    for bad in ["x", "-1", "0:5", "3:"] {
        let (status, p) = app
            .api(Method::GET, &format!("events?since={bad}"), None)
            .await;
        assert_eq!(status, 400, "{bad}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("since must be"),
            "{p}"
        );
    }
}

/// A connection of its own with a transaction left open that has written a domain
/// event about `rid`: (the connection, the event's seq).
async fn event_in_open_transaction(schema: &str, rid: &str) -> (sqlx::PgConnection, i64) {
    let mut other = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
    sqlx::query(&format!("SET search_path TO {schema}"))
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO domain_events (event, record_kind, record_id, rtype, rid, version, \
         patient, at, detail) VALUES ('ReferralRequested', 'referrals', $1, \
         'ServiceRequest', $1, 1, 'Patient/x', 0, '{}') RETURNING seq",
    )
    .bind(rid)
    .fetch_one(&mut other)
    .await
    .unwrap();
    (other, seq)
}

/// Another writer's transaction takes an event number first and commits after a
/// later-numbered event was written: a reader must still get it, first (with a plain
/// `seq > since` read it was handed the later one and skipped this one for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_event_committed_out_of_seq_order_is_not_skipped() {
    let Some(app) = spawn(Backend::Postgres).await else {
        return;
    };
    let schema = app.pg_schema().unwrap().to_owned();
    let (before, start) = read_all(&app, "0", 500).await;
    assert!(before.is_empty(), "{before:?}");

    // A transaction elsewhere writes an event and stays open a moment.
    let (mut other, early) = event_in_open_transaction(&schema, "elsewhere").await;

    // Meanwhile the gateway commits later-numbered events; the other commits after.
    app.create(&referral_sr("Patient/log-after")).await;
    let held = Duration::from_millis(400);
    let committer = tokio::spawn(async move {
        tokio::time::sleep(held).await;
        sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    });
    let t = Instant::now();
    let (seqs, next) = page(&app, &start, 500).await;
    let waited = t.elapsed();
    committer.await.unwrap();
    assert_eq!(
        seqs.first(),
        Some(&early),
        "the earlier transaction's first: {seqs:?}"
    );
    assert!(
        seqs.len() >= 2 && seqs[1..].iter().all(|s| *s > early),
        "{seqs:?}"
    );
    assert!(
        waited >= held - Duration::from_millis(50),
        "it waited: {waited:?}"
    );

    let (after, _) = read_all(&app, &next, 500).await;
    assert!(after.is_empty(), "{after:?}");
    let (everything, _) = read_all(&app, "0", 500).await;
    assert_eq!(everything, seqs);
}

/// A transaction open longer than a read waits (2 s): the page ends before it, handing
/// out nothing committed after it, and the cursor picks it up once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_page_ends_before_a_transaction_still_open() {
    let Some(app) = spawn(Backend::Postgres).await else {
        return;
    };
    let schema = app.pg_schema().unwrap().to_owned();
    let (_, start) = read_all(&app, "0", 500).await;

    let (mut other, early) = event_in_open_transaction(&schema, "still-open").await;
    app.create(&referral_sr("Patient/log-behind")).await;

    let t = Instant::now();
    let (seqs, next) = page(&app, &start, 500).await;
    let waited = t.elapsed();
    assert!(
        seqs.is_empty(),
        "nothing past the open transaction: {seqs:?}"
    );
    assert_eq!(next, start, "the cursor stays before it");
    assert!(
        waited >= Duration::from_millis(1900),
        "it waited: {waited:?}"
    );

    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let (after, _) = read_all(&app, &next, 500).await;
    assert_eq!(after.first(), Some(&early), "{after:?}");
    assert!(
        after.len() >= 2 && after[1..].iter().all(|s| *s > early),
        "{after:?}"
    );
}
