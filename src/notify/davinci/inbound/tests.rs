use serde_json::{json, Value};

use super::*;
use crate::notify::davinci::message_bundle;
use crate::notify::davinci::samples::{ctx, discharge_event, referral_event, BASE};
use crate::topics::catalog::DAVINCI_EVENT_SYSTEM;

fn fixture(name: &str) -> Value {
    let text = match name {
        "discharge" => include_str!("../../../../fixtures/davinci/discharge-notification.json"),
        _ => include_str!("../../../../fixtures/davinci/referral-notification.json"),
    };
    serde_json::from_str(text).unwrap()
}

fn resources_in_order(b: &Value, order: &[&str]) -> Vec<Value> {
    let entries = b["entry"].as_array().unwrap();
    let key = |e: &Value| {
        format!(
            "{}/{}",
            e["resource"]["resourceType"].as_str().unwrap(),
            e["resource"]["id"].as_str().unwrap()
        )
    };
    order
        .iter()
        .map(|k| entries.iter().find(|e| key(e) == *k).unwrap()["resource"].clone())
        .collect()
}

/// The paths of the issues `parse_message` finds.
fn paths(b: &Value) -> Vec<String> {
    let issues = parse_message(b).unwrap_err();
    assert!(issues.iter().all(|i| i.is_error()));
    issues
        .into_iter()
        .map(|i| i.expression.unwrap_or_default())
        .collect()
}

#[test]
fn a_discharge_notification_round_trips() {
    let sent = message_bundle(&ctx("notification-discharge"), &discharge_event()).unwrap();
    for b in [sent, fixture("discharge")] {
        let m = parse_message(&b).unwrap();
        assert_eq!(
            m.message_id,
            b["entry"][0]["resource"]["id"].as_str().unwrap()
        );
        let event = (
            DAVINCI_EVENT_SYSTEM.to_owned(),
            "notification-discharge".to_owned(),
        );
        assert_eq!(m.event, event);
        assert_eq!(m.source_endpoint.as_deref(), Some(BASE));
        assert!(m.skipped.is_empty());
        // Organizations and practitioners, then the Patient, then the Encounter.
        let order = [
            "Organization/riverside",
            "Organization/oakview-snf",
            "Practitioner/dr-okafor",
            "Practitioner/pcp-lee",
            "Patient/p1",
            "Encounter/enc-1",
        ];
        assert_eq!(m.resources, resources_in_order(&b, &order));
        let mut sorted = discharge_event().resources;
        sorted.sort_by_key(|r| {
            order
                .iter()
                .position(|k| r["id"] == k.split('/').nth(1).unwrap())
        });
        assert_eq!(m.resources, sorted); // the bodies of the event, unchanged
    }
}

#[test]
fn a_referral_notification_stores_the_request_before_its_task() {
    let b = fixture("referral");
    let m = parse_message(&b).unwrap();
    assert_eq!(m.event.1, "notification-referral");
    let order = [
        "Organization/heart-clinic",
        "Organization/riverside",
        "Practitioner/dr-okafor",
        "Patient/p1",
        "ServiceRequest/referral-1",
        "Task/task-1",
    ];
    assert_eq!(m.resources, resources_in_order(&b, &order));
    let sent = message_bundle(&ctx("notification-referral"), &referral_event()).unwrap();
    assert_eq!(parse_message(&sent).unwrap().resources, m.resources);
}

#[test]
fn each_problem_is_named_by_its_path() {
    let h = "Bundle.entry[0].resource";
    type Change = fn(&mut Value);
    let cases: [(Change, &[&str]); 14] = [
        (|b| *b = json!([1]), &["Bundle"]),
        (|b| b["resourceType"] = json!("Parameters"), &["Bundle"]),
        (|b| b["type"] = json!("transaction"), &["Bundle.type"]),
        (|b| b["entry"] = json!([]), &["Bundle.entry"]),
        (
            |b| b["entry"].as_array_mut().unwrap().swap(0, 1),
            &["Bundle.entry[0].resource"],
        ),
        (
            |b| b["entry"][2].as_object_mut().unwrap().clear(),
            &["Bundle.entry[2].fullUrl", "Bundle.entry[2].resource"],
        ),
        (
            |b| b["entry"][2]["resource"] = json!({"id": "p1"}),
            &["Bundle.entry[2].resource.resourceType"],
        ),
        (
            |b| b["entry"][2]["resource"]["id"] = json!("no_underscores"),
            &["Bundle.entry[2].resource.id"],
        ),
        (
            |b| b["entry"][3] = b["entry"][2].clone(),
            &["Bundle.entry[3].fullUrl", "Bundle.entry[3].resource.id"],
        ),
        (
            |b| b["entry"][3]["resource"]["resourceType"] = json!("Patient"),
            &["Bundle.entry[3].fullUrl"],
        ),
        (
            |b| b["entry"][0]["resource"]["eventCoding"] = json!({"code": "x"}),
            &["Bundle.entry[0].resource.eventCoding.system"],
        ),
        (
            |b| b["entry"][0]["resource"]["eventCoding"] = json!({"system": "urn:x"}),
            &["Bundle.entry[0].resource.eventCoding.code"],
        ),
        (
            |b| {
                b["entry"][0]["resource"]
                    .as_object_mut()
                    .unwrap()
                    .retain(|k, _| k != "eventCoding" && k != "focus")
            },
            &[
                "Bundle.entry[0].resource.eventCoding",
                "Bundle.entry[0].resource.focus",
            ],
        ),
        (
            |b| {
                b["entry"][0]["resource"]["focus"] =
                    json!([{"reference": "Encounter/enc-9"}, {"display": "x"}])
            },
            &[
                "Bundle.entry[0].resource.focus[0].reference",
                "Bundle.entry[0].resource.focus[1].reference",
            ],
        ),
    ];
    for (change, expected) in cases {
        let mut b = fixture("discharge");
        change(&mut b);
        assert_eq!(paths(&b), *expected, "{b:#}");
    }
    let mut b = fixture("discharge");
    b["entry"][0]["resource"]["eventCoding"] = json!("notification-discharge");
    assert_eq!(paths(&b), [format!("{h}.eventCoding")]);
}

#[test]
fn unsupported_types_are_skipped_and_uuid_references_rewritten() {
    // Written like the IG's examples: urn:uuid fullUrls and references, a Location
    // and a Coverage the gateway does not store.
    let enc = "urn:uuid:5b1c6a0e-2f43-4d8e-9a71-0c3e5d2b8f14";
    let pat = "urn:uuid:8e2d4f60-1a7b-4c39-b5e8-6f0a2c9d3e71";
    let loc = "urn:uuid:c4a9e2b7-6d15-4f08-a3c2-9b7e1d05f6a8";
    let cov = "urn:uuid:0f3b8d25-9c6e-4a17-8b42-e5d1c7a09f36";
    let id = |u: &str| u.trim_start_matches("urn:uuid:").to_owned();
    let b = json!({"resourceType": "Bundle", "id": "m1", "type": "message",
        "timestamp": "2026-11-14T16:31:02Z", "entry": [
        {"fullUrl": "urn:uuid:1d7e3c59-4b2a-4f86-9e0d-a5c8b6f27e13", "resource": {
            "resourceType": "MessageHeader", "id": "1d7e3c59-4b2a-4f86-9e0d-a5c8b6f27e13",
            "eventCoding": {"system": DAVINCI_EVENT_SYSTEM, "code": "notification-admit"},
            "source": {"endpoint": "mllp://hospital.example.org:2575"},
            "focus": [{"reference": enc}]}},
        {"fullUrl": enc, "resource": {"resourceType": "Encounter", "id": id(enc), "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": pat}, "location": [{"location": {"reference": loc}}]}},
        {"fullUrl": pat, "resource": {"resourceType": "Patient", "id": id(pat)}},
        {"fullUrl": loc, "resource": {"resourceType": "Location", "id": id(loc)}},
        {"fullUrl": cov, "resource": {"resourceType": "Coverage", "id": id(cov), "status": "active",
            "beneficiary": {"reference": pat}, "payor": [{"reference": pat}]}},
    ]});
    let m = parse_message(&b).unwrap();
    assert_eq!(m.message_id, "1d7e3c59-4b2a-4f86-9e0d-a5c8b6f27e13");
    assert_eq!(
        m.source_endpoint.as_deref(),
        Some("mllp://hospital.example.org:2575")
    );
    assert_eq!(
        m.skipped,
        [
            format!("Location/{}", id(loc)),
            format!("Coverage/{}", id(cov))
        ]
    );
    let types: Vec<&Value> = m.resources.iter().map(|r| &r["resourceType"]).collect();
    assert_eq!(types, ["Patient", "Encounter"]);
    let encounter = &m.resources[1];
    assert_eq!(
        encounter["subject"]["reference"],
        format!("Patient/{}", id(pat))
    );
    // The Location is not stored: its reference is left as it came.
    assert_eq!(encounter["location"][0]["location"]["reference"], loc);
}

#[test]
fn junk_is_refused_without_panicking() {
    let junk = [
        json!(null),
        json!("Bundle"),
        json!({"resourceType": "Bundle", "type": "message", "entry": "x"}),
        json!({"resourceType": "Bundle", "type": "message", "entry": [null, 1, []]}),
        json!({"resourceType": "Bundle", "type": "message", "entry": [{"fullUrl": 3, "resource": {"resourceType": 1, "id": []}}]}),
        json!({"resourceType": "Bundle", "type": "message", "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "MessageHeader", "id": "h", "eventCoding": [], "focus": {"reference": "x"}}}]}),
        json!({"resourceType": "Bundle", "type": "message", "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "MessageHeader", "id": "h", "eventCoding": {"system": 1, "code": null}, "focus": [{"reference": "urn:uuid:1"}, "x", {"reference": "a/b/_history/"}]}}]}),
    ];
    for b in junk {
        assert!(parse_message(&b).is_err(), "{b}");
    }
}
