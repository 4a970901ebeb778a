//! One directive at a time: the base type, exceptions, and the criteria about the
//! recipient, the purpose and the time.

use super::*;

#[test]
fn a_permit_to_the_named_recipient_permits() {
    let c = directive("c1", permit().actor(PCP, "PRCP").purpose("TREAT"));
    let o = ask(&[PCP, PRACTICE]).run(&[&c], &deny_all());
    assert_by(&o, Decision::Permit, "Consent/c1");
    assert_eq!(o.reason, "TREAT: Consent/c1 permits");
}

#[test]
fn a_deny_to_the_named_recipient_denies() {
    let c = directive("c1", deny().actor(CARDIOLOGY, "PRCP"));
    let o = ask(&[CARDIOLOGY]).run(&[&c], &permit_all());
    assert_by(&o, Decision::Deny, "Consent/c1");
    assert_eq!(o.reason, "TREAT: Consent/c1 denies");
}

#[test]
fn a_nested_deny_by_security_label_withholds_those_items_only() {
    let c = directive(
        "c1",
        permit()
            .actor(PCP, "PRCP")
            .except(deny().label(PSY.0, PSY.1).label(ETH.0, ETH.1)),
    );
    let data = vec![
        encounter(),
        item("Observation/2", &[PSY], None),
        item("Condition/3", &[(CONFIDENTIALITY, "R"), ETH], None),
    ];
    let o = ask(&[PCP]).data(data).run(&[&c], &deny_all());
    assert_eq!(o.decision, Decision::Permit);
    assert_eq!(o.consent.as_deref(), Some("Consent/c1"));
    assert_eq!(o.excluded, ["Observation/2", "Condition/3"]);
    assert_eq!(
        o.reason,
        "TREAT: Consent/c1 permits; 2 of 3 data items withheld (minimum necessary): Consent/c1 denies"
    );
}

#[test]
fn when_every_item_is_withheld_the_answer_is_deny() {
    let c = directive(
        "c1",
        permit()
            .actor(PCP, "PRCP")
            .except(deny().label(PSY.0, PSY.1)),
    );
    let data = vec![
        item("Observation/2", &[PSY], None),
        item("Observation/3", &[PSY], None),
    ];
    let o = ask(&[PCP]).data(data).run(&[&c], &permit_all());
    assert_by(&o, Decision::Deny, "Consent/c1");
    assert_eq!(
        o.reason,
        "TREAT: every data item is withheld: Consent/c1 denies"
    );
}

#[test]
fn a_nested_permit_makes_an_exception_to_a_base_deny() {
    // Deny everyone, except the PCP for treatment, except psychiatric data.
    let c = directive(
        "c1",
        deny().except(
            permit()
                .actor(PCP, "PRCP")
                .purpose("TREAT")
                .except(deny().label(PSY.0, PSY.1)),
        ),
    );
    let policy = permit_all();
    assert_by(
        &ask(&[PCP]).run(&[&c], &policy),
        Decision::Permit,
        "Consent/c1",
    );
    assert_by(
        &ask(&[PCP]).purpose("HPAYMT").run(&[&c], &policy),
        Decision::Deny,
        "Consent/c1",
    );
    assert_by(
        &ask(&[CARDIOLOGY]).run(&[&c], &policy),
        Decision::Deny,
        "Consent/c1",
    );
    let data = vec![encounter(), item("Observation/2", &[PSY], None)];
    let o = ask(&[PCP]).data(data).run(&[&c], &policy);
    assert_eq!(
        (o.decision, o.excluded),
        (Decision::Permit, vec!["Observation/2".to_owned()])
    );
}

#[test]
fn exceptions_that_disagree_deny() {
    let c = directive(
        "c1",
        deny()
            .except(permit().actor(PCP, "PRCP"))
            .except(permit().purpose("TREAT").except(deny())),
    );
    assert_by(
        &ask(&[PCP]).run(&[&c], &permit_all()),
        Decision::Deny,
        "Consent/c1",
    );
    assert_by(
        &ask(&[PCP]).purpose("HOPERAT").run(&[&c], &deny_all()),
        Decision::Permit,
        "Consent/c1",
    );
}

#[test]
fn an_actor_matches_by_any_reference_the_recipient_answers_to() {
    // The consent names the practice; the notification goes to a practitioner there.
    let c = directive("c1", permit().actor(PRACTICE, "PRCP"));
    assert_by(
        &ask(&[PCP, PRACTICE]).run(&[&c], &deny_all()),
        Decision::Permit,
        "Consent/c1",
    );
    assert_policy(&ask(&[PCP]).run(&[&c], &deny_all()), Decision::Deny);
    assert_policy(&ask(&[CARDIOLOGY]).run(&[&c], &deny_all()), Decision::Deny);
    // Versioned and absolute forms of the same reference.
    let v = directive(
        "v",
        permit().actor("Organization/practice/_history/3", "PRCP"),
    );
    assert_by(
        &ask(&[PRACTICE]).run(&[&v], &deny_all()),
        Decision::Permit,
        "Consent/v",
    );
    let abs = directive(
        "abs",
        deny().actor("https://other.example/fhir/Organization/practice", "PRCP"),
    );
    // Same Type/id on maybe another server: a deny applies, a permit would not.
    assert_by(
        &ask(&[PRACTICE]).run(&[&abs], &permit_all()),
        Decision::Deny,
        "Consent/abs",
    );
    let abs_permit = directive(
        "abs",
        permit().actor("https://other.example/fhir/Organization/practice", "PRCP"),
    );
    assert_policy(
        &ask(&[PRACTICE]).run(&[&abs_permit], &deny_all()),
        Decision::Deny,
    );
}

#[test]
fn an_actor_matches_only_in_a_role_the_recipient_holds() {
    // CST (custodian) is the data holder, not a recipient.
    let custodian = directive("c1", permit().actor(PRACTICE, "CST"));
    assert_policy(
        &ask(&[PRACTICE]).run(&[&custodian], &deny_all()),
        Decision::Deny,
    );
    let as_custodian = ask(&[PRACTICE]).roles(&[(PARTICIPATION, "CST")]);
    assert_by(
        &as_custodian.run(&[&custodian], &deny_all()),
        Decision::Permit,
        "Consent/c1",
    );
    // A caller that gives no roles: a deny naming the recipient applies, a permit does not.
    let no_roles = ask(&[PRACTICE]).roles(&[]);
    let d = directive("d", deny().actor(PRACTICE, "PRCP"));
    assert_by(
        &no_roles.run(&[&d], &permit_all()),
        Decision::Deny,
        "Consent/d",
    );
    let p = directive("p", permit().actor(PRACTICE, "PRCP"));
    assert_policy(&no_roles.run(&[&p], &deny_all()), Decision::Deny);
}

#[test]
fn another_purpose_is_not_covered() {
    let c = directive("c1", permit().actor(PCP, "PRCP").purpose("TREAT"));
    let o = ask(&[PCP]).purpose("HPAYMT").run(&[&c], &deny_all());
    assert_policy(&o, Decision::Deny);
    assert_eq!(
        o.reason,
        "HPAYMT: no consent on file covers it: the policy default for other purposes denies"
    );
    // No purpose hierarchy: TREAT does not cover ETREAT.
    assert_policy(
        &ask(&[PCP]).purpose("ETREAT").run(&[&c], &deny_all()),
        Decision::Deny,
    );
    let etreat = directive("e", permit().purpose("ETREAT").purpose("TREAT"));
    assert_by(
        &ask(&[PCP]).purpose("ETREAT").run(&[&etreat], &deny_all()),
        Decision::Permit,
        "Consent/e",
    );
}

#[test]
fn a_directive_counts_only_within_its_period() {
    let p = directive("p", permit().period(Some("2025-07-01"), Some("2025-12-31")));
    let not_yet = ask(&[PCP]);
    assert_policy(&not_yet.run(&[&p], &deny_all()), Decision::Deny);
    let last_day = ask(&[PCP]).at("2025-12-31T23:59:59Z");
    assert_by(
        &last_day.run(&[&p], &deny_all()),
        Decision::Permit,
        "Consent/p",
    );
    let ended = ask(&[PCP]).at("2026-01-01T00:00:00Z");
    assert_policy(&ended.run(&[&p], &deny_all()), Decision::Deny);
    let zoned = ask(&[PCP]).at("2025-12-31T23:30:00-05:00"); // 04:30Z on 1 January
    assert_policy(&zoned.run(&[&p], &deny_all()), Decision::Deny);
    // An ended deny no longer denies: the policy decides again.
    let d = directive("d", deny().period(Some("2024-01-01"), Some("2024-12-31")));
    assert_policy(&ask(&[PCP]).run(&[&d], &permit_all()), Decision::Permit);
    // A request time only known to the day straddles a period starting at noon: a deny
    // applies, a permit does not.
    let noon = directive("n", deny().period(Some("2025-06-01T12:00:00Z"), None));
    assert_by(
        &ask(&[PCP]).at("2025-06-01").run(&[&noon], &permit_all()),
        Decision::Deny,
        "Consent/n",
    );
}

#[test]
fn a_nested_period_limits_the_exception() {
    let c = directive(
        "c",
        permit().except(
            deny()
                .actor(CARDIOLOGY, "PRCP")
                .period(None, Some("2025-03-01")),
        ),
    );
    assert_by(
        &ask(&[CARDIOLOGY])
            .at("2025-02-01T00:00:00Z")
            .run(&[&c], &deny_all()),
        Decision::Deny,
        "Consent/c",
    );
    assert_by(
        &ask(&[CARDIOLOGY]).run(&[&c], &deny_all()),
        Decision::Permit,
        "Consent/c",
    );
}
