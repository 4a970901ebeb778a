//! Several directives (deny wins), directives that do not count, and the no-consent
//! policy in each of its branches.

use super::*;

fn dated(id: &str, date_time: &str, provision: Provision) -> ConsentDirective {
    ConsentDirective {
        date_time: Some(date_time.to_owned()),
        ..directive(id, provision)
    }
}

#[test]
fn of_two_conflicting_directives_the_deny_wins_whatever_their_dates_and_order() {
    let old_deny = dated("old-deny", "2020-01-01", deny().actor(CARDIOLOGY, "PRCP"));
    let new_permit = dated(
        "new-permit",
        "2025-05-01T09:00:00Z",
        permit().actor(CARDIOLOGY, "PRCP"),
    );
    for consents in [[&old_deny, &new_permit], [&new_permit, &old_deny]] {
        let o = ask(&[CARDIOLOGY]).run(&consents, &permit_all());
        assert_by(&o, Decision::Deny, "Consent/old-deny");
        assert_eq!(
            o.reason,
            "TREAT: Consent/old-deny denies (deny wins over Consent/new-permit)"
        );
    }
}

#[test]
fn directives_that_agree_are_all_named() {
    let a = directive("a", permit().actor(PCP, "PRCP"));
    let b = directive("b", permit().purpose("TREAT"));
    let o = ask(&[PCP]).run(&[&a, &b], &deny_all());
    assert_by(&o, Decision::Permit, "Consent/a");
    assert_eq!(o.reason, "TREAT: Consent/a, Consent/b permit");
}

#[test]
fn a_narrow_deny_beside_a_broad_permit_withholds_only_what_it_covers() {
    // The patient permits the PCP; a later directive withholds substance-use data from
    // everyone.
    let broad = directive("broad", permit().actor(PCP, "PRCP"));
    let narrow = directive("narrow", deny().label(ACT_CODE, "ETH"));
    let data = vec![
        encounter(),
        item("Condition/sud", &[(ACT_CODE, "ETH")], None),
    ];
    let o = ask(&[PCP]).data(data).run(&[&broad, &narrow], &deny_all());
    assert_eq!(o.decision, Decision::Permit);
    assert_eq!(o.consent.as_deref(), Some("Consent/broad"));
    assert_eq!(o.excluded, ["Condition/sud"]);
    assert_eq!(
        o.reason,
        "TREAT: Consent/broad permits; 1 of 2 data items withheld (minimum necessary): \
         Consent/narrow denies (deny wins over Consent/broad)"
    );
}

#[test]
fn directives_that_are_not_active_privacy_directives_for_the_patient_are_ignored() {
    let mut ignored = Vec::new();
    for status in [
        "draft",
        "proposed",
        "rejected",
        "inactive",
        "entered-in-error",
    ] {
        ignored.push(ConsentDirective {
            status: status.into(),
            ..directive(status, deny())
        });
    }
    for (system, code) in [
        (
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "research",
        ),
        (
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "treatment",
        ),
        ("http://example.org/scopes", "patient-privacy"),
    ] {
        ignored.push(ConsentDirective {
            scope: Concept::code(system, code),
            ..directive(code, deny())
        });
    }
    ignored.push(ConsentDirective {
        patient: Party::to("Patient/someone-else"),
        ..directive("other-patient", deny())
    });
    ignored.push(ConsentDirective {
        patient: Party::default(),
        ..directive("no-patient", deny())
    });
    let refs: Vec<&ConsentDirective> = ignored.iter().collect();
    assert_policy(&ask(&[PCP]).run(&refs, &permit_all()), Decision::Permit);
    // The same directive, active, denies.
    let active = directive("active", deny());
    let mut with_active = refs.clone();
    with_active.push(&active);
    assert_by(
        &ask(&[PCP]).run(&with_active, &permit_all()),
        Decision::Deny,
        "Consent/active",
    );
}

#[test]
fn the_patient_may_be_named_by_an_absolute_reference() {
    let absolute = ConsentDirective {
        patient: Party::to("https://gateway.example/fhir/Patient/123/_history/2"),
        ..directive("abs", deny())
    };
    let o = ask(&[PCP])
        .patient("https://gateway.example/fhir/Patient/123")
        .run(&[&absolute], &permit_all());
    assert_by(&o, Decision::Deny, "Consent/abs");
    // Against a relative reference it may be another server's patient: a deny still
    // applies, a permit does not.
    assert_by(
        &ask(&[PCP]).run(&[&absolute], &permit_all()),
        Decision::Deny,
        "Consent/abs",
    );
    let permit_abs = ConsentDirective {
        provision: Some(permit()),
        ..absolute.clone()
    };
    assert_policy(
        &ask(&[PCP]).run(&[&permit_abs], &deny_all()),
        Decision::Deny,
    );
}

fn policy() -> Policy {
    Policy {
        default_by_purpose: vec![
            ("TREAT".into(), Decision::Deny),
            ("HOPERAT".into(), Decision::Permit),
            ("HOPERAT".into(), Decision::Deny), // only the first entry counts
        ],
        default_otherwise: Decision::Deny,
        pcp_treatment_without_consent: true,
    }
}

#[test]
fn without_consent_treatment_notifications_to_the_pcp_go_through_when_the_policy_says_so() {
    let o = ask(&[PCP, PRACTICE]).recipient_is_pcp().run(&[], &policy());
    assert_policy(&o, Decision::Permit);
    assert_eq!(o.reason, "TREAT: no consent on file covers it: policy permits treatment disclosures to the patient's PCP");
    // Not the PCP: the TREAT default.
    let o = ask(&[CARDIOLOGY]).run(&[], &policy());
    assert_policy(&o, Decision::Deny);
    assert_eq!(
        o.reason,
        "TREAT: no consent on file covers it: the policy default for TREAT denies"
    );
    // The PCP, but the policy does not allow it.
    let strict = Policy {
        pcp_treatment_without_consent: false,
        ..policy()
    };
    assert_policy(
        &ask(&[PCP]).recipient_is_pcp().run(&[], &strict),
        Decision::Deny,
    );
    // The PCP, for another purpose (ETREAT is not TREAT): that purpose's default.
    assert_policy(
        &ask(&[PCP])
            .recipient_is_pcp()
            .purpose("ETREAT")
            .run(&[], &policy()),
        Decision::Deny,
    );
    let o = ask(&[PCP])
        .recipient_is_pcp()
        .purpose("HOPERAT")
        .run(&[], &policy());
    assert_policy(&o, Decision::Permit);
    assert_eq!(
        o.reason,
        "HOPERAT: no consent on file covers it: the policy default for HOPERAT permits"
    );
}

#[test]
fn without_consent_other_purposes_take_their_default() {
    assert_policy(
        &ask(&[CARDIOLOGY]).purpose("HOPERAT").run(&[], &policy()),
        Decision::Permit,
    );
    let o = ask(&[CARDIOLOGY]).purpose("HPAYMT").run(&[], &policy());
    assert_policy(&o, Decision::Deny);
    assert_eq!(
        o.reason,
        "HPAYMT: no consent on file covers it: the policy default for other purposes denies"
    );
    let lenient = Policy {
        default_otherwise: Decision::Permit,
        ..policy()
    };
    assert_policy(
        &ask(&[CARDIOLOGY]).purpose("HPAYMT").run(&[], &lenient),
        Decision::Permit,
    );
    let o = ask(&[CARDIOLOGY]).purpose("").run(&[], &lenient);
    assert_eq!(
        o.reason,
        "(no purpose): no consent on file covers it: the policy default for other purposes permits"
    );
}

#[test]
fn the_policy_also_decides_what_directives_on_file_leave_open() {
    // A directive about cardiology says nothing about the PCP.
    let c = directive("c", deny().actor(CARDIOLOGY, "PRCP"));
    assert_policy(
        &ask(&[PCP]).recipient_is_pcp().run(&[&c], &policy()),
        Decision::Permit,
    );
    // But a directive that denies the PCP beats the policy's PCP allowance.
    let d = directive("d", deny().actor(PCP, "PRCP"));
    assert_by(
        &ask(&[PCP]).recipient_is_pcp().run(&[&c, &d], &policy()),
        Decision::Deny,
        "Consent/d",
    );
    // Items the directive does not cover fall to the policy, item by item.
    let encounters = directive("e", permit().class("Encounter"));
    let data = vec![encounter(), item("Observation/2", &[], None)];
    let o = ask(&[CARDIOLOGY]).data(data).run(&[&encounters], &policy());
    assert_eq!(
        (o.decision, o.excluded.clone()),
        (Decision::Permit, vec!["Observation/2".to_owned()])
    );
    assert_eq!(
        o.reason,
        "TREAT: Consent/e permits; 1 of 2 data items withheld (minimum necessary): \
         no consent on file covers it: the policy default for TREAT denies"
    );
}
