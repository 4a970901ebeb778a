use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::fhir::validate::validate;

pub(super) const DISCHARGE: &str =
    "http://handoff.example.org/fhir/SubscriptionTopic/encounter-end";
pub(super) const ADMISSION: &str =
    "http://handoff.example.org/fhir/SubscriptionTopic/encounter-start";

/// A valid rest-hook subscription to discharges of Practitioner/123's patients.
pub(super) fn sub(content: &str) -> Value {
    json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Discharges of my patients",
        "criteria": DISCHARGE,
        "_criteria": {"extension": [{"url": FILTER_CRITERIA_URL, "valueString": "Encounter?practitioner=Practitioner/123"}]},
        "channel": {
            "extension": [{"url": HEARTBEAT_URL, "valueUnsignedInt": 3600}],
            "type": "rest-hook",
            "endpoint": "https://gp.example.org/hooks/handoff",
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT_URL, "valueCode": content}]},
            "header": ["Authorization: Bearer abc"]
        }
    })
}

/// The issues' (code, path) pairs.
pub(super) fn problems(v: &Value) -> Vec<(String, String)> {
    match parse(v) {
        Ok(s) => panic!("expected issues, got {s:?}"),
        Err(issues) => issues
            .into_iter()
            .map(|i| (i.code.as_str().to_owned(), i.expression.unwrap_or_default()))
            .collect(),
    }
}

/// Exactly one issue, with this code and path.
pub(super) fn one_problem(v: &Value, code: &str, path: &str) {
    assert_eq!(problems(v), [(code.to_owned(), path.to_owned())], "{v}");
}

#[test]
fn valid_at_every_content_level() {
    for content in CONTENT_CODES {
        let v = sub(content);
        assert!(validate(&v).is_empty(), "{:?}", validate(&v));
        let s = parse(&v).unwrap();
        assert_eq!(s.content, content);
        assert_eq!(s.topic, DISCHARGE);
        assert_eq!(s.channel, Channel::RestHook);
        assert_eq!(s.endpoint, "https://gp.example.org/hooks/handoff");
        assert_eq!(s.delivery_url(), s.endpoint);
        assert_eq!(s.payload, "application/fhir+json");
        assert!(!s.wants_xml());
        assert_eq!(
            s.headers,
            [("Authorization".to_owned(), "Bearer abc".to_owned())]
        );
        assert_eq!(
            (s.heartbeat_secs, s.timeout_secs, s.max_count),
            (Some(3600), None, None)
        );
        assert_eq!(s.status, "requested");
        assert_eq!(s.end, None);
        assert_eq!(
            s.filters,
            [filter("Encounter", "practitioner", "Practitioner/123")]
        );
        assert_eq!(s.topic_def().map(|t| t.code), Some("encounter-end"));
    }
}

pub(super) fn filter(resource: &str, param: &str, value: &str) -> Filter {
    Filter {
        resource: resource.into(),
        param: param.into(),
        value: value.into(),
    }
}

/// `sub("id-only")` with the element at a JSON pointer replaced (Null: removed).
pub(super) fn changed(pointer: &str, value: Value) -> Value {
    let mut v = sub("id-only");
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let holder = v.pointer_mut(parent).unwrap();
    match (holder, value) {
        (Value::Object(o), Value::Null) => {
            o.remove(key);
        }
        (Value::Object(o), x) => {
            o.insert(key.to_owned(), x);
        }
        (Value::Array(a), x) => a[key.parse::<usize>().unwrap()] = x,
        _ => panic!("bad pointer {pointer}"),
    }
    v
}

pub(super) fn criteria_ext(filters: &[&str]) -> Value {
    let ext: Vec<Value> = filters
        .iter()
        .map(|f| json!({"url": FILTER_CRITERIA_URL, "valueString": f}))
        .collect();
    json!({"extension": ext})
}

/// The Backport IG's R4 example `Subscription/subscription-admission`
/// (BackportSubscription.fsh), with its criteria moved to the gateway's admission topic.
#[test]
fn the_igs_admission_example_adapted_to_our_topic() {
    let v = json!({
        "resourceType": "Subscription",
        "id": "subscription-admission",
        "status": "active",
        "end": "2020-12-31T12:00:00Z",
        "reason": "R4/B Example Topic-Based Subscription for Patient Admission",
        "criteria": ADMISSION,
        "_criteria": {"extension": [{"url": FILTER_CRITERIA_URL, "valueString": "Encounter?patient=Patient/123"}]},
        "channel": {
            "extension": [
                {"url": HEARTBEAT_URL, "valueUnsignedInt": 86400},
                {"url": TIMEOUT_URL, "valueUnsignedInt": 60},
                {"url": MAX_COUNT_URL, "valuePositiveInt": 20}
            ],
            "type": "rest-hook",
            "endpoint": "https://example.org/Endpoints/d7dcc004-808d-452b-8030-3a3a13cd871d",
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT_URL, "valueCode": "id-only"}]}
        }
    });
    assert!(validate(&v).is_empty(), "{:?}", validate(&v));
    let s = parse(&v).unwrap();
    assert_eq!(s.topic, ADMISSION);
    assert_eq!(s.filters, [filter("Encounter", "patient", "Patient/123")]);
    assert_eq!(
        (s.heartbeat_secs, s.timeout_secs, s.max_count),
        (Some(86400), Some(60), Some(20))
    );
    assert_eq!(
        (s.content.as_str(), s.status.as_str()),
        ("id-only", "active")
    );
    assert_eq!(s.end.as_deref(), Some("2020-12-31T12:00:00Z"));
    assert!(s.headers.is_empty());
}

/// The IG's multi-resource example filters on Patient and Observation too: our
/// admission topic allows Encounter filters only, and says which.
#[test]
fn the_igs_multi_resource_filters_are_refused_with_the_allowed_ones() {
    let mut v = sub("id-only");
    v["criteria"] = json!(ADMISSION);
    v["_criteria"] = criteria_ext(&[
        "Patient?id=Patient/123",
        "Encounter?patient=Patient/123",
        "Observation?subject=Patient/123",
    ]);
    let issues = parse(&v).unwrap_err();
    let got: Vec<_> = issues
        .iter()
        .map(|i| (i.code.as_str(), i.expression.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "not-supported",
                "Subscription._criteria.extension[0].valueString".to_owned()
            ),
            (
                "not-supported",
                "Subscription._criteria.extension[2].valueString".to_owned()
            )
        ]
    );
    assert!(
        issues[0].message.contains("no filter Patient?id"),
        "{}",
        issues[0].message
    );
    assert!(issues[0].message.contains(
        "Encounter?patient, Encounter?practitioner, Encounter?organization, Encounter?location"
    ));
}

#[test]
fn several_filters_are_all_kept_to_be_anded() {
    let mut v = sub("full-resource");
    v["_criteria"] = criteria_ext(&[
        "Encounter?patient=Patient/123&practitioner=Practitioner/9",
        "organization=Organization%2Fsnf",
        "Encounter.location=Location/ward-3",
        "patient=77",
    ]);
    let s = parse(&v).unwrap();
    assert_eq!(
        s.filters,
        [
            filter("Encounter", "patient", "Patient/123"),
            filter("Encounter", "practitioner", "Practitioner/9"),
            filter("Encounter", "organization", "Organization/snf"),
            filter("Encounter", "location", "Location/ward-3"),
            filter("Encounter", "patient", "Patient/77"),
        ]
    );
    v["_criteria"] = json!(null);
    assert!(
        parse(&v).unwrap().filters.is_empty(),
        "no filter: every event of the topic"
    );
}

#[test]
fn content_defaults_to_id_only_and_payload_may_carry_r4_parameters() {
    let v = changed("/channel/_payload", Value::Null);
    assert_eq!(parse(&v).unwrap().content, "id-only");
    let v = changed(
        "/channel/payload",
        json!("application/fhir+xml; fhirVersion=4.0; charset=UTF-8"),
    );
    assert!(parse(&v).unwrap().wants_xml());
}

#[test]
fn the_da_vinci_message_channel() {
    let mut v = changed("/channel/type", json!("message"));
    v["channel"]["endpoint"] = json!("https://payer.example.org/fhir/");
    v["channel"]["extension"] = json!([{"url": TIMEOUT_URL, "valueUnsignedInt": 30}]);
    v["channel"]["_payload"] = json!(null);
    let s = parse(&v).unwrap();
    assert_eq!(s.channel, Channel::DaVinciMessage);
    assert_eq!(s.content, "full-resource", "the default on this channel");
    assert_eq!(
        s.delivery_url(),
        "https://payer.example.org/fhir/$process-message"
    );
    v["channel"]["endpoint"] = json!("https://payer.example.org/fhir/$process-message");
    assert_eq!(
        parse(&v).unwrap().delivery_url(),
        "https://payer.example.org/fhir/$process-message"
    );

    v["channel"]["_payload"] =
        json!({"extension": [{"url": PAYLOAD_CONTENT_URL, "valueCode": "id-only"}]});
    one_problem(
        &v,
        "value",
        "Subscription.channel._payload.extension[0].valueCode",
    );
    v["channel"]["_payload"] = json!(null);
    v["channel"]["extension"] = json!([{"url": TIMEOUT_URL, "valueUnsignedInt": 30}, {"url": HEARTBEAT_URL, "valueUnsignedInt": 60}]);
    one_problem(&v, "not-supported", "Subscription.channel.extension[1]");
    v["channel"]["extension"] = json!(null);
    v["criteria"] = json!("http://handoff.example.org/fhir/SubscriptionTopic/consent-change");
    v["_criteria"] = json!(null);
    one_problem(&v, "not-supported", "Subscription.channel.type");
}

proptest! {
    #[test]
    fn filter_strings_and_headers_never_panic(f in "\\PC{0,40}", h in "\\PC{0,40}", p in "\\PC{0,40}") {
        let mut v = sub("id-only");
        v["_criteria"] = criteria_ext(&[&f]);
        v["channel"]["header"] = json!([h]);
        v["channel"]["payload"] = json!(p);
        v["channel"]["endpoint"] = json!(f);
        let _ = parse(&v);
    }
}

#[test]
fn the_example_in_docs_topics_md_parses() {
    let doc = include_str!("../../../docs/topics.md");
    let start = doc.find("```json\n").expect("an example") + "```json\n".len();
    let len = doc[start..].find("```").expect("closed");
    let v: Value = serde_json::from_str(&doc[start..start + len]).expect("JSON");
    assert!(validate(&v).is_empty(), "{:?}", validate(&v));
    let s = parse(&v).unwrap();
    assert_eq!(s.topic, DISCHARGE);
    assert_eq!(s.content, "id-only");
    assert_eq!(
        s.filters,
        [filter("Encounter", "practitioner", "Practitioner/123")]
    );
}
