//! Local subscribers for `handoff bench deliveries`, and the bare POST loop that gives
//! the ceiling beside them.
//!
//! Each subscriber is its own actix-web server (one worker thread) on 127.0.0.1. It
//! answers every request 200 at once. Requests to `/notify` are recorded with the
//! time they arrived (after the body was read) and the body, kept as received and
//! parsed after the phase, so the answer costs no JSON work; `/ceiling` requests get
//! the same treatment minus the recording.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

use crate::notify::bundle::{self, Content, EventItem, NotificationType, SubscriptionStatus};

#[derive(Default)]
struct Shared {
    hits: Mutex<Vec<(Instant, web::Bytes)>>,
    /// Events received at `/notify` since the last [`Subscriber::take`] (a notification
    /// may carry several).
    count: AtomicU64,
}

pub struct Subscriber {
    /// The endpoint a Subscription names.
    pub url: String,
    /// Where the ceiling loop posts (answered the same way, not recorded).
    pub ceiling_url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let at = Instant::now();
    if req.path() == "/notify" {
        shared.count.fetch_add(events_in(&body), Ordering::Relaxed);
        if let Ok(mut hits) = shared.hits.lock() {
            hits.push((at, body));
        }
    }
    HttpResponse::Ok().finish()
}

impl Subscriber {
    pub async fn start() -> anyhow::Result<Subscriber> {
        let shared = Arc::new(Shared::default());
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Subscriber {
            url: format!("http://127.0.0.1:{port}/notify"),
            ceiling_url: format!("http://127.0.0.1:{port}/ceiling"),
            shared,
            handle,
        })
    }

    /// Events received since the last `take`.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Everything recorded so far, clearing it (and the count).
    pub fn take(&self) -> Vec<(Instant, web::Bytes)> {
        let mut hits = self
            .shared
            .hits
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        self.shared.count.store(0, Ordering::Relaxed);
        hits.shrink_to_fit();
        hits
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// How many events a notification body carries, without parsing it: one
/// `notification-event` parameter each (the name appears nowhere else).
fn events_in(body: &[u8]) -> u64 {
    const NEEDLE: &[u8] = b"\"notification-event\"";
    body.windows(NEEDLE.len()).filter(|w| *w == NEEDLE).count() as u64
}

/// What a notification says, as far as the bench cares.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// An event notification: per event, the subscription's event number and the
    /// Encounter id its focus names.
    Events(Vec<(i64, String)>),
    /// A handshake or heartbeat.
    Other,
    /// Not a notification Bundle the bench can read.
    Unreadable,
}

/// Read the status Parameters (entry[0]): `type`, then each `notification-event` →
/// `event-number` and `focus` (`…/Encounter/{id}`).
pub fn parse(body: &[u8]) -> Parsed {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Parsed::Unreadable;
    };
    let params = json["entry"][0]["resource"]["parameter"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kind = params
        .iter()
        .find(|p| p["name"] == "type")
        .and_then(|p| p["valueCode"].as_str());
    match kind {
        Some("event-notification") => {}
        Some(_) => return Parsed::Other,
        None => return Parsed::Unreadable,
    }
    let mut events = Vec::new();
    for p in params.iter().filter(|p| p["name"] == "notification-event") {
        let Some(parts) = p["part"].as_array() else {
            return Parsed::Unreadable;
        };
        let part = |name: &str| parts.iter().find(|x| x["name"] == name);
        let number = part("event-number").and_then(|x| x["valueString"].as_str()?.parse().ok());
        let encounter = part("focus")
            .and_then(|x| x["valueReference"]["reference"].as_str())
            .and_then(|r| r.rsplit_once("Encounter/"))
            .map(|(_, id)| id.to_owned());
        match (number, encounter) {
            (Some(number), Some(encounter)) => events.push((number, encounter)),
            _ => return Parsed::Unreadable,
        }
    }
    if events.is_empty() {
        return Parsed::Unreadable;
    }
    Parsed::Events(events)
}

/// An id-only discharge notification as the worker would send it: the ceiling's body.
pub fn sample_notification(base: &str) -> Vec<u8> {
    let id = uuid::Uuid::now_v7().to_string();
    let status = SubscriptionStatus {
        subscription_id: &id,
        topic: "http://handoff.example.org/fhir/SubscriptionTopic/encounter-end",
        status: "active",
        events_since_start: 1234,
        error: None,
    };
    let event = EventItem {
        number: 1234,
        timestamp: "2026-11-23T10:00:00.123456Z".into(),
        focus: Some(format!("Encounter/{}", uuid::Uuid::now_v7())),
        context: vec!["Patient/p123".into()],
        resources: Vec::new(),
    };
    let b = bundle::notification_bundle(
        base,
        &status,
        NotificationType::EventNotification,
        Content::IdOnly,
        &[event],
    );
    serde_json::to_vec(&b).unwrap_or_default()
}

/// The ceiling: `loops` concurrent keep-alive POST loops from one reqwest client,
/// loop `i` to subscriber `i` (as the worker has one request in flight per
/// subscriber), each sending `body` and waiting for the answer. Returns requests
/// answered 2xx per second and the number of failures.
pub async fn ceiling(subs: &[Subscriber], body: Vec<u8>, length: Duration) -> (f64, usize) {
    let client = reqwest::Client::new();
    let body = web::Bytes::from(body);
    let run = |length: Duration| {
        let start = Instant::now();
        let tasks: Vec<_> = subs
            .iter()
            .map(|s| {
                let (client, url, body) = (client.clone(), s.ceiling_url.clone(), body.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0usize, 0usize);
                    while start.elapsed() < length {
                        let r = client
                            .post(&url)
                            .header("Content-Type", "application/fhir+json")
                            .body(body.clone())
                            .send()
                            .await;
                        match r {
                            Ok(resp) if resp.status().is_success() => ok += 1,
                            _ => failed += 1,
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        async move {
            let (mut ok, mut failed) = (0, 0);
            for t in tasks {
                let (o, f) = t.await.unwrap_or((0, 1));
                ok += o;
                failed += f;
            }
            (ok as f64 / start.elapsed().as_secs_f64(), failed)
        }
    };
    run(Duration::from_secs(1)).await; // connections up, caches warm
    run(length).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_event_number_and_focus_of_a_notification() {
        let body = sample_notification("http://127.0.0.1:1/fhir");
        let Parsed::Events(events) = parse(&body) else {
            panic!("not read: {}", String::from_utf8_lossy(&body));
        };
        let [(number, encounter)] = &events[..] else {
            panic!("one event expected: {events:?}");
        };
        assert_eq!(*number, 1234);
        assert_eq!(encounter.len(), 36, "{encounter}");
        assert_eq!(events_in(&body), 1);
        assert_eq!(parse(b"{}"), Parsed::Unreadable);
        assert_eq!(parse(b"not json"), Parsed::Unreadable);
    }

    #[test]
    fn reads_every_event_of_a_notification_of_several() {
        let status = SubscriptionStatus {
            subscription_id: "s1",
            topic: "http://handoff.example.org/fhir/SubscriptionTopic/encounter-end",
            status: "active",
            events_since_start: 3,
            error: None,
        };
        let item = |n: i64| EventItem {
            number: n,
            timestamp: "2026-11-23T10:00:00.123456Z".into(),
            focus: Some(format!("Encounter/e{n}")),
            ..EventItem::default()
        };
        let b = bundle::notification_bundle(
            "http://127.0.0.1:1/fhir",
            &status,
            NotificationType::EventNotification,
            Content::IdOnly,
            &[item(2), item(3)],
        );
        let body = serde_json::to_vec(&b).unwrap();
        assert_eq!(events_in(&body), 2);
        assert_eq!(
            parse(&body),
            Parsed::Events(vec![(2, "e2".into()), (3, "e3".into())])
        );
    }
}
