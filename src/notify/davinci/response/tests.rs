use serde_json::json;

use super::*;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::notify::davinci::samples::{assert_valid, BASE};
use crate::topics::catalog::DAVINCI_EVENT_SYSTEM;

#[test]
fn responses_are_valid_and_answer_the_inbound_message() {
    let inbound = InboundMessage {
        message_id: "3f6c2a91-7d4e-4b8a-9c15-2e8d0b7f6a43".into(),
        event: (DAVINCI_EVENT_SYSTEM.into(), "notification-discharge".into()),
        source_endpoint: Some(BASE.into()),
        resources: Vec::new(),
        skipped: Vec::new(),
    };
    let ok = response_bundle(
        "https://receiver.example.org/fhir/",
        &inbound,
        ResponseCode::Ok,
        None,
    );
    assert_valid(&ok);
    assert_eq!(ok["type"], "message");
    assert_eq!(ok["entry"].as_array().unwrap().len(), 1);
    let h = &ok["entry"][0]["resource"];
    assert_eq!(
        h["response"],
        json!({"identifier": inbound.message_id, "code": "ok"})
    );
    assert_eq!(h["eventCoding"]["code"], "notification-discharge");
    assert_eq!(h["source"]["endpoint"], "https://receiver.example.org/fhir");
    assert_eq!(h["destination"], json!([{ "endpoint": BASE }]));

    let issue = Issue::error(IssueCode::Transient, "store unavailable");
    let outcome = operation_outcome(&[issue]);
    for code in [ResponseCode::TransientError, ResponseCode::FatalError] {
        let b = response_bundle(BASE, &inbound, code, Some(&outcome));
        assert_valid(&b);
        let h = &b["entry"][0]["resource"];
        assert_eq!(h["response"]["code"], code.as_str());
        assert_eq!(
            h["response"]["details"]["reference"],
            b["entry"][1]["fullUrl"]
        );
        assert_eq!(b["entry"][1]["resource"]["issue"], outcome["issue"]);
    }
    // Not an OperationOutcome, no usable source endpoint: both left out.
    let odd = InboundMessage {
        source_endpoint: Some("mllp://x y".into()),
        ..inbound
    };
    let b = response_bundle(
        BASE,
        &odd,
        ResponseCode::Ok,
        Some(&json!({"resourceType": "Patient"})),
    );
    assert_valid(&b);
    assert_eq!(b["entry"].as_array().unwrap().len(), 1);
    assert!(b["entry"][0]["resource"].get("destination").is_none());
}
