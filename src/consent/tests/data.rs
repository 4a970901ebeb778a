//! The criteria about the data (dataPeriod, class, labels, codes, data references),
//! what cannot be read or checked, and inputs that must not panic.

use super::*;

#[test]
fn data_period_compares_the_clinical_date() {
    let c = directive(
        "c",
        permit().except(deny().data_period(Some("2020-01-01"), Some("2020-06-30"))),
    );
    let data = vec![
        item("Observation/old", &[], Some("2020-03-15T08:00:00Z")),
        item("Observation/new", &[], Some("2024-02-01")),
        item("Observation/december", &[], Some("2020-12")),
        item("Observation/undated", &[], None),
        item("Observation/year", &[], Some("2020")),
        item("Observation/bad", &[], Some("last spring")),
    ];
    let o = ask(&[PCP]).data(data).run(&[&c], &deny_all());
    assert_eq!(o.decision, Decision::Permit);
    // Undated, unreadable or straddling dates cannot be shown to lie outside: the deny
    // applies to them.
    assert_eq!(
        o.excluded,
        [
            "Observation/old",
            "Observation/undated",
            "Observation/year",
            "Observation/bad"
        ]
    );
    // A permit limited to recent data covers only what is surely recent.
    let recent = directive("r", permit().data_period(Some("2024-01-01"), None));
    let data = vec![
        item("Observation/new", &[], Some("2024-02-01")),
        item("Observation/undated", &[], None),
    ];
    let o = ask(&[PCP]).data(data).run(&[&recent], &deny_all());
    assert_eq!(
        (o.decision, o.excluded),
        (Decision::Permit, vec!["Observation/undated".to_owned()])
    );
}

#[test]
fn class_matches_the_resource_type() {
    let c = directive("c", permit().class("Encounter"));
    let data = vec![encounter(), item("Observation/2", &[], None)];
    let o = ask(&[PCP]).data(data).run(&[&c], &deny_all());
    assert_eq!(
        (o.decision, o.excluded.clone()),
        (Decision::Permit, vec!["Observation/2".to_owned()])
    );
    assert!(
        o.reason.contains("1 of 2 data items withheld"),
        "{}",
        o.reason
    );
    // The base definition's URL names the type too; other profiles cannot be told.
    const SD: &str = "http://hl7.org/fhir/StructureDefinition";
    let by_url = permit().class_coding(SD, "http://hl7.org/fhir/StructureDefinition/Encounter");
    let o = ask(&[PCP]).run(&[&directive("u", by_url)], &deny_all());
    assert_by(&o, Decision::Permit, "Consent/u");
    let profile = deny().class_coding(SD, "http://hl7.org/fhir/StructureDefinition/vitalsigns");
    let o = ask(&[PCP]).run(&[&directive("v", profile)], &permit_all());
    assert_by(&o, Decision::Deny, "Consent/v");
    let other_type =
        deny().class_coding("x", "http://hl7.org/fhir/StructureDefinition/Observation");
    assert_policy(
        &ask(&[PCP]).run(&[&directive("o", other_type)], &permit_all()),
        Decision::Permit,
    );
}

#[test]
fn confidentiality_labels_are_a_high_water_mark() {
    let c = directive("c", permit().label(CONFIDENTIALITY, "N"));
    let data = vec![
        item("Observation/n", &[(CONFIDENTIALITY, "N")], None),
        item("Observation/l", &[(CONFIDENTIALITY, "L")], None),
        item("Observation/r", &[(CONFIDENTIALITY, "R")], None),
        item("Observation/unlabelled", &[], None),
    ];
    let o = ask(&[PCP]).data(data).run(&[&c], &deny_all());
    assert_eq!(o.excluded, ["Observation/r", "Observation/unlabelled"]);
}

#[test]
fn criteria_the_request_cannot_show_let_a_deny_apply_but_not_a_permit() {
    // Clinical codes: the request carries none.
    let d = directive(
        "d",
        permit().except(deny().code("http://loinc.org", "34133-9")),
    );
    let o = ask(&[PCP]).run(&[&d], &deny_all());
    assert_by(&o, Decision::Deny, "Consent/d");
    let p = directive("p", permit().code("http://loinc.org", "34133-9"));
    assert_policy(&ask(&[PCP]).run(&[&p], &deny_all()), Decision::Deny);
    // Data related to a resource: only the resource itself is known to be covered.
    let related = directive("r", permit().data("related", "Encounter/1"));
    let data = vec![encounter(), item("Observation/2", &[], None)];
    let o = ask(&[PCP]).data(data.clone()).run(&[&related], &deny_all());
    assert_eq!(o.excluded, ["Observation/2"]);
    let withheld = directive("w", permit().except(deny().data("related", "Encounter/1")));
    assert_by(
        &ask(&[PCP])
            .data(data.clone())
            .run(&[&withheld], &permit_all()),
        Decision::Deny,
        "Consent/w",
    );
    let instance = directive("i", permit().except(deny().data("instance", "Encounter/1")));
    assert_eq!(
        ask(&[PCP])
            .data(data)
            .run(&[&instance], &deny_all())
            .excluded,
        ["Encounter/1"]
    );
}

#[test]
fn actions_other_than_access_or_disclosure_do_not_apply() {
    let correct = directive("c", deny().actor(PCP, "PRCP").action("correct"));
    assert_policy(
        &ask(&[PCP]).run(&[&correct], &permit_all()),
        Decision::Permit,
    );
    let access = directive(
        "a",
        deny().actor(PCP, "PRCP").action("access").action("correct"),
    );
    assert_by(
        &ask(&[PCP]).run(&[&access], &permit_all()),
        Decision::Deny,
        "Consent/a",
    );
    let disclose = directive("d", permit().action("disclose"));
    assert_by(
        &ask(&[PCP]).run(&[&disclose], &deny_all()),
        Decision::Permit,
        "Consent/d",
    );
    let use_only = directive("u", permit().action("use"));
    assert_policy(&ask(&[PCP]).run(&[&use_only], &deny_all()), Decision::Deny);
}

#[test]
fn a_request_without_data_is_about_the_event_only() {
    let c = directive(
        "c",
        permit()
            .actor(PCP, "PRCP")
            .except(deny().label(PSY.0, PSY.1)),
    );
    let o = ask(&[PCP]).data(Vec::new()).run(&[&c], &deny_all());
    assert_by(&o, Decision::Permit, "Consent/c");
    let only_encounters = directive("e", permit().class("Encounter"));
    assert_policy(
        &ask(&[PCP])
            .data(Vec::new())
            .run(&[&only_encounters], &deny_all()),
        Decision::Deny,
    );
}

#[test]
fn what_cannot_be_read_denies() {
    let c = directive("c", permit());
    let o = ask(&[PCP]).at("yesterday").run(&[&c], &permit_all());
    assert_eq!((o.decision, o.consent), (Decision::Deny, None));
    // Provisions without a type, or no provision at all, deny.
    let untyped = directive(
        "t",
        Provision {
            kind: None,
            ..permit().actor(PCP, "PRCP")
        },
    );
    assert_by(
        &ask(&[PCP]).run(&[&untyped], &permit_all()),
        Decision::Deny,
        "Consent/t",
    );
    let nested_untyped = directive(
        "n",
        permit().except(Provision {
            kind: None,
            ..permit().purpose("TREAT")
        }),
    );
    assert_by(
        &ask(&[PCP]).run(&[&nested_untyped], &permit_all()),
        Decision::Deny,
        "Consent/n",
    );
    let mut none = directive("x", permit());
    none.provision = None;
    assert_by(
        &ask(&[PCP]).run(&[&none], &permit_all()),
        Decision::Deny,
        "Consent/x",
    );
    let mut odd = directive("o", permit().period(Some("soon"), None));
    assert_policy(&ask(&[PCP]).run(&[&odd], &deny_all()), Decision::Deny);
    odd.provision = Some(deny().period(Some("soon"), None));
    assert_by(
        &ask(&[PCP]).run(&[&odd], &permit_all()),
        Decision::Deny,
        "Consent/o",
    );
}

#[test]
fn deep_nesting_does_not_overflow() {
    let mut p = deny();
    for i in 0..1_000 {
        p = if i % 2 == 0 {
            permit().except(p)
        } else {
            deny().except(p)
        };
    }
    let c = directive("deep", p);
    let o = ask(&[PCP]).run(&[&c], &permit_all());
    assert_eq!(o.decision, Decision::Deny);
}

mod never_panics {
    use proptest::option::of;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn on_any_strings(
            at in ".{0,32}",
            start in of(".{0,32}"),
            date in of("[0-9T:+Z-]{0,28}"),
            reference in ".{0,24}",
            label in ".{0,6}",
            purpose in ".{0,8}",
        ) {
            let mut c = directive(
                "c",
                permit()
                    .period(start.as_deref(), Some("2030"))
                    .actor(&reference, "PRCP")
                    .except(deny().label(&label, &label).data_period(start.as_deref(), None))
                    .except(permit().data("related", &reference).purpose(&purpose)),
            );
            c.patient = Party::to(reference.clone());
            let labels = [(label.as_str(), label.as_str())];
            let data = [
                DataItem { reference: &reference, resource_type: &reference, security_labels: &labels, date: date.as_deref() },
                DataItem { reference: "", resource_type: "", security_labels: &[], date: None },
            ];
            let references = [reference.as_str(), "/", "//", "a/b/_history/"];
            let req = Request {
                patient: &reference,
                recipient: Recipient { references: &references, roles: &RECIPIENT_ROLES },
                purpose: &purpose,
                data: &data,
                at: &at,
            };
            let o = evaluate(&[&c], &req, &permit_all(), true);
            prop_assert!(o.excluded.len() <= data.len());
        }
    }
}
