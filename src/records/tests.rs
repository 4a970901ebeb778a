//! Translation and lifecycle tests: FHIR -> record -> FHIR over the official R4
//! examples, every referral status pair, the encounter rules. The property test
//! (random valid records through record -> FHIR -> record) is in tests/property.rs.

use serde_json::{json, Value};

use super::lifecycle::{decide, EventKind, RuleError};
use super::types::*;
use super::*;
use crate::fhir::validate::validate;

fn examples(prefix: &str) -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hl7-r4-examples");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(&format!("{prefix}-")) && n.ends_with(".json"))
        .map(|n| {
            let v = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{n}")).unwrap())
                .unwrap();
            (n, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn render(r: &Record, base: Option<Value>) -> Value {
    match r {
        Record::Referral(x) => x.to_service_request(base),
        Record::Transition(x) => x.to_encounter(base),
        Record::CarePlan(x) => x.to_care_plan(base),
        Record::Consent(x) => x.to_consent(base),
    }
}

fn errors(v: &Value) -> Vec<String> {
    validate(v)
        .into_iter()
        .filter(|i| i.is_error())
        .map(|i| format!("{} at {:?}", i.message, i.expression))
        .collect()
}

#[test]
fn official_examples_survive_fhir_record_fhir() {
    let mut seen = 0;
    for rtype in ["ServiceRequest", "Encounter", "CarePlan", "Consent"] {
        for (name, original) in examples(rtype) {
            let record = Record::from_resource(&original, None).unwrap();
            let without_id = |mut r: Record| {
                r.set_id(None);
                r
            };
            // Alone, the record renders to valid R4 that reads back as the same record.
            let fresh = render(&record, None);
            assert_eq!(errors(&fresh), Vec::<String>::new(), "{name}: {fresh}");
            assert_eq!(
                Record::from_resource(&fresh, None).unwrap(),
                without_id(record.clone()),
                "{name}"
            );
            // Over the stored resource, nothing the record does not model is lost.
            let overlaid = render(&record, Some(original.clone()));
            assert_eq!(errors(&overlaid), Vec::<String>::new(), "{name}");
            assert_eq!(
                Record::from_resource(&overlaid, None).unwrap(),
                record,
                "{name}"
            );
            for key in original.as_object().unwrap().keys() {
                assert!(overlaid.get(key).is_some(), "{name}: {key} was lost");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 20 + 10 + 11 + 12);
}

#[test]
fn a_referral_takes_status_and_results_from_its_task() {
    let sr = json!({"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"}, "requester": {"reference": "Practitioner/gp"},
        "performer": [{"reference": "Organization/cardio"}],
        "reasonCode": [{"text": "chest pain on exertion"}],
        "supportingInfo": [{"reference": "Observation/ecg"}], "priority": "urgent"});
    let mut r = Referral::from_service_request(&sr, None);
    assert_eq!(r.status, ReferralStatus::Requested);
    let task = json!({"resourceType": "Task", "id": "t1", "status": "completed", "intent": "order",
        "focus": {"reference": "ServiceRequest/sr1"},
        "output": [{"type": {"text": "consult note"}, "valueReference": {"reference": "DiagnosticReport/dr"}}]});
    assert_eq!(referral::task_target(&task).as_deref(), Some("sr1"));
    r.apply_task(&task, "active");
    assert_eq!(r.status, ReferralStatus::Completed);
    assert_eq!(r.results, vec![Party::to("DiagnosticReport/dr")]);
    // Rendered back: the ServiceRequest says completed, the Task carries the output.
    let sr2 = r.to_service_request(Some(sr));
    assert_eq!(sr2["status"], "completed");
    let t2 = r.to_task(Some(task), "ServiceRequest/sr1").unwrap();
    assert_eq!(t2["status"], "completed");
    assert_eq!(
        t2["output"][0]["valueReference"]["reference"],
        "DiagnosticReport/dr"
    );
    assert_eq!(errors(&sr2), Vec::<String>::new());
    assert_eq!(errors(&t2), Vec::<String>::new());
}

#[test]
fn referral_lifecycle_every_pair() {
    use ReferralStatus::*;
    let legal = |a: ReferralStatus, b: ReferralStatus| {
        a == b
            || b == EnteredInError
            || matches!(
                (a, b),
                (Draft, Requested)
                    | (Draft, Cancelled)
                    | (Requested, Accepted)
                    | (Requested, Rejected)
                    | (Requested, Scheduled)
                    | (Requested, Completed)
                    | (Requested, Cancelled)
                    | (Accepted, Scheduled)
                    | (Accepted, Completed)
                    | (Accepted, Cancelled)
                    | (Scheduled, Completed)
                    | (Scheduled, Cancelled)
            )
    };
    let sr = json!({"resourceType": "ServiceRequest", "id": "x", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"}});
    let base = Referral::from_service_request(&sr, None);
    for a in ReferralStatus::ALL {
        for b in ReferralStatus::ALL {
            let prior = Record::Referral(Referral {
                status: a,
                ..base.clone()
            });
            let next = Record::Referral(Referral {
                status: b,
                ..base.clone()
            });
            let got = decide(Some(&prior), &next);
            assert_eq!(got.is_ok(), legal(a, b), "{a:?} -> {b:?}: {got:?}");
            if let Err(RuleError::Illegal { message, path }) = got {
                assert_eq!(path, "ServiceRequest.status");
                assert!(
                    message.contains(a.as_str()) && message.contains(b.as_str()),
                    "{message}"
                );
            }
        }
    }
    // The events a new referral and its moves raise.
    let at = |s| {
        Record::Referral(Referral {
            status: s,
            ..base.clone()
        })
    };
    assert_eq!(
        decide(None, &at(Requested)).unwrap(),
        [EventKind::ReferralRequested]
    );
    assert_eq!(
        decide(Some(&at(Draft)), &at(Requested)).unwrap(),
        [EventKind::ReferralRequested]
    );
    assert_eq!(
        decide(Some(&at(Requested)), &at(Accepted)).unwrap(),
        [EventKind::ReferralAccepted]
    );
    assert_eq!(
        decide(Some(&at(Requested)), &at(Rejected)).unwrap(),
        [EventKind::ReferralRejected]
    );
    assert_eq!(
        decide(Some(&at(Scheduled)), &at(Completed)).unwrap(),
        [EventKind::ReferralCompleted]
    );
    assert_eq!(decide(Some(&at(Accepted)), &at(Accepted)).unwrap(), []);
    assert_eq!(decide(None, &at(Draft)).unwrap(), []);
}

fn encounter(status: &str, end: Option<&str>, location: &str) -> Record {
    let mut e = json!({"resourceType": "Encounter", "id": "e", "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p"}, "period": {"start": "2026-11-01T08:00:00Z"},
        "location": [{"location": {"reference": location}}]});
    if let Some(end) = end {
        e["period"]["end"] = json!(end);
    }
    Record::Transition(Transition::from_encounter(&e))
}

#[test]
fn encounter_rules_and_events() {
    use EventKind::*;
    let admitted = encounter("in-progress", None, "Location/ward-1");
    let moved = encounter("in-progress", None, "Location/ward-2");
    let discharged = encounter("finished", Some("2026-11-03T10:00:00Z"), "Location/ward-2");
    assert_eq!(decide(None, &admitted).unwrap(), [PatientAdmitted]);
    assert_eq!(
        decide(
            Some(&encounter("planned", None, "Location/ward-1")),
            &admitted
        )
        .unwrap(),
        [PatientAdmitted]
    );
    assert_eq!(decide(Some(&admitted), &admitted).unwrap(), []);
    assert_eq!(
        decide(Some(&admitted), &moved).unwrap(),
        [PatientTransferred]
    );
    assert_eq!(
        decide(Some(&moved), &discharged).unwrap(),
        [PatientDischarged]
    );
    assert_eq!(decide(None, &discharged).unwrap(), [PatientDischarged]);
    assert_eq!(decide(Some(&discharged), &discharged).unwrap(), []);
    // A discharge needs an end time.
    match decide(
        Some(&admitted),
        &encounter("finished", None, "Location/ward-1"),
    ) {
        Err(RuleError::Incomplete { path, message }) => {
            assert_eq!(path, "Encounter.period.end");
            assert!(message.contains("needs an end time"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Finished and cancelled are final but for entered-in-error.
    assert!(matches!(
        decide(Some(&discharged), &admitted),
        Err(RuleError::Illegal { .. })
    ));
    let cancelled = encounter("cancelled", None, "Location/ward-1");
    assert!(matches!(
        decide(Some(&cancelled), &admitted),
        Err(RuleError::Illegal { .. })
    ));
    assert!(decide(
        Some(&discharged),
        &encounter("entered-in-error", Some("2026-11-03"), "Location/x")
    )
    .is_ok());
}

#[test]
fn care_plan_and_consent_changes() {
    let cp = |status: &str, title: &str| {
        Record::CarePlan(CarePlanRecord::from_care_plan(
            &json!({"resourceType": "CarePlan", "status": status,
            "intent": "plan", "subject": {"reference": "Patient/p"}, "title": title}),
        ))
    };
    assert_eq!(
        decide(None, &cp("active", "a")).unwrap(),
        [EventKind::CarePlanChanged]
    );
    assert_eq!(
        decide(Some(&cp("active", "a")), &cp("active", "a")).unwrap(),
        []
    );
    assert_eq!(
        decide(Some(&cp("active", "a")), &cp("active", "b")).unwrap(),
        [EventKind::CarePlanChanged]
    );
    assert!(decide(Some(&cp("completed", "a")), &cp("active", "a")).is_err());
    let consent = |status: &str| {
        Record::Consent(ConsentDirective::from_consent(
            &json!({"resourceType": "Consent", "status": status,
            "scope": {"text": "privacy"}, "category": [{"text": "consent"}], "patient": {"reference": "Patient/p"}}),
        ))
    };
    assert_eq!(
        decide(Some(&consent("active")), &consent("inactive")).unwrap(),
        [EventKind::ConsentChanged]
    );
    assert!(decide(Some(&consent("inactive")), &consent("active")).is_err());
    assert!(decide(Some(&consent("rejected")), &consent("entered-in-error")).is_ok());
}

mod property;
