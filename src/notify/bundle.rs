//! Notification Bundles as the Subscriptions Backport IG (STU 1.1.0) profiles them for
//! R4. Details follow the IG's R4 examples: the Bundle has an `id`, a `timestamp` and
//! `meta.profile` (no `meta.lastUpdated`); the status Parameters has the `id` of its
//! `urn:uuid:` fullUrl; subscription, focus and additional-context references are
//! absolute (`{base}/Type/id`), equal to the `fullUrl`s of the entries they name (a
//! relative one could not resolve from a `urn:uuid:` entry). `topic` is left out of
//! `empty` notifications (the profile: SHOULD NOT be present). Input that cannot be
//! said in valid R4 is left out rather than sent broken: a focus or context that is
//! not `Type/id` (an R4 type, a valid id), a timestamp that is not an instant, an
//! empty topic or error text.

use std::collections::HashSet;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fhir::{definitions, primitives};

#[cfg(test)]
mod tests;

/// `meta.profile` of a notification Bundle.
pub const NOTIFICATION_PROFILE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";
/// `meta.profile` of the status Parameters.
pub const STATUS_PROFILE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";

/// How much of the resources a notification carries (`backport-payload-content`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    Empty,
    IdOnly,
    FullResource,
}

impl Content {
    pub const ALL: [Self; 3] = [Self::Empty, Self::IdOnly, Self::FullResource];

    /// The content code (`empty`, `id-only`, `full-resource`), exactly as written.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::IdOnly => "id-only",
            Self::FullResource => "full-resource",
        }
    }
}

/// The `type` of a notification (value set `subscription-notification-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationType {
    Handshake,
    Heartbeat,
    EventNotification,
    QueryStatus,
    QueryEvent,
}

impl NotificationType {
    pub const ALL: [Self; 5] = [
        Self::Handshake,
        Self::Heartbeat,
        Self::EventNotification,
        Self::QueryStatus,
        Self::QueryEvent,
    ];

    /// The code (`handshake`, …, `query-event`), exactly as written.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Heartbeat => "heartbeat",
            Self::EventNotification => "event-notification",
            Self::QueryStatus => "query-status",
            Self::QueryEvent => "query-event",
        }
    }

    /// Whether notifications of this type list events (handshakes and heartbeats do not).
    pub fn carries_events(self) -> bool {
        !matches!(self, Self::Handshake | Self::Heartbeat)
    }
}

/// What the status Parameters says about one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionStatus<'a> {
    /// Server id of the Subscription.
    pub subscription_id: &'a str,
    /// The topic's canonical URL.
    pub topic: &'a str,
    /// `requested` | `active` | `error` | `off`.
    pub status: &'a str,
    /// The last event number assigned to this subscription.
    pub events_since_start: i64,
    /// Text for an `error` parameter, if any.
    pub error: Option<&'a str>,
}

/// One event of a notification.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventItem {
    pub number: i64,
    /// FHIR instant.
    pub timestamp: String,
    /// `Type/id`.
    pub focus: Option<String>,
    /// Additional-context references, `Type/id`.
    pub context: Vec<String>,
    /// The current bodies of focus + context (only used for full-resource), in any order.
    pub resources: Vec<Value>,
}

/// The status Parameters (profile backport-subscription-status-r4).
pub fn status_parameters(
    base: &str,
    s: &SubscriptionStatus,
    kind: NotificationType,
    content: Content,
    events: &[EventItem],
) -> Value {
    parameters(trim(base), s, kind, content, events, None)
}

/// A history Bundle (profile backport-subscription-notification-r4): entry[0] the
/// status Parameters (fullUrl `urn:uuid:`, request `GET {base}/Subscription/{id}/$status`,
/// response `200`); then nothing for `empty`, and for `id-only` and `full-resource`
/// one entry per distinct focus or context resource of the events (fullUrl
/// `{base}/{Type}/{id}`, request `PUT Type/id`, response `200`), carrying the
/// resource for `full-resource` when its body is among the events' `resources`.
pub fn notification_bundle(
    base: &str,
    s: &SubscriptionStatus,
    kind: NotificationType,
    content: Content,
    events: &[EventItem],
) -> Value {
    let base = trim(base);
    let events = if kind.carries_events() { events } else { &[] };
    let status_id = Uuid::new_v4().to_string();
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{status_id}"),
        "resource": parameters(base, s, kind, content, events, Some(&status_id)),
        "request": {
            "method": "GET",
            "url": format!("{}/$status", subscription_url(base, s.subscription_id)),
        },
        "response": {"status": "200"},
    })];
    if content != Content::Empty {
        entries.extend(resource_entries(base, content, events));
    }
    json!({
        "resourceType": "Bundle",
        "id": Uuid::new_v4().to_string(),
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": now(),
        "entry": entries,
    })
}

/// `$status` answer: a searchset Bundle of status Parameters (type query-status), one
/// per subscription, each with its topic (the caller reads it over the REST API).
pub fn status_bundle(base: &str, subs: &[SubscriptionStatus]) -> Value {
    let base = trim(base);
    let entries: Vec<Value> = subs
        .iter()
        .map(|s| {
            let id = Uuid::new_v4().to_string();
            let kind = NotificationType::QueryStatus;
            json!({
                "fullUrl": format!("urn:uuid:{id}"),
                "resource": parameters(base, s, kind, Content::FullResource, &[], Some(&id)),
                "search": {"mode": "match"},
            })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": Uuid::new_v4().to_string(),
        "type": "searchset",
        "timestamp": now(),
        "total": subs.len(),
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries); // R4 allows no empty arrays
    }
    bundle
}

fn parameters(
    base: &str,
    s: &SubscriptionStatus,
    kind: NotificationType,
    content: Content,
    events: &[EventItem],
    id: Option<&str>,
) -> Value {
    let reference = json!({"reference": subscription_url(base, s.subscription_id)});
    let mut p = vec![param("subscription", "valueReference", reference)];
    if content != Content::Empty && !s.topic.is_empty() {
        p.push(param("topic", "valueCanonical", s.topic));
    }
    p.push(param("status", "valueCode", s.status));
    p.push(param("type", "valueCode", kind.as_str()));
    let since = s.events_since_start.to_string();
    p.push(param(
        "events-since-subscription-start",
        "valueString",
        since,
    ));
    if kind.carries_events() {
        p.extend(events.iter().map(|e| event(base, e, content)));
    }
    if let Some(text) = s.error.filter(|t| !t.trim().is_empty()) {
        p.push(param(
            "error",
            "valueCodeableConcept",
            json!({"text": text}),
        ));
    }
    let mut v = json!({"resourceType": "Parameters"}); // keys keep insertion order
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v["meta"] = json!({"profile": [STATUS_PROFILE]});
    v["parameter"] = Value::Array(p);
    v
}

/// A `notification-event` parameter; `empty` content names no resources.
fn event(base: &str, e: &EventItem, content: Content) -> Value {
    let mut parts = vec![param("event-number", "valueString", e.number.to_string())];
    let timestamp = json!(e.timestamp);
    if primitives::check("instant", &timestamp).is_ok() {
        parts.push(param("timestamp", "valueInstant", timestamp));
    }
    if content != Content::Empty {
        let focus = e.focus.iter().map(|r| ("focus", r));
        let context = e.context.iter().map(|r| ("additional-context", r));
        for (name, r) in focus.chain(context) {
            if let Some((t, id)) = split_ref(r) {
                let reference = json!({"reference": format!("{base}/{t}/{id}")});
                parts.push(param(name, "valueReference", reference));
            }
        }
    }
    json!({"name": "notification-event", "part": parts})
}

/// One entry per distinct resource the events name, focus first, in event order.
fn resource_entries(base: &str, content: Content, events: &[EventItem]) -> Vec<Value> {
    let mut seen = HashSet::new();
    events
        .iter()
        .flat_map(|e| e.focus.iter().chain(&e.context))
        .filter_map(|r| split_ref(r))
        .filter(|key| seen.insert(*key))
        .map(|(t, id)| {
            let mut entry = json!({"fullUrl": format!("{base}/{t}/{id}")});
            if content == Content::FullResource {
                // The latest event's body, should two events carry different ones.
                let mut bodies = events.iter().rev().flat_map(|e| &e.resources);
                if let Some(body) = bodies.find(|b| is_resource(b, t, id)) {
                    entry["resource"] = body.clone();
                }
            }
            entry["request"] = json!({"method": "PUT", "url": format!("{t}/{id}")});
            entry["response"] = json!({"status": "200"});
            entry
        })
        .collect()
}

fn param(name: &str, value_key: &str, value: impl Into<Value>) -> Value {
    json!({"name": name, (value_key): value.into()})
}

/// `Type/id` split, when the type is an R4 resource type and the id a valid id.
pub(super) fn split_ref(r: &str) -> Option<(&str, &str)> {
    let (t, id) = r.split_once('/')?;
    (definitions::get().is_resource_type(t) && primitives::is_valid_id(id)).then_some((t, id))
}

fn is_resource(body: &Value, t: &str, id: &str) -> bool {
    body.get("resourceType").and_then(Value::as_str) == Some(t)
        && body.get("id").and_then(Value::as_str) == Some(id)
}

fn subscription_url(base: &str, id: &str) -> String {
    format!("{base}/Subscription/{id}")
}

pub(super) fn trim(base: &str) -> &str {
    base.trim_end_matches('/')
}

pub(super) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
