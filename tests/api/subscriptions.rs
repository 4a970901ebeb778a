//! Subscriptions end to end, with a real local receiver: handshake, event
//! notifications at each content level, filters, signatures, retries with the same
//! webhook id, Retry-After, dead letter, order through an outage, `$status`,
//! `$events`, and refusal of bad subscriptions and private endpoints.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{spawn_with, Backend, TestApp};
use crate::receiver::{param, Receiver};
use crate::records::encounter;
use crate::test_both;

test_both!(
    a_discharge_reaches_the_subscribed_pcp,
    content_levels_empty_and_full_resource,
    failures_are_retried_with_the_same_webhook_id,
    a_4xx_dead_letters_and_errors_the_subscription,
    a_failed_handshake_errors_the_subscription,
    order_is_kept_through_an_outage,
    bad_subscriptions_are_refused,
    heartbeats_come_on_schedule,
    switching_off_stops_notifications,
    topics_are_published_read_only,
);

const SECRET: &str = "test-secret-for-signing-0123456789";
const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
const TOPIC: &str = "http://handoff.example.org/fhir/SubscriptionTopic/";

pub fn subscription(topic: &str, filters: &[&str], endpoint: &str, content: &str) -> Value {
    let mut s = json!({"resourceType": "Subscription", "status": "requested",
        "reason": "follow my patients", "criteria": format!("{TOPIC}{topic}"),
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
            "extension": [{"url": "http://handoff.example.org/fhir/StructureDefinition/webhook-secret", "valueString": SECRET}],
            "_payload": {"extension": [{"url": format!("{BACKPORT}backport-payload-content"), "valueCode": content}]}}});
    if !filters.is_empty() {
        s["_criteria"] = json!({"extension": filters.iter().map(|f| json!({
            "url": format!("{BACKPORT}backport-filter-criteria"), "valueString": f})).collect::<Vec<_>>()});
    }
    s
}

/// Create a subscription and wait until the handshake has made it active.
pub async fn subscribe(app: &TestApp, body: &Value) -> String {
    let created = app.create(body).await;
    assert_eq!(created["status"], "requested");
    assert!(
        !created.to_string().contains("webhook-secret"),
        "the secret is not stored: {created}"
    );
    assert!(
        !created.to_string().contains(SECRET),
        "the secret is not stored: {created}"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    wait_status(app, &id, "active").await;
    id
}

pub async fn wait_status(app: &TestApp, id: &str, want: &str) -> Value {
    let start = Instant::now();
    loop {
        let s: Value = app
            .get(&format!("Subscription/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if s["status"] == want {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Subscription/{id} never became {want}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `events-since-subscription-start` as the subscription's `$status` reports it.
pub async fn events_since_start(app: &TestApp, id: &str) -> String {
    let st = app.search(&format!("Subscription/{id}/$status")).await;
    param(
        &st["entry"][0]["resource"],
        "events-since-subscription-start",
    )
}

/// A subscription's delivery log (`/api/v1/subscriptions/{id}/deliveries`).
pub async fn deliveries(app: &TestApp, id: &str) -> Value {
    let (status, d) = app
        .api(
            reqwest::Method::GET,
            &format!("subscriptions/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{d}");
    d
}

/// Replay a subscription's one dead notification; it is active again.
pub async fn replay_one(app: &TestApp, id: &str) {
    let (status, r) = app
        .api(
            reqwest::Method::POST,
            &format!("subscriptions/{id}/replay"),
            None,
        )
        .await;
    assert_eq!((status, r["requeued"].as_u64()), (200, Some(1)), "{r}");
    wait_status(app, id, "active").await;
}

pub fn discharged(patient: &str) -> Value {
    let mut e = encounter("finished", "Location/ward-1");
    e["subject"]["reference"] = json!(patient);
    e["period"]["end"] = json!("2026-11-23T10:00:00Z");
    e
}

async fn a_discharge_reaches_the_subscribed_pcp(app: TestApp) {
    let rx = Receiver::start().await;
    let sub = subscription(
        "encounter-end",
        &["Encounter?patient=Patient/p1"],
        &rx.url,
        "id-only",
    );
    let id = subscribe(&app, &sub).await;
    let hs = rx.wait("the handshake", |h| !h.is_empty()).await;
    assert_eq!(hs[0].kind(), "handshake");
    assert_eq!(hs[0].json["type"], "history");

    let other = app.create(&discharged("Patient/someone-else")).await;
    let enc = app.create(&discharged("Patient/p1")).await;
    let hits = rx
        .wait("the discharge notification", |h| h.len() >= 2)
        .await;
    let n = &hits[1];
    assert_eq!(n.kind(), "event-notification");
    assert_eq!(n.event_numbers(), [1]);
    let status = &n.json["entry"][0]["resource"];
    assert_eq!(param(status, "topic"), format!("{TOPIC}encounter-end"));
    assert_eq!(param(status, "events-since-subscription-start"), "1");
    let text = n.json.to_string();
    assert!(
        text.contains(&format!("Encounter/{}", enc["id"].as_str().unwrap())),
        "{text}"
    );
    assert!(
        !text.contains(other["id"].as_str().unwrap()),
        "the other patient's discharge leaked: {text}"
    );
    // id-only: entries name the resources but carry none.
    assert!(n.json["entry"].as_array().unwrap()[1..]
        .iter()
        .all(|e| e.get("resource").is_none()));

    // Signed: the receiver can verify it, and a tampered body fails.
    let secret =
        handoff::notify::sign::decode_secret(SECRET).unwrap_or_else(|| SECRET.as_bytes().to_vec());
    let (wid, ts, sig) = (
        n.header("webhook-id").unwrap(),
        n.header("webhook-timestamp")
            .unwrap()
            .parse::<i64>()
            .unwrap(),
        n.header("webhook-signature").unwrap(),
    );
    let now = ts;
    assert!(handoff::notify::sign::verify(&secret, wid, ts, &n.body, sig, now, 300).is_ok());
    assert!(handoff::notify::sign::verify(&secret, wid, ts, b"{}", sig, now, 300).is_err());

    // $status and $events let the subscriber check and recover.
    let st = app.search(&format!("Subscription/{id}/$status")).await;
    let p = &st["entry"][0]["resource"];
    assert_eq!(param(p, "status"), "active");
    assert_eq!(param(p, "events-since-subscription-start"), "1");
    let ev = app
        .search(&format!(
            "Subscription/{id}/$events?eventsSinceNumber=1&content=full-resource"
        ))
        .await;
    assert_eq!(ev["type"], "history");
    assert_eq!(param(&ev["entry"][0]["resource"], "type"), "query-event");
    assert!(
        ev.to_string().contains("\"resourceType\":\"Encounter\""),
        "{ev}"
    );
    let none = app
        .search(&format!("Subscription/{id}/$events?eventsSinceNumber=2"))
        .await;
    assert!(!none.to_string().contains("notification-event"), "{none}");
}

async fn content_levels_empty_and_full_resource(app: TestApp) {
    let (rx_empty, rx_full, rx_xml) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    subscribe(
        &app,
        &subscription("encounter-end", &[], &rx_empty.url, "empty"),
    )
    .await;
    subscribe(
        &app,
        &subscription("encounter-end", &[], &rx_full.url, "full-resource"),
    )
    .await;
    let mut xml = subscription("encounter-end", &[], &rx_xml.url, "full-resource");
    xml["channel"]["payload"] = json!("application/fhir+xml");
    subscribe(&app, &xml).await;
    let enc = app.create(&discharged("Patient/p2")).await;
    let empty = rx_empty.wait("empty", |h| h.len() >= 2).await;
    assert_eq!(
        empty[1].json["entry"].as_array().unwrap().len(),
        1,
        "{}",
        empty[1].json
    );
    assert!(!empty[1]
        .json
        .to_string()
        .contains(enc["id"].as_str().unwrap()));
    let full = rx_full.wait("full", |h| h.len() >= 2).await;
    let entries = full[1].json["entry"].as_array().unwrap();
    let enc_entry = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Encounter")
        .expect("the Encounter travels");
    assert_eq!(enc_entry["resource"]["id"], enc["id"]);
    assert_eq!(
        enc_entry["resource"]["period"]["end"],
        "2026-11-23T10:00:00Z"
    );
    // The payload type asked for: XML, signed over the XML bytes.
    let x = rx_xml.wait("xml", |h| h.len() >= 2).await;
    assert!(x[1]
        .header("content-type")
        .unwrap()
        .starts_with("application/fhir+xml"));
    let text = String::from_utf8(x[1].body.clone()).unwrap();
    assert!(
        text.contains("<Bundle") && text.contains("<Encounter"),
        "{text}"
    );
    let secret =
        handoff::notify::sign::decode_secret(SECRET).unwrap_or_else(|| SECRET.as_bytes().to_vec());
    let ts: i64 = x[1].header("webhook-timestamp").unwrap().parse().unwrap();
    let (wid, sig) = (
        x[1].header("webhook-id").unwrap(),
        x[1].header("webhook-signature").unwrap(),
    );
    assert!(handoff::notify::sign::verify(&secret, wid, ts, &x[1].body, sig, ts, 300).is_ok());
}

async fn failures_are_retried_with_the_same_webhook_id(app: TestApp) {
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &subscription("encounter-end", &[], &rx.url, "id-only"),
    )
    .await;
    // The first answer asks for a second's pause, the next is a plain 500.
    rx.answer(503, Some("1"));
    app.create(&discharged("Patient/p3")).await;
    rx.wait("a failed attempt", |h| h.iter().any(|h| h.answered == 503))
        .await;
    rx.answer(500, None);
    let hits = rx
        .wait("a second failed attempt", |h| {
            h.iter().any(|h| h.answered == 500)
        })
        .await;
    let paused = hits[2].at - hits[1].at;
    assert!(
        paused >= Duration::from_millis(750),
        "Retry-After: 1 honoured (±20%): {paused:?}"
    );
    rx.answer(200, None);
    let hits = rx
        .wait("the delivery", |h| {
            h.iter()
                .any(|h| h.kind() == "event-notification" && h.answered == 200)
        })
        .await;
    let attempts: Vec<_> = hits
        .iter()
        .filter(|h| h.kind() == "event-notification")
        .collect();
    let first = attempts[0].header("webhook-id").unwrap();
    assert!(
        attempts
            .iter()
            .all(|h| h.header("webhook-id") == Some(first)),
        "same webhook id on every retry"
    );
    // Delivered once it succeeded: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.delivered_events().len(), 1);
}

async fn a_4xx_dead_letters_and_errors_the_subscription(app: TestApp) {
    let rx = Receiver::start().await;
    let id = subscribe(
        &app,
        &subscription("encounter-end", &[], &rx.url, "id-only"),
    )
    .await;
    rx.answer(404, None);
    app.create(&discharged("Patient/p4")).await;
    let s = wait_status(&app, &id, "error").await;
    assert!(s["error"].as_str().unwrap().contains("HTTP 404"), "{s}");
    // Not retried.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        rx.hits()
            .iter()
            .filter(|h| h.kind() == "event-notification")
            .count(),
        1
    );
    let st = app.search(&format!("Subscription/{id}/$status")).await;
    assert_eq!(param(&st["entry"][0]["resource"], "status"), "error");

    // Visible to an operator, who fixes the receiver and replays.
    let d = deliveries(&app, &id).await;
    let dead = &d["notifications"][0];
    assert_eq!(
        (dead["kind"].as_str(), dead["state"].as_str()),
        (Some("event-notification"), Some("dead"))
    );
    assert_eq!(dead["last_http_status"], 404);
    assert_eq!(d["attempts"][0]["http_status"], 404);
    assert_eq!(
        d["attempts"].as_array().unwrap().len(),
        2,
        "the handshake's and the event's: {d}"
    );
    rx.answer(200, None);
    replay_one(&app, &id).await;
    let hits = rx
        .wait("the replayed delivery", |h| {
            h.iter()
                .any(|h| h.kind() == "event-notification" && h.answered == 200)
        })
        .await;
    let tries: Vec<_> = hits
        .iter()
        .filter(|h| h.kind() == "event-notification")
        .collect();
    assert_eq!(
        tries[0].header("webhook-id"),
        tries[1].header("webhook-id"),
        "a replay keeps the webhook id"
    );
    let (status, _) = app
        .api(reqwest::Method::GET, "subscriptions/nope/deliveries", None)
        .await;
    assert_eq!(status, 404);
}

async fn a_failed_handshake_errors_the_subscription(app: TestApp) {
    let rx = Receiver::start().await;
    rx.answer(500, None);
    let created = app
        .create(&subscription("encounter-end", &[], &rx.url, "id-only"))
        .await;
    let s = wait_status(&app, created["id"].as_str().unwrap(), "error").await;
    assert!(s["error"].as_str().unwrap().contains("handshake"), "{s}");
    // An errored subscription gets no events.
    app.create(&discharged("Patient/p5")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 1);
}

async fn order_is_kept_through_an_outage(app: TestApp) {
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &subscription("encounter-start", &[], &rx.url, "id-only"),
    )
    .await;
    rx.answer(503, None);
    for i in 0..5 {
        let mut e = encounter("in-progress", "Location/ward-1");
        e["subject"]["reference"] = json!(format!("Patient/o{i}"));
        app.create(&e).await;
    }
    rx.wait("a failed attempt", |h| h.iter().any(|h| h.answered == 503))
        .await;
    rx.answer(200, None);
    // Event 1 was being retried alone; the four behind it may share a notification.
    rx.wait("all five", |h| {
        h.iter()
            .filter(|h| h.kind() == "event-notification" && h.answered == 200)
            .flat_map(|h| h.event_numbers())
            .count()
            >= 5
    })
    .await;
    let numbers: Vec<i64> = rx
        .delivered_events()
        .iter()
        .flat_map(|h| h.event_numbers())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
}

async fn heartbeats_come_on_schedule(app: TestApp) {
    let rx = Receiver::start().await;
    let mut sub = subscription("encounter-end", &[], &rx.url, "id-only");
    sub["channel"]["extension"].as_array_mut().unwrap().push(
        json!({"url": format!("{BACKPORT}backport-heartbeat-period"), "valueUnsignedInt": 1}),
    );
    let id = subscribe(&app, &sub).await;
    let hits = rx
        .wait("two heartbeats", |h| {
            h.iter().filter(|h| h.kind() == "heartbeat").count() >= 2
        })
        .await;
    let beats: Vec<_> = hits.iter().filter(|h| h.kind() == "heartbeat").collect();
    let gap = beats[1].at - beats[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "heartbeats every second, not faster: {gap:?}"
    );
    let status = &beats[0].json["entry"][0]["resource"];
    assert_eq!(param(status, "status"), "active");
    assert_eq!(param(status, "events-since-subscription-start"), "0");
    assert_eq!(
        beats[0].json["entry"].as_array().unwrap().len(),
        1,
        "a heartbeat carries no event"
    );
    // An event notification resets the clock; heartbeats do not advance the counter.
    app.create(&discharged("Patient/hb")).await;
    let hits = rx
        .wait("the event", |h| {
            h.iter().any(|h| h.kind() == "event-notification")
        })
        .await;
    assert_eq!(
        hits.iter()
            .find(|h| h.kind() == "event-notification")
            .unwrap()
            .event_numbers(),
        [1]
    );
    assert_eq!(events_since_start(&app, &id).await, "1");
}

async fn switching_off_stops_notifications(app: TestApp) {
    let rx = Receiver::start().await;
    let id = subscribe(
        &app,
        &subscription("encounter-end", &[], &rx.url, "id-only"),
    )
    .await;
    let mut current: Value = app
        .get(&format!("Subscription/{id}"))
        .await
        .json()
        .await
        .unwrap();
    current["status"] = json!("off");
    current["channel"]["extension"] = json!([{"url": "http://handoff.example.org/fhir/StructureDefinition/webhook-secret", "valueString": SECRET}]);
    let r = app.put_json(&format!("Subscription/{id}"), &current).await;
    assert_eq!(r.status(), 200);
    wait_status(&app, &id, "off").await;
    app.create(&discharged("Patient/off")).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        rx.hits().iter().all(|h| h.kind() == "handshake"),
        "nothing after switching off"
    );
    let st = app.search(&format!("Subscription/{id}/$status")).await;
    assert_eq!(param(&st["entry"][0]["resource"], "status"), "off");
}

async fn bad_subscriptions_are_refused(app: TestApp) {
    let rx = Receiver::start().await;
    let cases = [
        (
            subscription("no-such-topic", &[], &rx.url, "id-only"),
            "Subscription.criteria",
        ),
        (
            subscription(
                "encounter-end",
                &["Encounter?colour=red"],
                &rx.url,
                "id-only",
            ),
            "Subscription._criteria.extension[0].valueString",
        ),
    ];
    for (body, path) in cases {
        let r = app.post_json("Subscription", &body).await;
        let status = r.status();
        let oo: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{oo}");
        assert!(oo.to_string().contains(path), "{path} not named: {oo}");
    }
    let mut no_secret = subscription("encounter-end", &[], &rx.url, "id-only");
    no_secret["channel"]
        .as_object_mut()
        .unwrap()
        .remove("extension");
    let r = app.post_json("Subscription", &no_secret).await;
    assert_eq!(r.status(), 422);
    assert_eq!(app.count("Subscription").await, 0);
    assert!(rx.hits().is_empty());
}

async fn topics_are_published_read_only(app: TestApp) {
    let topics = app.search("Basic?code=SubscriptionTopic").await;
    let text = topics.to_string();
    for t in [
        "encounter-start",
        "encounter-transfer",
        "encounter-end",
        "referral-request",
        "referral-status",
        "careplan-change",
    ] {
        assert!(text.contains(&format!("{TOPIC}{t}")), "{t} missing");
    }
    let r = app
        .post_json(
            "Basic",
            &json!({"resourceType": "Basic", "code": {"text": "x"}}),
        )
        .await;
    assert_eq!(r.status(), 405);
    let meta: Value = app.get("metadata").await.json().await.unwrap();
    assert!(
        meta.to_string().contains("subscriptiontopic-canonical"),
        "topics advertised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_endpoints_are_refused_unless_allowed() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_with(backend, |s| s.allow_private_subscribers = false).await else {
            continue; // PostgreSQL unreachable outside CI (helpers says so)
        };
        let rx = Receiver::start().await;
        let r = app
            .post_json(
                "Subscription",
                &subscription("encounter-end", &[], &rx.url, "id-only"),
            )
            .await;
        assert_eq!(r.status(), 422, "{backend:?}");
        let oo: Value = r.json().await.unwrap();
        assert_eq!(
            oo["issue"][0]["expression"][0],
            "Subscription.channel.endpoint"
        );
        assert!(
            oo["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("refused"),
            "{oo}"
        );
        assert_eq!(app.count("Subscription").await, 0);
        assert!(rx.hits().is_empty());
    }
}
