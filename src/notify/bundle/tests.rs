use serde_json::{json, Value};

use super::*;
use crate::fhir::validate::validate;
use Content as C;
use NotificationType as T;

const BASE: &str = "https://gw.example.org/fhir";

fn status(status: &'static str) -> SubscriptionStatus<'static> {
    SubscriptionStatus {
        subscription_id: "sub-1",
        topic: "http://example.org/topics/discharge",
        status,
        events_since_start: 3,
        error: None,
    }
}

fn encounter(id: &str) -> Value {
    json!({"resourceType": "Encounter", "id": id, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"}})
}

fn events() -> Vec<EventItem> {
    vec![
        EventItem {
            number: 2,
            timestamp: "2026-11-20T10:00:00.123Z".into(),
            focus: Some("Encounter/e1".into()),
            context: vec!["Patient/p1".into()],
            resources: vec![
                json!({"resourceType": "Patient", "id": "p1"}),
                encounter("e1"),
            ],
        },
        EventItem {
            number: 3,
            timestamp: "2026-11-20T10:05:00+01:00".into(),
            focus: Some("Encounter/e2".into()),
            context: vec!["Patient/p1".into()],
            resources: vec![encounter("e2")], // Patient/p1's body only came with event 2
        },
    ]
}

/// A notification for the active `sub-1` at event 3.
fn bundle(kind: NotificationType, content: Content, events: &[EventItem]) -> Value {
    notification_bundle(BASE, &status("active"), kind, content, events)
}

fn assert_valid(v: &Value) {
    let errors: Vec<_> = validate(v).into_iter().filter(|i| i.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{v:#}");
}

/// The parameters named `name` of a Parameters resource (or of a parameter's parts).
fn named<'a>(list: &'a Value, name: &str) -> Vec<&'a Value> {
    list.as_array()
        .map(|a| a.iter().filter(|p| p["name"] == name).collect())
        .unwrap_or_default()
}

/// The Bundle with its generated ids and timestamp set to those of the fixture.
fn with_fixture_ids(mut b: Value) -> Value {
    let status_id = "5d2c9f1e-8a47-4b6e-b1d3-6c0e2a9f4b21";
    b["id"] = json!("0b6a8e57-3f0e-4c57-9a5c-2f4e1d9b7a10");
    b["timestamp"] = json!("2026-11-20T10:05:01.000Z");
    b["entry"][0]["fullUrl"] = json!(format!("urn:uuid:{status_id}"));
    b["entry"][0]["resource"]["id"] = json!(status_id);
    b
}

#[test]
fn every_type_and_content_is_valid_r4_and_shaped_as_the_profile_says() {
    for kind in T::ALL {
        for content in C::ALL {
            let b = bundle(kind, content, &events());
            assert_valid(&b);
            assert_eq!(b["type"], "history");
            assert_eq!(b["meta"]["profile"], json!([NOTIFICATION_PROFILE]));
            assert!(b["id"].is_string() && b["timestamp"].is_string());
            let first = &b["entry"][0];
            let params = &first["resource"];
            assert_eq!(params["resourceType"], "Parameters");
            assert_eq!(params["meta"]["profile"], json!([STATUS_PROFILE]));
            assert_eq!(
                first["fullUrl"],
                format!("urn:uuid:{}", params["id"].as_str().unwrap())
            );
            assert_eq!(first["request"]["method"], "GET");
            assert_eq!(
                first["request"]["url"],
                format!("{BASE}/Subscription/sub-1/$status")
            );
            assert_eq!(first["response"]["status"], "200");
            let p = &params["parameter"];
            assert_eq!(
                named(p, "subscription")[0]["valueReference"]["reference"],
                format!("{BASE}/Subscription/sub-1")
            );
            assert_eq!(named(p, "type")[0]["valueCode"], kind.as_str());
            assert_eq!(named(p, "status")[0]["valueCode"], "active");
            assert_eq!(
                named(p, "events-since-subscription-start")[0]["valueString"],
                "3"
            );
            assert_eq!(named(p, "topic").len(), usize::from(content != C::Empty));
            let expected_events = if kind.carries_events() { 2 } else { 0 };
            assert_eq!(
                named(p, "notification-event").len(),
                expected_events,
                "{kind:?}"
            );
            let extra = b["entry"].as_array().unwrap().len() - 1;
            // Three distinct resources: Encounter/e1, Patient/p1 (in both events), Encounter/e2.
            let expected_extra = if content == C::Empty || !kind.carries_events() {
                0
            } else {
                3
            };
            assert_eq!(extra, expected_extra, "{kind:?} {content:?}");
        }
    }
}

#[test]
fn id_only_names_each_resource_once_without_bodies() {
    // Written by hand from the IG's R4 id-only and multi-resource examples.
    let fixture = include_str!("../../../fixtures/notifications/id-only.json");
    let expected: Value = serde_json::from_str(fixture).unwrap();
    assert_valid(&expected);
    let b = bundle(T::EventNotification, C::IdOnly, &events());
    // As text, so that the order of elements is compared too.
    assert_eq!(with_fixture_ids(b).to_string(), expected.to_string());
}

#[test]
fn full_resource_carries_each_body_found_in_any_event() {
    let b = bundle(T::QueryEvent, C::FullResource, &events());
    let entries = b["entry"].as_array().unwrap();
    let urls: Vec<&str> = entries[1..]
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            format!("{BASE}/Encounter/e1"),
            format!("{BASE}/Patient/p1"),
            format!("{BASE}/Encounter/e2"),
        ]
    );
    assert_eq!(entries[1]["resource"], encounter("e1"));
    assert_eq!(entries[2]["resource"]["resourceType"], "Patient");
    assert_eq!(entries[3]["resource"], encounter("e2"));
    assert!(entries[1..]
        .iter()
        .all(|e| e["request"]["method"] == "PUT" && e["response"]["status"] == "200"));
}

#[test]
fn full_resource_without_a_body_keeps_the_entry_with_request_and_response() {
    let mut ev = events();
    ev[0].resources.clear();
    ev[1].resources.clear();
    let b = bundle(T::EventNotification, C::FullResource, &ev);
    assert_valid(&b);
    let entry = &b["entry"][1];
    assert!(entry.get("resource").is_none());
    assert_eq!(entry["request"]["url"], "Encounter/e1");
}

#[test]
fn empty_content_names_no_resource_and_no_topic() {
    let b = bundle(T::EventNotification, C::Empty, &events());
    assert_eq!(b["entry"].as_array().unwrap().len(), 1);
    let text = b.to_string();
    assert!(
        !text.contains("Encounter")
            && !text.contains("Patient")
            && !text.contains("topics/discharge")
    );
    let p = &b["entry"][0]["resource"]["parameter"];
    let ev = named(p, "notification-event");
    assert_eq!(ev.len(), 2);
    assert_eq!(named(&ev[0]["part"], "event-number")[0]["valueString"], "2");
    assert_eq!(named(&ev[0]["part"], "timestamp").len(), 1);
}

#[test]
fn handshake_and_heartbeat_ignore_events() {
    for kind in [T::Handshake, T::Heartbeat] {
        let b = bundle(kind, C::FullResource, &events());
        assert_eq!(b["entry"].as_array().unwrap().len(), 1);
        assert!(!b.to_string().contains("notification-event"));
    }
}

#[test]
fn input_that_is_not_valid_r4_is_left_out() {
    let ev = vec![EventItem {
        number: 7,
        timestamp: "yesterday".into(),
        focus: Some("not a reference".into()),
        context: vec![
            "Nonsense/1".into(),
            "Patient/bad id".into(),
            "Patient/ok".into(),
            "/".into(),
        ],
        resources: vec![json!("not an object"), json!(null)],
    }];
    let mut s = status("error");
    s.topic = "";
    s.error = Some("  ");
    for content in C::ALL {
        let b = notification_bundle(BASE, &s, T::EventNotification, content, &ev);
        assert_valid(&b);
        let p = &b["entry"][0]["resource"]["parameter"];
        assert!(named(p, "topic").is_empty() && named(p, "error").is_empty());
        let parts = &named(p, "notification-event")[0]["part"];
        assert!(named(parts, "timestamp").is_empty() && named(parts, "focus").is_empty());
        let context = named(parts, "additional-context");
        assert_eq!(context.len(), usize::from(content != C::Empty));
        let extra = b["entry"].as_array().unwrap().len() - 1;
        assert_eq!(extra, usize::from(content != C::Empty));
    }
}

#[test]
fn error_text_becomes_a_codeable_concept() {
    let mut s = status("error");
    s.error = Some("The endpoint answered 503 five times");
    let p = status_parameters(BASE, &s, T::QueryStatus, C::IdOnly, &[]);
    assert_valid(&p);
    assert!(p.get("id").is_none());
    assert_eq!(
        named(&p["parameter"], "error")[0]["valueCodeableConcept"],
        json!({"text": "The endpoint answered 503 five times"})
    );
}

#[test]
fn a_trailing_slash_on_the_base_is_not_doubled() {
    let s = status("active");
    let b = notification_bundle(&format!("{BASE}/"), &s, T::Heartbeat, C::Empty, &[]);
    assert_eq!(
        b["entry"][0]["request"]["url"],
        format!("{BASE}/Subscription/sub-1/$status")
    );
}

#[test]
fn status_bundle_is_a_searchset_of_query_status_parameters() {
    let subs = [
        status("active"),
        SubscriptionStatus {
            subscription_id: "sub-2",
            ..status("off")
        },
    ];
    let b = status_bundle(BASE, &subs);
    assert_valid(&b);
    assert_eq!(b["type"], "searchset");
    assert_eq!(b["total"], 2);
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (e, (id, st)) in entries.iter().zip([("sub-1", "active"), ("sub-2", "off")]) {
        assert_eq!(e["search"]["mode"], "match");
        assert_eq!(
            e["fullUrl"],
            format!("urn:uuid:{}", e["resource"]["id"].as_str().unwrap())
        );
        let p = &e["resource"]["parameter"];
        assert_eq!(named(p, "type")[0]["valueCode"], "query-status");
        assert_eq!(named(p, "status")[0]["valueCode"], st);
        assert_eq!(named(p, "topic").len(), 1);
        let reference = &named(p, "subscription")[0]["valueReference"]["reference"];
        assert_eq!(reference, &json!(format!("{BASE}/Subscription/{id}")));
    }
    let none = status_bundle(BASE, &[]);
    assert_valid(&none);
    assert_eq!(none["total"], 0);
    assert!(none.get("entry").is_none());
}

#[test]
fn codes_round_trip() {
    for c in C::ALL {
        assert_eq!(C::parse(c.as_str()), Some(c));
    }
    for t in T::ALL {
        assert_eq!(T::parse(t.as_str()), Some(t));
    }
    assert_eq!(C::parse("Full-Resource"), None);
    assert_eq!(T::QueryEvent.as_str(), "query-event");
    assert_eq!(T::parse(""), None);
}
