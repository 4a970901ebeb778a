use serde_json::{json, Value};

use super::*;
use crate::fhir::validate::validate;
use crate::records::{CarePlanRecord, ConsentDirective, EventKind, Referral};

const EVENTS: [EventKind; 13] = [
    EventKind::ReferralRequested,
    EventKind::ReferralAccepted,
    EventKind::ReferralRejected,
    EventKind::ReferralCompleted,
    EventKind::ReferralCancelled,
    EventKind::PatientAdmitted,
    EventKind::PatientTransferred,
    EventKind::PatientDischarged,
    EventKind::CarePlanChanged,
    EventKind::ConsentChanged,
    EventKind::AdmissionCancelled,
    EventKind::DischargeCancelled,
    EventKind::EncounterUpdated,
];

fn topic(code: &str) -> &'static Topic {
    by_code(code).expect("topic in the catalog")
}

#[test]
fn every_basic_form_is_valid_r4() {
    for t in all() {
        let basic = as_basic(t);
        let errors: Vec<_> = validate(&basic)
            .into_iter()
            .filter(|i| i.is_error())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", t.code);
        assert_eq!(basic["id"], t.code);
        assert_eq!(basic["code"]["coding"][0]["code"], "SubscriptionTopic");
        assert_eq!(
            basic["code"]["coding"][0]["system"],
            "http://hl7.org/fhir/fhir-types"
        );
    }
}

#[test]
fn basic_form_carries_url_events_filters_and_status() {
    let t = topic("encounter-end");
    let b = as_basic(t);
    let ext = b["extension"].as_array().unwrap();
    let of = |name: &str| -> Vec<&Value> {
        let url = format!(
            "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.{name}"
        );
        ext.iter().filter(|e| e["url"] == url.as_str()).collect()
    };
    assert_eq!(of("url")[0]["valueUri"], t.url);
    assert_eq!(of("name")[0]["valueString"], "EncounterEnd");
    // The event, then its retraction (an A13 cancelling the discharge).
    let triggers = of("eventTrigger");
    assert_eq!(triggers.len(), 2);
    assert_eq!(
        triggers[0]["extension"][1]["valueCodeableConcept"]["coding"],
        json!([{"system": EVENT_SYSTEM, "code": "PatientDischarged"},
               {"system": DAVINCI_EVENT_SYSTEM, "code": "notification-discharge"}])
    );
    let filters = of("canFilterBy");
    assert_eq!(filters.len(), t.filters.len());
    assert_eq!(
        filters[1]["extension"][2],
        json!({"url": "filterParameter", "valueString": "practitioner"})
    );
    assert_eq!(b["modifierExtension"][0]["valueCode"], "active");
    assert!(of("description")[0]["valueMarkdown"]
        .as_str()
        .unwrap()
        .contains("discharge summary"));
    assert_eq!(
        triggers[1]["extension"][1]["valueCodeableConcept"]["coding"][0]["code"],
        "DischargeCancelled"
    );
    let referral_status = as_basic(topic("referral-status"));
    let n = referral_status["extension"].as_array().unwrap().iter();
    assert_eq!(
        n.filter(|e| e["url"].as_str().unwrap().ends_with("eventTrigger"))
            .count(),
        4
    );
}

#[test]
fn urls_codes_and_lookups_agree() {
    let mut codes: Vec<&str> = all().iter().map(|t| t.code).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 9);
    for t in all() {
        assert_eq!(t.url, format!("{TOPIC_BASE}{}", t.code));
        assert_eq!(by_url(t.url), Some(t));
        assert_eq!(by_url(&format!("{}|1.0", t.url)), Some(t));
        for f in t.filters {
            assert_eq!(f.resource, t.resource, "{} {}", t.code, f.param);
            assert!(!f.targets.is_empty());
            assert!(f
                .definition
                .is_none_or(|d| d.starts_with("http://hl7.org/fhir/SearchParameter/")));
        }
        assert!(t.filters.iter().any(|f| f.param == "patient"), "{}", t.code);
    }
    assert_eq!(
        by_url("http://handoff.example.org/fhir/SubscriptionTopic/nope"),
        None
    );
    assert_eq!(by_url(""), None);
}

#[test]
fn every_event_triggers_exactly_one_topic() {
    for e in EVENTS {
        let topics = for_event(e.as_str());
        assert_eq!(topics.len(), 1, "{}", e.as_str());
    }
    assert_eq!(for_event("PatientDischarged")[0].code, "encounter-end");
    assert_eq!(for_event("PatientAdmitted")[0].code, "encounter-start");
    assert_eq!(for_event("ReferralRejected")[0].code, "referral-status");
    assert!(for_event("Nothing").is_empty());
    let mut known: Vec<&str> = EVENTS.iter().map(|e| e.as_str()).collect();
    known.extend(crate::handoffs::EVENTS);
    for t in all() {
        assert!(
            t.events
                .iter()
                .chain(t.retractions)
                .all(|e| known.contains(e)),
            "{}",
            t.code
        );
    }
}

fn discharge() -> Record {
    let pp = "http://terminology.hl7.org/CodeSystem/v2-0443";
    let atnd = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
    Record::from_resource(
        &json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/123"},
            "period": {"start": "2024-03-01", "end": "2024-03-04"},
            "serviceProvider": {"reference": "Organization/hospital"},
            "participant": [
                {"type": [{"coding": [{"system": atnd, "code": "ATND"}]}], "individual": {"reference": "Practitioner/att"}},
                {"type": [{"coding": [{"system": pp, "code": "PP"}]}], "individual": {"reference": "Practitioner/123"}},
                {"type": [{"coding": [{"system": atnd, "code": "ATND"}]}], "individual": {"display": "Dr No Reference"}}
            ],
            "location": [{"location": {"reference": "Location/ward-3"}}, {"location": {"reference": "Location/er"}}],
            "hospitalization": {"origin": {"reference": "Location/er"},
                                "destination": {"reference": "Organization/snf"}}}),
        None,
    )
    .unwrap()
}

#[test]
fn encounter_filters_evaluate_over_the_transition() {
    let t = topic("encounter-end");
    let r = discharge();
    assert_eq!(filter_values(t, "patient", &r), ["Patient/123"]);
    assert_eq!(
        filter_values(t, "practitioner", &r),
        ["Practitioner/att", "Practitioner/123"]
    );
    assert_eq!(
        filter_values(t, "organization", &r),
        ["Organization/hospital", "Organization/snf"]
    );
    assert_eq!(
        filter_values(t, "location", &r),
        ["Location/ward-3", "Location/er"]
    );
    assert!(
        filter_values(t, "requester", &r).is_empty(),
        "not a filter of this topic"
    );
    assert!(filter_values(t, "nonsense", &r).is_empty());
    assert!(
        filter_values(topic("referral-request"), "patient", &r).is_empty(),
        "wrong kind"
    );
}

#[test]
fn referral_filters_evaluate_over_the_referral() {
    let sr = json!({"resourceType": "ServiceRequest", "id": "s1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"}, "requester": {"reference": "PractitionerRole/gp"},
        "performer": [{"reference": "Organization/cardio"}, {"reference": "Practitioner/dr"},
                      {"reference": "Organization/cardio"}]});
    let r = Record::Referral(Referral::from_service_request(&sr, None));
    for code in ["referral-request", "referral-status"] {
        let t = topic(code);
        assert_eq!(filter_values(t, "patient", &r), ["Patient/p"]);
        assert_eq!(filter_values(t, "requester", &r), ["PractitionerRole/gp"]);
        assert_eq!(
            filter_values(t, "performer", &r),
            ["Organization/cardio", "Practitioner/dr"]
        );
        assert!(filter_values(t, "practitioner", &r).is_empty());
    }
    let no_requester = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"}});
    let r = Record::Referral(Referral::from_service_request(&no_requester, None));
    assert!(filter_values(topic("referral-request"), "requester", &r).is_empty());
}

#[test]
fn care_plan_and_consent_filter_on_the_patient() {
    let cp = json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
        "subject": {"reference": "Patient/7"}});
    let r = Record::CarePlan(CarePlanRecord::from_care_plan(&cp));
    assert_eq!(
        filter_values(topic("careplan-change"), "patient", &r),
        ["Patient/7"]
    );
    let c = json!({"resourceType": "Consent", "status": "active", "patient": {"display": "unnamed"},
        "scope": {"text": "privacy"}, "category": [{"text": "x"}]});
    let r = Record::Consent(ConsentDirective::from_consent(&c));
    assert!(
        filter_values(topic("consent-change"), "patient", &r).is_empty(),
        "display only"
    );
}

#[test]
fn docs_list_every_topic_filter_and_event() {
    let doc = include_str!("../../../docs/topics.md");
    for t in all() {
        assert!(doc.contains(t.url), "{}", t.url);
        for e in t.events {
            assert!(doc.contains(e), "{e}");
        }
        for f in t.filters {
            assert!(doc.contains(&format!("`{}`", f.param)), "{}", f.param);
        }
        if let Some(dv) = t.davinci_event {
            assert!(doc.contains(dv), "{dv}");
        }
    }
}
