//! The shipped profiles against the fixtures; helpers for `rule_tests`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::load::compile;
use super::*;
use crate::fhir::validate;

pub(super) const BASE: &str = "http://handoff.example.org/fhir/StructureDefinition/";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn shipped() -> Profiles {
    Profiles::load_dir(&repo("profiles")).expect("the shipped profiles load")
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read(repo(&format!("fixtures/profiles/{name}"))).unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// (severity, code, expression) of each issue.
pub(super) fn brief(issues: &[Issue]) -> Vec<(&'static str, &'static str, String)> {
    issues
        .iter()
        .map(|i| {
            (
                i.severity.as_str(),
                i.code.as_str(),
                i.expression.clone().unwrap_or_default(),
            )
        })
        .collect()
}

pub(super) fn sd(rtype: &str, elements: Value) -> (String, Value) {
    let doc = json!({"resourceType": "StructureDefinition", "url": format!("{BASE}test-{rtype}"),
        "name": "Test", "status": "draft", "kind": "resource", "abstract": false, "type": rtype,
        "baseDefinition": format!("http://hl7.org/fhir/StructureDefinition/{rtype}"),
        "derivation": "constraint", "differential": {"element": elements}});
    ("test.json".into(), doc)
}

pub(super) fn vs(url: &str, system: &str, codes: &[&str]) -> (String, Value) {
    let concept: Vec<Value> = codes.iter().map(|c| json!({"code": c})).collect();
    let doc = json!({"resourceType": "ValueSet", "url": url, "status": "draft",
        "compose": {"include": [{"system": system, "concept": concept}]}});
    ("vs.json".into(), doc)
}

pub(super) fn one(rtype: &str, elements: Value) -> Profiles {
    compile(vec![sd(rtype, elements)]).unwrap()
}

pub(super) fn check(
    p: &Profiles,
    rtype: &str,
    resource: Value,
) -> Vec<(&'static str, &'static str, String)> {
    brief(&p.validate(&resource, &format!("{BASE}test-{rtype}")))
}

#[test]
fn the_shipped_profiles_load_with_nothing_left_unchecked() {
    let p = shipped();
    assert_eq!(p.len(), 5);
    assert_eq!(p.valueset_count(), 3);
    assert_eq!(p.notes(), &[] as &[String]);
    assert_eq!(
        p.by_type()["Encounter"],
        [format!("{BASE}handoff-discharge-encounter")]
    );
}

#[test]
fn the_fixtures_get_exactly_the_expected_issues() {
    let p = shipped();
    // (fixture, [(severity, code, expression)])
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str, &'static str)],
    );
    let cases: &[Case] = &[
        ("referral.json", &[]),
        ("referral-task.json", &[]),
        ("discharge.json", &[]),
        ("careplan.json", &[]),
        ("consent.json", &[]),
        (
            "referral-no-reason.json",
            &[("error", "invariant", "ServiceRequest")],
        ),
        (
            "referral-no-supporting-info.json",
            &[("warning", "invariant", "ServiceRequest.supportingInfo")],
        ),
        (
            "discharge-no-end.json",
            &[("error", "required", "Encounter.period.end")],
        ),
        (
            "discharge-bad-disposition.json",
            &[(
                "error",
                "code-invalid",
                "Encounter.hospitalization.dischargeDisposition.coding[0]",
            )],
        ),
        (
            "careplan-no-goal-or-activity.json",
            &[("error", "invariant", "CarePlan")],
        ),
        (
            "consent-no-actor.json",
            &[("error", "required", "Consent.provision.actor")],
        ),
    ];
    for (name, expected) in cases {
        let r = fixture(name);
        assert_eq!(validate::validate(&r), vec![], "{name} is not valid R4");
        let got = p.check_claimed(&r, &LocalRefs::new());
        let want: Vec<_> = expected
            .iter()
            .map(|(s, c, e)| (*s, *c, e.to_string()))
            .collect();
        assert_eq!(brief(&got), want, "{name}: {got:?}");
    }
    let no_end = p.check_claimed(&fixture("discharge-no-end.json"), &LocalRefs::new());
    assert_eq!(
        no_end[0].message,
        format!("Encounter.period.end is missing: profile {BASE}handoff-discharge-encounter requires it")
    );
    let no_reason = p.check_claimed(&fixture("referral-no-reason.json"), &LocalRefs::new());
    assert_eq!(
        no_reason[0].message,
        format!("Constraint hrsr-1 of profile {BASE}handoff-referral-servicerequest failed: A referral gives its reason (reasonCode or reasonReference)")
    );
    let bad = p.check_claimed(
        &fixture("discharge-bad-disposition.json"),
        &LocalRefs::new(),
    );
    assert!(bad[0].message.starts_with("Encounter.hospitalization.dischargeDisposition.coding[0]: code 'nursing-home' (system http://terminology.hl7.org/CodeSystem/discharge-disposition) is not in the value set http://handoff.example.org/fhir/ValueSet/handoff-discharge-disposition required by profile"), "{}", bad[0].message);
    assert!(bad[0].message.ends_with(
        ": one of home, alt-home, other-hcf, hosp, long, aadvice, exp, psy, rehab, snf, oth"
    ));
}

#[test]
fn wrong_types_unknown_profiles_and_odd_input() {
    let p = shipped();
    let disc = format!("{BASE}handoff-discharge-encounter");
    assert_eq!(
        brief(&p.validate(&json!({"resourceType": "Patient"}), &disc)),
        [("error", "invalid", String::new())]
    );
    assert_eq!(
        brief(&p.validate(&json!({}), "http://x/y")),
        [("error", "not-found", String::new())]
    );
    for odd in [
        json!([1]),
        json!("x"),
        json!({"resourceType": "Encounter", "period": [1], "hospitalization": "x",
        "subject": 3, "serviceProvider": {"reference": 7}}),
    ] {
        let _ = p.validate(&odd, &disc);
    }
    let versioned = format!("{disc}|0.1.0");
    assert_eq!(p.validate(&fixture("discharge.json"), &versioned), []);
}

#[test]
fn report_checks_requested_and_claimed_profiles_once() {
    let p = shipped();
    let mut r = fixture("discharge-no-end.json");
    r["meta"]["profile"] = json!([
        format!("{BASE}handoff-discharge-encounter"),
        "http://example.org/other"
    ]);
    let asked = vec![
        format!("{BASE}handoff-discharge-encounter"),
        "http://example.org/unknown".into(),
    ];
    let (issues, checked) = p.report(&r, &asked);
    assert_eq!(checked, [format!("{BASE}handoff-discharge-encounter")]);
    assert_eq!(
        brief(&issues),
        [
            ("error", "required", "Encounter.period.end".into()),
            ("error", "not-found", String::new()),
            (
                "information",
                "informational",
                "Encounter.meta.profile[1]".into()
            ),
        ]
    );
}
