//! The problems parse reports, each with its element path.

use serde_json::{json, Value};

use super::tests::{changed, criteria_ext, one_problem, problems, sub, DISCHARGE};
use super::*;

#[test]
fn each_filter_problem_names_its_criteria_extension() {
    let at = "Subscription._criteria.extension[1].valueString";
    for (filter, code) in [
        ("Encounter?nonsense=1", "not-supported"),
        ("ServiceRequest?patient=Patient/1", "not-supported"),
        ("Encounter?patient=", "value"),
        ("Encounter?patient", "value"),
        ("Encounter?", "value"),
        ("?patient=Patient/1", "value"),
        ("Encounter?patient:missing=true", "not-supported"),
        ("Encounter?patient=Patient/1,Patient/2", "not-supported"),
        ("Encounter?patient=Practitioner/1", "value"),
        ("Encounter?practitioner=9", "value"),
        ("Encounter?patient=not%20an%20id", "value"),
        ("Encounter?patient=%FF", "value"),
        ("CarePlan.patient=Patient/1&Encounter?x", "value"),
        ("=Patient/1", "value"),
    ] {
        let mut v = sub("id-only");
        v["_criteria"] = criteria_ext(&["Encounter?patient=Patient/1", filter]);
        assert_eq!(problems(&v), [(code.to_owned(), at.to_owned())], "{filter}");
    }
    let v = changed(
        "/_criteria/extension/0",
        json!({"url": FILTER_CRITERIA_URL, "valueInteger": 3}),
    );
    one_problem(&v, "required", "Subscription._criteria.extension[0]");
    let other = changed(
        "/_criteria/extension/0",
        json!({"url": "http://example.org/other", "valueString": "x"}),
    );
    assert!(
        parse(&other).unwrap().filters.is_empty(),
        "other extensions are ignored"
    );
}

#[test]
fn each_element_problem_has_its_path() {
    let cases = [
        (
            "/criteria",
            Value::Null,
            "required",
            "Subscription.criteria",
        ),
        (
            "/criteria",
            json!("http://hl7.org/SubscriptionTopic/admission"),
            "value",
            "Subscription.criteria",
        ),
        ("/status", Value::Null, "required", "Subscription.status"),
        (
            "/channel/type",
            json!("websocket"),
            "not-supported",
            "Subscription.channel.type",
        ),
        (
            "/channel/type",
            Value::Null,
            "required",
            "Subscription.channel.type",
        ),
        (
            "/channel/endpoint",
            Value::Null,
            "required",
            "Subscription.channel.endpoint",
        ),
        (
            "/channel/endpoint",
            json!("ftp://gp.example.org/x"),
            "value",
            "Subscription.channel.endpoint",
        ),
        (
            "/channel/endpoint",
            json!("https://user:pw@gp.example.org/x"),
            "value",
            "Subscription.channel.endpoint",
        ),
        (
            "/channel/endpoint",
            json!("/relative/hook"),
            "value",
            "Subscription.channel.endpoint",
        ),
        (
            "/channel/payload",
            Value::Null,
            "required",
            "Subscription.channel.payload",
        ),
        (
            "/channel/payload",
            json!("text/plain"),
            "value",
            "Subscription.channel.payload",
        ),
        (
            "/channel/payload",
            json!("application/fhir+json; fhirVersion=4.3"),
            "not-supported",
            "Subscription.channel.payload",
        ),
        (
            "/channel/payload",
            json!("application/fhir+xml; charset=latin1"),
            "value",
            "Subscription.channel.payload",
        ),
        (
            "/channel/_payload/extension/0",
            json!({"url": PAYLOAD_CONTENT_URL, "valueCode": "everything"}),
            "code-invalid",
            "Subscription.channel._payload.extension[0].valueCode",
        ),
        (
            "/channel/_payload/extension/0",
            json!({"url": PAYLOAD_CONTENT_URL}),
            "required",
            "Subscription.channel._payload.extension[0]",
        ),
        (
            "/channel/extension/0",
            json!({"url": HEARTBEAT_URL, "valueUnsignedInt": 0}),
            "value",
            "Subscription.channel.extension[0].valueUnsignedInt",
        ),
        (
            "/channel/extension/0",
            json!({"url": TIMEOUT_URL, "valueString": "60"}),
            "required",
            "Subscription.channel.extension[0]",
        ),
        (
            "/channel/extension/0",
            json!({"url": MAX_COUNT_URL, "valuePositiveInt": 4294967296u64}),
            "value",
            "Subscription.channel.extension[0].valuePositiveInt",
        ),
        (
            "/channel/header/0",
            json!("no colon here"),
            "value",
            "Subscription.channel.header[0]",
        ),
        (
            "/channel/header/0",
            json!("Content-Type: text/plain"),
            "value",
            "Subscription.channel.header[0]",
        ),
        (
            "/channel/header/0",
            json!("Bad Name: x"),
            "value",
            "Subscription.channel.header[0]",
        ),
        (
            "/channel/header/0",
            json!("X-Empty:  "),
            "value",
            "Subscription.channel.header[0]",
        ),
        (
            "/channel/header/0",
            json!("X-Split: a\r\nInjected: b"),
            "value",
            "Subscription.channel.header[0]",
        ),
    ];
    for (pointer, value, code, path) in cases {
        one_problem(&changed(pointer, value), code, path);
    }
}

#[test]
fn repeated_and_custom_extensions_are_refused() {
    let mut v = sub("id-only");
    v["channel"]["extension"] = json!([
        {"url": MAX_COUNT_URL, "valuePositiveInt": 5},
        {"url": HEARTBEAT_URL, "valueUnsignedInt": 60},
        {"url": MAX_COUNT_URL, "valuePositiveInt": 6}
    ]);
    v["channel"]["_payload"]["extension"] = json!([
        {"url": PAYLOAD_CONTENT_URL, "valueCode": "empty"},
        {"url": PAYLOAD_CONTENT_URL, "valueCode": "full-resource"}
    ]);
    v["channel"]["_type"] = json!({"extension": [{"url": CHANNEL_TYPE_URL,
        "valueCoding": {"system": "http://example.org/subscription-channel-type", "code": "zulip"}}]});
    let mut got = problems(&v);
    got.sort();
    let want = [
        ("not-supported", "Subscription.channel._type.extension[0]"),
        ("structure", "Subscription.channel._payload.extension[1]"),
        ("structure", "Subscription.channel.extension[2]"),
    ];
    assert_eq!(got, want.map(|(c, p)| (c.to_owned(), p.to_owned())));
}

#[test]
fn every_problem_is_reported_at_once() {
    let v = json!({"resourceType": "Subscription", "criteria": "x", "channel": {"type": "email"}});
    let paths: Vec<String> = problems(&v).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        paths,
        [
            "Subscription.criteria",
            "Subscription.channel.type",
            "Subscription.channel.endpoint",
            "Subscription.channel.payload",
            "Subscription.status"
        ]
    );
}

#[test]
fn not_a_subscription() {
    for v in [
        json!([]),
        json!("x"),
        json!({"resourceType": "Patient"}),
        json!({}),
    ] {
        one_problem(&v, "invalid", "Subscription");
    }
}

#[test]
fn wrong_shapes_are_issues_not_panics() {
    let v = json!({"resourceType": "Subscription", "status": 3, "criteria": [DISCHARGE],
        "_criteria": "x", "channel": {"type": {}, "endpoint": 1, "payload": null,
        "_payload": [1], "extension": {"url": HEARTBEAT_URL}, "header": [null, 2, "A: b"]}});
    assert!(!problems(&v).is_empty());
}
