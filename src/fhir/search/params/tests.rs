use super::*;
use serde_json::json;

#[test]
fn extracts_tokens_refs_dates() {
    let sr = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "identifier": [{"system": "urn:sys", "value": "A1"}],
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
        "subject": {"reference": "Patient/p1"},
        "requester": {"reference": "https://other.example/fhir/Practitioner/dr/_history/2"},
        "authoredOn": "2024-03-01"
    });
    let e = index_entries("ServiceRequest", &sr);
    assert!(e.contains(&IndexEntry {
        param: "status",
        value: IndexValue::Token {
            system: None,
            code: "active".into()
        }
    }));
    assert!(e.contains(&IndexEntry {
        param: "identifier",
        value: IndexValue::Token {
            system: Some("urn:sys".into()),
            code: "A1".into()
        }
    }));
    assert!(e.contains(&IndexEntry {
        param: "patient",
        value: IndexValue::Ref("Patient/p1".into())
    }));
    assert!(e.contains(&IndexEntry {
        param: "requester",
        value: IndexValue::Ref("Practitioner/dr".into())
    }));
    let authored = e.iter().find(|x| x.param == "authored").unwrap();
    assert!(matches!(authored.value, IndexValue::Date { lo, hi } if hi - lo == 86_400_000_000));
}

#[test]
fn a_reference_is_indexed_only_for_the_parameters_that_may_hold_its_type() {
    let audit = json!({
        "resourceType": "AuditEvent",
        "agent": [{"who": {"reference": "Practitioner/dr"}}],
        "entity": [
            {"what": {"reference": "Patient/p1"}},
            {"what": {"reference": "Encounter/e1"}},
            {"what": {"reference": "Subscription/s1"}}
        ]
    });
    let refs = |rtype: &str, r: &Value, param: &str| -> Vec<String> {
        index_entries(rtype, r)
            .into_iter()
            .filter(|e| e.param == param)
            .filter_map(|e| match e.value {
                IndexValue::Ref(t) => Some(t),
                _ => None,
            })
            .collect()
    };
    assert_eq!(refs("AuditEvent", &audit, "patient"), ["Patient/p1"]);
    assert_eq!(refs("AuditEvent", &audit, "entity").len(), 3);
    assert_eq!(refs("AuditEvent", &audit, "agent"), ["Practitioner/dr"]);
    let condition = json!({"resourceType": "Condition", "subject": {"reference": "Group/g1"}});
    assert_eq!(refs("Condition", &condition, "subject"), ["Group/g1"]);
    assert!(refs("Condition", &condition, "patient").is_empty());
    // A parameter FHIR does not restrict by type holds every reference of its element,
    // of a type the gateway's target list names or not.
    let sr = json!({"resourceType": "ServiceRequest", "performer": [{"reference": "CareTeam/ct"}]});
    assert_eq!(refs("ServiceRequest", &sr, "performer"), ["CareTeam/ct"]);
    let task = json!({"resourceType": "Task", "focus": {"reference": "DocumentReference/d"}});
    assert_eq!(refs("Task", &task, "focus"), ["DocumentReference/d"]);
}

#[test]
fn open_period_is_unbounded() {
    let enc = json!({"resourceType": "Encounter", "period": {"start": "2024-01-01T10:00:00Z"}});
    let e = index_entries("Encounter", &enc);
    assert!(matches!(e[0].value, IndexValue::Date { hi: i64::MAX, .. }));
}

#[test]
fn local_and_urn_references_are_not_indexed() {
    assert_eq!(normalize_reference("#p1"), None);
    assert_eq!(normalize_reference("urn:uuid:1234"), None);
    assert_eq!(normalize_reference("Patient/1"), Some("Patient/1".into()));
}

#[test]
fn a_parameter_stored_as_another_is_that_ones_element_narrowed() {
    let mut twins = 0;
    for (rtype, defs) in SUPPORTED {
        for d in defs.iter().filter(|d| d.stored_as.is_some()) {
            let twin = lookup(rtype, d.rows_of()).expect("the twin is a parameter of the type");
            assert!(
                d.typed && !twin.typed && twin.stored_as.is_none(),
                "{rtype} {}",
                d.name
            );
            assert_eq!(
                (d.kind, twin.kind),
                (ParamKind::Reference, ParamKind::Reference)
            );
            assert_eq!(d.paths, twin.paths, "{rtype} {}", d.name);
            assert!(
                d.targets.iter().all(|t| twin.targets.contains(t)),
                "{rtype} {}",
                d.name
            );
            twins += 1;
        }
    }
    assert_eq!(twins, 6);
}

#[test]
fn stored_entries_leave_out_what_a_twin_holds() {
    let enc = json!({"resourceType": "Encounter", "status": "finished",
        "subject": {"reference": "Patient/p1"},
        "participant": [{"individual": {"reference": "Practitioner/d1"}}]});
    let params = |e: Vec<IndexEntry>| e.into_iter().map(|e| e.param).collect::<Vec<_>>();
    assert_eq!(
        params(index_entries("Encounter", &enc)),
        [
            "status",
            "subject",
            "patient",
            "participant",
            "practitioner"
        ]
    );
    assert_eq!(
        params(stored_entries("Encounter", &enc)),
        ["status", "subject", "participant"]
    );
    // Consent's `patient` has no twin: it keeps its rows.
    let consent = json!({"resourceType": "Consent", "patient": {"reference": "Patient/p1"}});
    assert_eq!(params(stored_entries("Consent", &consent)), ["patient"]);
}
