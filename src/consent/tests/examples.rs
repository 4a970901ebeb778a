//! The official R4 Consent examples (tests/data/hl7-r4-examples), read through
//! `ConsentDirective::from_consent` as the store does.

use serde_json::Value;

use super::*;

fn example(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/hl7-r4-examples/Consent-consent-example-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn consent(name: &str) -> ConsentDirective {
    ConsentDirective::from_consent(&example(name))
}

const F001: &str = "Patient/f001";
const GOOD_HEALTH: &str = "Organization/f001";

#[test]
fn not_org_withholds_everything_from_good_health_clinic() {
    // Base provision: deny, actor PRCP Organization/f001, actions access and correct.
    let c = consent("notOrg");
    let to_clinic = ask(&[PCP, GOOD_HEALTH]).patient(F001);
    assert_by(
        &to_clinic.run(&[&c], &permit_all()),
        Decision::Deny,
        "Consent/consent-example-notOrg",
    );
    // Anyone else: the directive is silent.
    assert_policy(
        &ask(&[PCP]).patient(F001).run(&[&c], &permit_all()),
        Decision::Permit,
    );
    // Another patient's request: the directive is not theirs.
    assert_policy(
        &to_clinic.patient(PATIENT).run(&[&c], &permit_all()),
        Decision::Permit,
    );
}

#[test]
fn not_them_has_no_root_type_and_is_read_as_the_deny_its_narrative_states() {
    // "withhold or withdraw consent for disclosure to a specific provider agent".
    let c = consent("notThem");
    let nurse = ask(&["Practitioner/f204"]).patient(F001);
    assert_by(
        &nurse.run(&[&c], &permit_all()),
        Decision::Deny,
        "Consent/consent-example-notThem",
    );
    assert_policy(
        &ask(&[PCP]).patient(F001).run(&[&c], &permit_all()),
        Decision::Permit,
    );
}

#[test]
fn not_time_counts_only_in_its_period() {
    let c = consent("notTime"); // period 2015-01-01 .. 2015-02-01, no root type
    let then = ask(&[PCP]).patient(F001).at("2015-01-15T10:00:00+01:00");
    assert_by(
        &then.run(&[&c], &permit_all()),
        Decision::Deny,
        "Consent/consent-example-notTime",
    );
    assert_policy(
        &ask(&[PCP]).patient(F001).run(&[&c], &permit_all()),
        Decision::Permit,
    );
}

#[test]
fn not_this_withholds_the_task_and_whatever_may_relate_to_it() {
    // data: related Task/example3. The request does not say what links to the Task, so
    // every item is withheld (a deny applies where it cannot be ruled out).
    let c = consent("notThis");
    let task = ask(&[PCP])
        .patient(F001)
        .data(vec![item("Task/example3", &[], None)]);
    assert_by(
        &task.run(&[&c], &permit_all()),
        Decision::Deny,
        "Consent/consent-example-notThis",
    );
    let other = ask(&[PCP])
        .patient(F001)
        .data(vec![item("Encounter/f001", &[], None)]);
    assert_by(
        &other.run(&[&c], &permit_all()),
        Decision::Deny,
        "Consent/consent-example-notThis",
    );
}

#[test]
fn smart_on_fhir_permits_medication_requests_for_half_an_hour() {
    // Root without type (read as deny) over 17:02:33..17:32:33 +10:00; a nested permit
    // for access to MedicationRequest.
    let c = consent("smartonfhir");
    let data = vec![
        item("MedicationRequest/m1", &[], None),
        item("Observation/o1", &[], None),
    ];
    let during = ask(&["Device/app"])
        .patient("Patient/xcda")
        .data(data.clone());
    let o = during.at("2016-06-23T07:10:00Z").run(&[&c], &permit_all());
    assert_eq!(o.decision, Decision::Permit);
    assert_eq!(
        o.consent.as_deref(),
        Some("Consent/consent-example-smartonfhir")
    );
    assert_eq!(o.excluded, ["Observation/o1"]);
    let after = ask(&["Device/app"])
        .patient("Patient/xcda")
        .data(data)
        .at("2016-06-23T17:40:00+10:00");
    assert_policy(&after.run(&[&c], &deny_all()), Decision::Deny);
}

#[test]
fn pkb_with_its_rule_types_stated_sends_normal_data_and_withholds_sensitive_data() {
    // The Patients Know Best example: access for Organization/f001 to normal (N) data,
    // with nested rules by label: PSY, SPI, SEX (v3-ActCode) and N again. R4 requires a
    // type on nested rules and the example leaves all of them out; state them as the
    // screen it encodes means: permit the base and N, deny the sensitive labels.
    let mut v = example("pkb");
    v["provision"]["type"] = "permit".into();
    for nested in v["provision"]["provision"].as_array_mut().unwrap() {
        let sensitive = nested["securityLabel"][0]["system"] == ACT_CODE;
        nested["type"] = if sensitive { "deny" } else { "permit" }.into();
    }
    let c = ConsentDirective::from_consent(&v);
    assert!(c.check().is_empty(), "{:?}", c.check());
    const N: (&str, &str) = (CONFIDENTIALITY, "N");
    let data = vec![
        item("Encounter/e1", &[N], Some("2016-05-01")),
        item("Observation/psy", &[N, (ACT_CODE, "PSY")], None),
        item("Condition/hiv", &[N, (ACT_CODE, "SPI")], None),
        item("Observation/restricted", &[(CONFIDENTIALITY, "R")], None),
    ];
    let clinic = ask(&[GOOD_HEALTH])
        .patient("Patient/example")
        .data(data)
        .at("2016-07-01");
    let o = clinic.run(&[&c], &deny_all());
    assert_eq!(o.decision, Decision::Permit);
    assert_eq!(o.consent.as_deref(), Some("Consent/consent-example-pkb"));
    // PSY and SPI by the nested denies; R is above the base's N, so the policy decides.
    assert_eq!(
        o.excluded,
        ["Observation/psy", "Condition/hiv", "Observation/restricted"]
    );
    assert!(
        o.reason
            .starts_with("TREAT: Consent/consent-example-pkb permits; 3 of 4"),
        "{}",
        o.reason
    );
    // As published (no types at all) it denies: the gateway does not guess.
    let as_published = consent("pkb");
    let normal = ask(&[GOOD_HEALTH])
        .patient("Patient/example")
        .data(vec![item("Encounter/e1", &[N], None)]);
    let o = normal.at("2016-07-01").run(&[&as_published], &permit_all());
    assert_by(&o, Decision::Deny, "Consent/consent-example-pkb");
}

#[test]
fn a_patient_with_several_official_directives_on_file() {
    // Patient f001 has notOrg, notThem and notTime on file (with basic, whose period
    // ended in 2016, and Emergency, which names Good Health as custodian only).
    let on_file: Vec<ConsentDirective> = ["notOrg", "notThem", "notTime", "basic", "Emergency"]
        .into_iter()
        .map(consent)
        .collect();
    let refs: Vec<&ConsentDirective> = on_file.iter().collect();
    let policy = Policy {
        default_by_purpose: vec![("TREAT".into(), Decision::Deny)],
        default_otherwise: Decision::Deny,
        pcp_treatment_without_consent: true,
    };
    let pcp = ask(&["Practitioner/f201", "Organization/f201"])
        .patient(F001)
        .recipient_is_pcp();
    assert_policy(&pcp.run(&refs, &policy), Decision::Permit);
    let o = ask(&["Practitioner/f204", GOOD_HEALTH])
        .patient(F001)
        .run(&refs, &policy);
    assert_eq!(o.decision, Decision::Deny);
    assert_eq!(o.consent.as_deref(), Some("Consent/consent-example-notOrg"));
    assert_eq!(
        o.reason,
        "TREAT: Consent/consent-example-notOrg, Consent/consent-example-notThem deny"
    );
}

#[test]
fn every_official_example_evaluates_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hl7-r4-examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name
            .strip_prefix("Consent-consent-example-")
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let c = consent(stem);
        let patient: &'static str =
            Box::leak(c.patient.reference.clone().unwrap().into_boxed_str());
        for at in ["2016-06-23T07:10:00Z", "2015-01-15", NOW] {
            let o = ask(&[GOOD_HEALTH, "Practitioner/13", "Practitioner/f204"])
                .patient(patient)
                .at(at)
                .run(&[&c], &permit_all());
            if let Some(id) = &o.consent {
                assert_eq!(id, &format!("Consent/{}", c.id.clone().unwrap()));
            }
        }
        seen += 1;
    }
    assert_eq!(seen, 12);
}
