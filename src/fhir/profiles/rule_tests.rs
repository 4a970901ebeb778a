//! Each kind of check, and each refusal at load, on small profiles built here.

use serde_json::{json, Value};

use super::load::compile;
use super::tests::{brief, check, one, sd, vs, BASE};
use super::*;

#[test]
fn every_occurrence_of_the_parent_is_checked() {
    let p = one(
        "CarePlan",
        json!([{"path": "CarePlan.activity.detail", "min": 1},
        {"path": "CarePlan.activity.detail.status", "fixedCode": "scheduled"}]),
    );
    let plan = json!({"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/1"},
        "activity": [{"detail": {"status": "scheduled"}}, {"progress": [{"text": "x"}]}, {"detail": {"status": "completed"}}]});
    assert_eq!(
        check(&p, "CarePlan", plan),
        [
            ("error", "required", "CarePlan.activity[1].detail".into()),
            (
                "error",
                "value",
                "CarePlan.activity[2].detail.status".into()
            ),
        ]
    );
}

#[test]
fn choice_types_reference_targets_and_patterns() {
    let p = one(
        "ServiceRequest",
        json!([
        {"path": "ServiceRequest.occurrence[x]", "type": [{"code": "dateTime"}, {"code": "Period"}]},
        {"path": "ServiceRequest.requester", "type": [{"code": "Reference",
            "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Practitioner"]}]},
        {"path": "ServiceRequest.code", "patternCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}},
        {"path": "ServiceRequest.performer", "max": "1"},
        {"path": "ServiceRequest.note", "max": "0"}]),
    );
    let sr = |extra: Value| {
        let mut v = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/1"}, "contained": [{"resourceType": "Patient", "id": "c1"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let ok = sr(
        json!({"occurrencePeriod": {"start": "2024"}, "requester": {"reference": "Practitioner/1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "1"},
            {"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}], "text": "x"}}),
    );
    assert_eq!(check(&p, "ServiceRequest", ok), []);
    let bad = sr(
        json!({"occurrenceTiming": {"event": ["2024"]}, "requester": {"reference": "#c1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
        "performer": [{"reference": "Organization/1"}, {"reference": "Organization/2"}], "note": [{"text": "n"}]}),
    );
    assert_eq!(
        check(&p, "ServiceRequest", bad),
        [
            (
                "error",
                "structure",
                "ServiceRequest.occurrenceTiming".into()
            ),
            ("error", "value", "ServiceRequest.requester".into()),
            ("error", "value", "ServiceRequest.code".into()),
            ("error", "structure", "ServiceRequest.performer".into()),
            ("error", "structure", "ServiceRequest.note".into()),
        ]
    );
    // urn: references resolve through the transaction's other entries.
    let r = sr(json!({"requester": {"reference": "urn:uuid:1"}}));
    let url = format!("{BASE}test-ServiceRequest");
    let local: LocalRefs = [("urn:uuid:1".to_owned(), "Organization".to_owned())].into();
    assert_eq!(
        brief(&p.validate_with(&r, &url, &local))[0].2,
        "ServiceRequest.requester"
    );
    assert_eq!(p.validate(&r, &url), []);
}

#[test]
fn required_bindings_on_codes_codings_and_concepts() {
    let vs_url = "http://example.org/ValueSet/t";
    let p = compile(vec![
        vs(vs_url, "http://hl7.org/fhir/consent-provision-type", &["permit"]),
        vs("http://example.org/ValueSet/purpose", "http://terminology.hl7.org/CodeSystem/v3-ActReason", &["TREAT"]),
        sd("Consent", json!([
            {"path": "Consent.provision.type", "binding": {"strength": "required", "valueSet": vs_url}},
            {"path": "Consent.provision.purpose", "binding": {"strength": "required", "valueSet": "http://example.org/ValueSet/purpose|1.0"}},
            {"path": "Consent.category", "binding": {"strength": "required", "valueSet": "http://example.org/ValueSet/elsewhere"}},
            {"path": "Consent.scope", "binding": {"strength": "required", "valueSet": vs_url}},
            {"path": "Consent.provision.action", "binding": {"strength": "extensible", "valueSet": "http://example.org/ValueSet/elsewhere"}}])),
    ]).unwrap();
    assert_eq!(p.notes().len(), 1, "{:?}", p.notes());
    let consent = json!({"resourceType": "Consent", "status": "active", "scope": {"text": "privacy"},
        "category": [{"text": "c"}], "provision": {"type": "deny", "action": [{"text": "a"}],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}, {"code": "TREAT"}]}});
    assert_eq!(
        check(&p, "Consent", consent),
        [
            ("error", "code-invalid", "Consent.provision.type".into()),
            (
                "error",
                "code-invalid",
                "Consent.provision.purpose[1]".into()
            ),
            ("warning", "not-supported", "Consent.category[0]".into()),
            ("error", "code-invalid", "Consent.scope".into()),
        ]
    );
}

#[test]
fn constraints_not_evaluated_are_reported_never_passed() {
    let p = one(
        "ServiceRequest",
        json!([{"path": "ServiceRequest", "constraint": [
        {"key": "t-1", "severity": "error", "human": "h", "expression": "reasonCode.count() > 0"},
        {"key": "t-2", "severity": "error", "human": "h"}]}]),
    );
    assert_eq!(p.notes().len(), 2);
    let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/1"}});
    let issues = p.validate(&sr, &format!("{BASE}test-ServiceRequest"));
    assert_eq!(
        brief(&issues),
        [
            ("warning", "not-supported", "ServiceRequest".into()),
            ("warning", "not-supported", "ServiceRequest".into()),
        ]
    );
    assert!(issues[0].message.contains("t-1") && issues[0].message.contains("not evaluated"));
}

#[test]
fn refuses_profiles_it_cannot_enforce() {
    let bad = [
        (
            json!([{"path": "Encounter.identifier", "slicing": {"rules": "open"}}]),
            "uses 'slicing'",
        ),
        (
            json!([{"id": "Encounter.identifier:mrn", "path": "Encounter.identifier"}]),
            "slices",
        ),
        (
            json!([{"path": "Encounter.identifier.value", "maxLength": 10}]),
            "uses 'maxLength'",
        ),
        (
            json!([{"path": "Encounter.colour", "min": 1}]),
            "no element 'colour'",
        ),
        (
            json!([{"path": "Patient.gender", "min": 1}]),
            "must start with Encounter",
        ),
        (
            json!([{"path": "Encounter.status", "min": 0}]),
            "below the R4 minimum",
        ),
        (
            json!([{"path": "Encounter.subject", "max": "2"}]),
            "exceeds the R4 maximum",
        ),
        (
            json!([{"path": "Encounter.subject", "type": [{"code": "Reference", "targetProfile": ["http://example.org/SD/x"]}]}]),
            "neither an R4 resource nor a profile",
        ),
        (
            json!([{"path": "Encounter.subject", "type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Device"]}]}]),
            "refer to Device",
        ),
        (
            json!([{"path": "Encounter.period", "fixedCode": "x"}]),
            "fixedCode does not match",
        ),
        (
            json!([{"path": "Encounter.period", "binding": {"strength": "required", "valueSet": "http://x"}}]),
            "checked on code, Coding and CodeableConcept only",
        ),
        (
            json!([{"path": "Encounter", "binding": {"strength": "required", "valueSet": "http://x"}}]),
            "'binding' on the resource element",
        ),
        (
            json!([{"path": "Encounter.status"}, {"path": "Encounter.status"}]),
            "given twice",
        ),
        (json!([]), "no differential.element"),
    ];
    for (elements, why) in bad {
        let e = compile(vec![sd("Encounter", elements.clone())]).err();
        let e = e.map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(
            e.contains(why) && e.contains("test.json"),
            "{elements}: {e}"
        );
    }
    let mut derived = sd("Encounter", json!([{"path": "Encounter.status"}]));
    derived.1["derivation"] = json!("specialization");
    assert!(compile(vec![derived]).is_err());
    let mut filtered = vs("http://x", "http://s", &["a"]);
    filtered.1["compose"]["include"][0]["filter"] =
        json!([{"property": "concept", "op": "is-a", "value": "a"}]);
    assert!(compile(vec![filtered]).is_err());
}

#[test]
fn a_malformed_file_is_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("handoff-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a-good.json"),
        serde_json::to_vec(&vs("http://x", "http://s", &["a"]).1).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("broken.json"), "{").unwrap();
    let e = format!("{:#}", Profiles::load_dir(&dir).err().unwrap());
    assert!(e.contains("broken.json") && e.contains("not JSON"), "{e}");
    std::fs::write(
        dir.join("broken.json"),
        r#"{"resourceType": "ValueSet", "status": "wrong"}"#,
    )
    .unwrap();
    let e = format!("{:#}", Profiles::load_dir(&dir).err().unwrap());
    assert!(
        e.contains("broken.json") && e.contains("ValueSet.status"),
        "{e}"
    );
    std::fs::remove_file(dir.join("broken.json")).unwrap();
    assert_eq!(Profiles::load_dir(&dir).unwrap().valueset_count(), 1);
    assert!(Profiles::load_configured(Some(&dir.join("absent"))).is_err());
    let _ = std::fs::remove_dir_all(dir);
}
