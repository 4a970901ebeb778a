//! The disclosure ledger's entries: R4 AuditEvents, built here (pure) and written by
//! the store in the transaction that records the delivery (or the denial). What each
//! element holds is in docs/consent.md, "The disclosure ledger".

use serde_json::{json, Value};

use super::{Decision, Outcome, ACT_REASON};
use crate::fhir::search::dates;

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// The gateway's subtypes of ledger entries.
pub const SUBTYPE_SYSTEM: &str = "http://handoff.example.org/fhir/CodeSystem/ledger";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
/// AuditEvent.type of a disclosure: DICOM 110106 Export.
pub const EXPORT: &str = "110106";

/// One disclosure decided (and perhaps made): everything the ledger says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Disclosure {
    /// `Patient/123`.
    pub patient: String,
    /// Every reference the recipient answers to (empty: unknown recipient).
    pub recipient: Vec<String>,
    pub purpose: String,
    /// What the notification is about and carries, the focus first.
    pub items: Vec<String>,
    pub decision: Outcome,
    pub subscription: String,
    pub webhook_id: String,
    pub event_number: Option<i64>,
    /// The domain event notified (`PatientDischarged`).
    pub event: String,
}

impl Disclosure {
    /// What is sent: the items less those withheld.
    pub fn sent(&self) -> impl Iterator<Item = &String> {
        self.items
            .iter()
            .filter(|i| !self.decision.excluded.contains(i))
    }
}

/// What came of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The subscriber acknowledged (2xx).
    Delivered,
    /// Sent, not acknowledged (an error status, a timeout): the subscriber may have
    /// received it, so it is in the ledger; `why` says what happened.
    Unacknowledged(String),
    /// Not sent: consent denies it.
    Denied,
}

/// The AuditEvent for one delivery attempt or denial, recorded at `at` (microseconds).
pub fn disclosure_event(d: &Disclosure, result: &Effect, at: i64) -> Value {
    let (outcome, desc) = match result {
        Effect::Delivered => ("0", format!("disclosed: {}", d.decision.reason)),
        Effect::Unacknowledged(why) => (
            "4",
            format!("sent, not acknowledged ({why}): {}", d.decision.reason),
        ),
        Effect::Denied => ("4", format!("not disclosed: {}", d.decision.reason)),
    };
    let subtype = match result {
        Effect::Denied => "disclosure-denied",
        _ => "disclosure",
    };
    let mut agents: Vec<Value> = d
        .recipient
        .iter()
        .map(|r| {
            json!({
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"reference": r},
                "requestor": false,
            })
        })
        .collect();
    if agents.is_empty() {
        agents.push(json!({
            "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
            "who": {"display": "unknown recipient (the subscription names none)"},
            "requestor": false,
        }));
    }
    agents.push(gateway_agent(true));
    let mut entities = vec![patient_entity(&d.patient)];
    for item in d.items.iter().filter(|i| **i != d.patient) {
        let withheld = d.decision.excluded.contains(item) || matches!(result, Effect::Denied);
        entities.push(object_entity(
            item,
            if withheld { "withheld" } else { "sent" },
        ));
    }
    if let Some(c) = &d.decision.consent {
        entities.push(object_entity(c, "the Consent that decided"));
    }
    let mut details = vec![
        json!({"type": "event", "valueString": d.event}),
        json!({"type": "decision", "valueString": match d.decision.decision {
            Decision::Permit => "permit",
            Decision::Deny => "deny",
        }}),
    ];
    if !d.webhook_id.is_empty() {
        details.push(json!({"type": "webhook-id", "valueString": d.webhook_id}));
    }
    if let Some(n) = d.event_number {
        details.push(json!({"type": "event-number", "valueString": n.to_string()}));
    }
    entities.push(json!({
        "what": {"reference": format!("Subscription/{}", d.subscription)},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "description": "the subscription (channel) notified",
        "detail": details,
    }));
    json!({
        "resourceType": "AuditEvent",
        "type": {"system": DCM, "code": EXPORT, "display": "Export"},
        "subtype": [{"system": SUBTYPE_SYSTEM, "code": subtype}],
        "action": "R",
        "recorded": dates::format_instant(at),
        "outcome": outcome,
        "outcomeDesc": desc,
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": d.purpose}]}],
        "agent": agents,
        "source": {
            "observer": {"display": "handoff gateway"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    })
}

/// A read of a patient's data through the API by an authenticated client.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadAccess {
    /// `Patient/123`.
    pub patient: String,
    /// The client's registered name.
    pub client: String,
    /// The references a recipient client answers to (empty: a full-access client).
    pub recipient: Vec<String>,
    pub purpose: String,
    /// The FHIR restful-interaction code (`read`, `search-type`, ...).
    pub interaction: &'static str,
    /// What the response would hold about the patient.
    pub items: Vec<String>,
    /// For a recipient: the decision (its `excluded` are withheld). None: a
    /// full-access client's use, not decided.
    pub decision: Option<Outcome>,
}

/// The AuditEvent for one read: a disclosure (type Export, in `$disclosures`) when
/// the client is a recipient, a use (type rest) when it has full access.
pub fn read_event(r: &ReadAccess, at: i64) -> Value {
    let denied = r
        .decision
        .as_ref()
        .is_some_and(|d| d.decision == Decision::Deny);
    let withheld = |item: &String| {
        denied
            || r.decision
                .as_ref()
                .is_some_and(|d| d.excluded.contains(item))
    };
    let (kind, subtype, desc) = match &r.decision {
        Some(d) if denied => (
            json!({"system": DCM, "code": EXPORT, "display": "Export"}),
            "read-denied",
            format!("not disclosed: {}", d.reason),
        ),
        Some(d) => (
            json!({"system": DCM, "code": EXPORT, "display": "Export"}),
            "read-disclosure",
            format!("disclosed: {}", d.reason),
        ),
        None => (
            json!({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "Restful Operation"}),
            "read",
            "read by a full-access client".to_owned(),
        ),
    };
    let mut agents: Vec<Value> = r
        .recipient
        .iter()
        .map(|who| {
            json!({
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"reference": who},
                "altId": r.client,
                "requestor": true,
            })
        })
        .collect();
    if agents.is_empty() {
        agents.push(json!({
            "who": {"display": format!("API client {}", r.client)},
            "altId": r.client,
            "requestor": true,
        }));
    }
    agents.push(gateway_agent(false));
    let mut entities = vec![patient_entity(&r.patient)];
    for item in r.items.iter().filter(|i| **i != r.patient) {
        entities.push(object_entity(
            item,
            if withheld(item) { "withheld" } else { "sent" },
        ));
    }
    if let Some(c) = r.decision.as_ref().and_then(|d| d.consent.as_ref()) {
        entities.push(object_entity(c, "the Consent that decided"));
    }
    json!({
        "resourceType": "AuditEvent",
        "type": kind,
        "subtype": [
            {"system": SUBTYPE_SYSTEM, "code": subtype},
            {"system": "http://hl7.org/fhir/restful-interaction", "code": r.interaction},
        ],
        "action": "R",
        "recorded": dates::format_instant(at),
        "outcome": if denied { "4" } else { "0" },
        "outcomeDesc": desc,
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": r.purpose}]}],
        "agent": agents,
        "source": {
            "observer": {"display": "handoff gateway"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    })
}

/// The AuditEvent for a change of a consent directive (`consent`: `Consent/id`,
/// `version`: the version written, `status`: its status now).
pub fn consent_change_event(
    consent: &str,
    version: i64,
    patient: Option<&str>,
    status: &str,
    at: i64,
) -> Value {
    let mut entities = Vec::new();
    if let Some(p) = patient {
        entities.push(patient_entity(p));
    }
    entities.push(json!({
        "what": {"reference": format!("{consent}/_history/{version}")},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "description": format!("the consent directive, now {status}"),
    }));
    json!({
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": SUBTYPE_SYSTEM, "code": "consent-change"}],
        "action": if version == 1 { "C" } else { "U" },
        "recorded": dates::format_instant(at),
        "outcome": "0",
        "agent": [{
            "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
            "who": {"display": "handoff gateway (the writer is not authenticated)"},
            "requestor": true,
        }],
        "source": {"observer": {"display": "handoff gateway"}},
        "entity": entities,
    })
}

fn gateway_agent(requestor: bool) -> Value {
    json!({
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"display": "handoff gateway"},
        "requestor": requestor,
    })
}

fn patient_entity(patient: &str) -> Value {
    json!({
        "what": {"reference": patient},
        "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
    })
}

fn object_entity(what: &str, description: &str) -> Value {
    json!({
        "what": {"reference": what},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "description": description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disclosure(decision: Decision, excluded: &[&str]) -> Disclosure {
        Disclosure {
            patient: "Patient/p".into(),
            recipient: vec!["Practitioner/pcp".into(), "Organization/o".into()],
            purpose: "TREAT".into(),
            items: vec![
                "Encounter/e".into(),
                "Patient/p".into(),
                "Observation/x".into(),
            ],
            decision: Outcome {
                decision,
                reason: "TREAT: Consent/c permits".into(),
                consent: Some("Consent/c".into()),
                excluded: excluded.iter().map(|s| s.to_string()).collect(),
            },
            subscription: "s".into(),
            webhook_id: "s-1".into(),
            event_number: Some(1),
            event: "PatientDischarged".into(),
        }
    }

    #[test]
    fn a_delivery_names_who_what_why_and_how() {
        let d = disclosure(Decision::Permit, &["Observation/x"]);
        let e = disclosure_event(&d, &Effect::Delivered, 0);
        assert_eq!(e["outcome"], "0");
        assert_eq!(e["agent"][0]["who"]["reference"], "Practitioner/pcp");
        assert_eq!(e["agent"][1]["who"]["reference"], "Organization/o");
        assert_eq!(e["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
        let entities = e["entity"].as_array().unwrap();
        let find = |r: &str| {
            entities
                .iter()
                .find(|x| x["what"]["reference"] == r)
                .unwrap_or_else(|| panic!("{r}"))
        };
        assert_eq!(find("Encounter/e")["description"], "sent");
        assert_eq!(find("Observation/x")["description"], "withheld");
        assert_eq!(find("Consent/c")["description"], "the Consent that decided");
        assert!(find("Subscription/s")["detail"].to_string().contains("s-1"));
        assert_eq!(d.sent().count(), 2);
    }

    #[test]
    fn a_denial_withholds_everything() {
        let d = disclosure(Decision::Deny, &[]);
        let e = disclosure_event(&d, &Effect::Denied, 0);
        assert_eq!(e["outcome"], "4");
        assert_eq!(e["subtype"][0]["code"], "disclosure-denied");
        assert!(
            e["entity"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["description"] == "sent")
                .count()
                == 0
        );
    }
}
