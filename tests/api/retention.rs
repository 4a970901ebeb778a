//! Finished notifications are forgotten after `delivery_retention_secs`: a delivered
//! event leaves `$events` and the delivery log; dead-lettered notifications and
//! handshakes stay (an operator can still replay), and numbering goes on.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{spawn_with, Backend, TestApp};
use crate::receiver::{event_numbers, Receiver};
use crate::subscriptions::{
    deliveries, discharged, events_since_start, replay_one, subscribe, subscription, wait_status,
};

/// Long enough for the checks made before anything is pruned, on a slow machine.
const RETENTION_SECS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    if let Some(app) = spawn_with(Backend::Sqlite, |s| {
        s.delivery_retention_secs = RETENTION_SECS
    })
    .await
    {
        finished_notifications_are_forgotten(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    if let Some(app) = spawn_with(Backend::Postgres, |s| {
        s.delivery_retention_secs = RETENTION_SECS
    })
    .await
    {
        finished_notifications_are_forgotten(app).await;
    }
}

async fn events(app: &TestApp, id: &str) -> Vec<i64> {
    let b: Value = app
        .get(&format!("Subscription/{id}/$events?eventsSinceNumber=1"))
        .await
        .json()
        .await
        .unwrap();
    event_numbers(&b)
}

/// (kind, state) of each notification in the delivery log, and its attempts' count.
async fn log(app: &TestApp, id: &str) -> (Vec<(String, String)>, usize) {
    let d = deliveries(app, id).await;
    let mut rows: Vec<(String, String)> = d["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().into(),
                n["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    rows.sort();
    (rows, d["attempts"].as_array().unwrap().len())
}

fn pair(kind: &str, state: &str) -> (String, String) {
    (kind.into(), state.into())
}

async fn finished_notifications_are_forgotten(app: TestApp) {
    let ok = Receiver::start().await;
    let bad = Receiver::start().await;
    let kept = subscribe(
        &app,
        &subscription("encounter-end", &[], &ok.url, "id-only"),
    )
    .await;
    let dead = subscribe(
        &app,
        &subscription("encounter-end", &[], &bad.url, "id-only"),
    )
    .await;
    bad.answer(404, None);
    let started = Instant::now();
    app.create(&discharged("Patient/r1")).await;
    ok.wait("the discharge", |h| {
        h.iter().any(|h| h.kind() == "event-notification")
    })
    .await;
    wait_status(&app, &dead, "error").await;

    // Within the retention: recoverable and logged.
    assert_eq!(events(&app, &kept).await, [1]);
    assert_eq!(
        log(&app, &kept).await,
        (
            vec![
                pair("event-notification", "delivered"),
                pair("handshake", "delivered")
            ],
            2
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(RETENTION_SECS),
        "the checks above ran too late to tell anything"
    );

    // Past it: the delivered event is gone from $events and from the log.
    let until = Instant::now() + Duration::from_secs(RETENTION_SECS + 20);
    while !events(&app, &kept).await.is_empty() {
        assert!(
            Instant::now() < until,
            "the delivered notification was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        log(&app, &kept).await,
        (vec![pair("handshake", "delivered")], 1),
        "the handshake and its attempt are kept"
    );
    assert_eq!(events_since_start(&app, &kept).await, "1");

    // The dead-lettered one is kept, with its attempt, and can still be replayed; the
    // kept handshake makes the subscription active again.
    assert_eq!(
        log(&app, &dead).await,
        (
            vec![
                pair("event-notification", "dead"),
                pair("handshake", "delivered")
            ],
            2
        )
    );
    bad.answer(200, None);
    replay_one(&app, &dead).await;

    // Numbering goes on where it was.
    app.create(&discharged("Patient/r2")).await;
    let hits = ok
        .wait("the second discharge", |h| {
            h.iter()
                .filter(|h| h.kind() == "event-notification")
                .count()
                == 2
        })
        .await;
    let last = hits
        .iter()
        .rfind(|h| h.kind() == "event-notification")
        .unwrap();
    assert_eq!(last.event_numbers(), [2]);
    assert_eq!(events(&app, &kept).await, [2]);
}
