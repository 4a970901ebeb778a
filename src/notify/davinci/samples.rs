//! Realistic events, as the delivery worker hands them over, shared by the tests.

use serde_json::{json, Value};

use super::MessageContext;
use crate::fhir::validate::validate;
use crate::notify::bundle::EventItem;

pub(super) const BASE: &str = "https://gw.example.org/fhir";
pub(super) const PRACTICE: &str = "https://practice.example.org/fhir/$process-message";

pub(super) fn assert_valid(v: &Value) {
    let errors: Vec<_> = validate(v).into_iter().filter(|i| i.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{v:#}");
}

fn reference(r: &str) -> Value {
    json!({ "reference": r })
}

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

pub(super) fn encounter(id: &str, status: &str, location: &str) -> Value {
    json!({
        "resourceType": "Encounter", "id": id, "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": reference("Patient/p1"),
        "participant": [{
            "type": [coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "ATND")],
            "individual": reference("Practitioner/dr-okafor"),
        }],
        "period": {"start": "2026-11-10T08:00:00Z"},
        "location": [{"location": reference(location)}],
        "serviceProvider": reference("Organization/riverside"),
    })
}

pub(super) fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1",
        "identifier": [{"system": "http://riverside.example.org/mrn", "value": "MRN-4711"}],
        "name": [{"family": "Example", "given": ["Ada"]}], "gender": "female",
        "birthDate": "1948-03-02", "generalPractitioner": [reference("Practitioner/pcp-lee")]})
}

fn practitioner(id: &str, family: &str) -> Value {
    json!({"resourceType": "Practitioner", "id": id, "name": [{"family": family}]})
}

pub(super) fn organization(id: &str, name: &str) -> Value {
    json!({"resourceType": "Organization", "id": id, "name": name})
}

pub(super) fn event(focus: &str, resources: Vec<Value>) -> EventItem {
    EventItem {
        number: 7,
        timestamp: "2026-11-14T16:31:00Z".into(),
        focus: Some(focus.into()),
        context: vec!["Patient/p1".into()],
        resources,
    }
}

/// Ada Example, discharged from Riverside to the Oakview skilled nursing facility.
pub(super) fn discharge_event() -> EventItem {
    let mut enc = encounter("enc-1", "finished", "Location/ward-5");
    enc["period"]["end"] = json!("2026-11-14T16:30:00Z");
    enc["hospitalization"] = json!({
        "dischargeDisposition":
            coding("http://terminology.hl7.org/CodeSystem/discharge-disposition", "snf"),
        "destination": reference("Organization/oakview-snf"),
    });
    event(
        "Encounter/enc-1",
        vec![
            enc,
            patient(),
            practitioner("dr-okafor", "Okafor"),
            organization("riverside", "Riverside General Hospital"),
            organization("oakview-snf", "Oakview Skilled Nursing"),
            practitioner("pcp-lee", "Lee"),
        ],
    )
}

/// Dr Okafor refers Ada Example to the heart clinic; the Task tracks it.
pub(super) fn referral_event() -> EventItem {
    let mut request: Value =
        serde_json::from_str(include_str!("../../../fixtures/profiles/referral.json")).unwrap();
    request["id"] = json!("referral-1");
    let mut task: Value = serde_json::from_str(include_str!(
        "../../../fixtures/profiles/referral-task.json"
    ))
    .unwrap();
    task["id"] = json!("task-1");
    let resources = vec![
        request,
        patient(),
        task,
        practitioner("dr-okafor", "Okafor"),
        organization("heart-clinic", "Riverside Heart Clinic"),
        organization("riverside", "Riverside General Hospital"),
    ];
    event("ServiceRequest/referral-1", resources)
}

pub(super) fn ctx(event_code: &str) -> MessageContext<'_> {
    MessageContext {
        base: BASE,
        event_code,
        sender: Some("Organization/riverside"),
        responsible: Some("Practitioner/dr-okafor"),
        destination_endpoint: PRACTICE,
        destination_receiver: Some("Practitioner/pcp-lee"),
    }
}

/// The Bundle with its generated ids and timestamp set to those of the fixtures.
pub(super) fn with_fixture_ids(mut b: Value) -> Value {
    let header_id = "3f6c2a91-7d4e-4b8a-9c15-2e8d0b7f6a43";
    b["id"] = json!("9a1e5c77-0b2d-4f63-8e49-d5c3a8b1f270");
    b["timestamp"] = json!("2026-11-14T16:31:02.000Z");
    b["entry"][0]["fullUrl"] = json!(format!("urn:uuid:{header_id}"));
    b["entry"][0]["resource"]["id"] = json!(header_id);
    b
}
