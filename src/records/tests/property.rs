//! Property test: random valid records survive record -> FHIR -> record and render
//! as valid R4.

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

use super::super::careplan::Activity;
use super::super::consent::{Actor, Provision};
use super::super::transition::FollowUp;
use super::*;

fn id() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,12}"
}
fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 ,.]{0,20}[A-Za-z0-9.]"
}
fn party(types: &'static [&'static str]) -> impl Strategy<Value = Party> {
    (proptest::sample::select(types), id(), of(text())).prop_map(|(t, id, display)| Party {
        reference: Some(format!("{t}/{id}")),
        display,
    })
}
fn code() -> impl Strategy<Value = Code> {
    (
        of("http://example\\.org/[a-z]{1,8}"),
        "[A-Za-z0-9-]{1,10}",
        of(text()),
    )
        .prop_map(|(system, code, display)| Code {
            system,
            code,
            display,
        })
}
fn concept() -> impl Strategy<Value = Concept> {
    (vec(code(), 0..3), of(text()))
        .prop_filter("not empty", |(c, t)| !c.is_empty() || t.is_some())
        .prop_map(|(coding, text)| Concept { coding, text })
}
fn date() -> impl Strategy<Value = String> {
    (2000u32..2040, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}"))
}
fn period() -> impl Strategy<Value = Period> {
    (of(date()), of(date()))
        .prop_filter("not empty", |(s, e)| s.is_some() || e.is_some())
        .prop_map(|(start, end)| Period { start, end })
}
const WHO: &[&str] = &["Practitioner", "PractitionerRole", "Organization"];

fn referral() -> impl Strategy<Value = Referral> {
    (
        proptest::sample::select(ReferralStatus::ALL.to_vec()),
        party(&["Patient"]),
        of(party(WHO)),
        vec(party(WHO), 0..3),
        of(concept()),
        vec(concept(), 0..3),
        vec(
            party(&["Condition", "Observation", "DiagnosticReport"]),
            0..2,
        ),
        of(proptest::sample::select(vec![
            "routine", "urgent", "asap", "stat",
        ])),
        vec(
            party(&["Observation", "DiagnosticReport", "DocumentReference"]),
            0..3,
        ),
        of(period()),
        of(date()),
        vec(party(&["DiagnosticReport", "DocumentReference"]), 0..2),
    )
        .prop_map(
            |(
                status,
                patient,
                referrer,
                receivers,
                service,
                reasons,
                rr,
                urg,
                si,
                per,
                auth,
                results,
            )| {
                let draft = status == ReferralStatus::Draft;
                Referral {
                    id: None,
                    status,
                    patient,
                    referrer,
                    receivers,
                    service,
                    reasons,
                    reason_references: rr,
                    urgency: urg.map(str::to_owned),
                    supporting_info: si,
                    requested_period: per,
                    authored_on: auth,
                    task: None,
                    results: if draft { Vec::new() } else { results },
                    sources: Vec::new(),
                }
            },
        )
}

fn transition() -> impl Strategy<Value = Transition> {
    let follow_up = (text(), of(party(WHO)), of(date()), of(1u32..90)).prop_map(
        |(what, who, due, within_days)| FollowUp {
            what,
            who,
            due,
            within_days,
        },
    );
    (
        proptest::sample::select(transition::ENCOUNTER_STATUSES.to_vec()),
        code(),
        party(&["Patient"]),
        of(period()),
        (
            of(party(&["Organization"])),
            of(party(&["Location", "Organization"])),
            of(party(&["Location", "Organization"])),
        ),
        vec(party(&["Location"]), 0..3),
        of(concept()),
        (
            vec(party(&["Practitioner"]), 0..2),
            of(party(&["Practitioner", "PractitionerRole"])),
        ),
        vec(party(&["Condition", "Procedure"]), 0..3),
        vec(follow_up, 0..3),
        vec(party(&["DocumentReference", "Composition", "List"]), 0..3),
    )
        .prop_map(
            |(
                status,
                class,
                patient,
                period,
                (sp, origin, dest),
                locations,
                dd,
                (attending, pcp),
                diagnoses,
                follow_up,
                documents,
            )| Transition {
                id: None,
                status: status.to_owned(),
                class,
                patient,
                period,
                service_provider: sp,
                origin,
                destination: dest,
                locations,
                discharge_disposition: dd,
                attending,
                pcp,
                diagnoses,
                follow_up,
                documents,
                sources: Vec::new(),
            },
        )
}

fn care_plan() -> impl Strategy<Value = CarePlanRecord> {
    let activity = (
        of(party(&["Appointment", "ServiceRequest", "Task"])),
        of(proptest::sample::select(vec![
            "not-started",
            "scheduled",
            "completed",
        ])),
        of(concept()),
        of(text()),
        vec(party(WHO), 0..2),
    )
        .prop_map(|(reference, status, code, description, performers)| {
            let detail = code.is_some() || description.is_some() || !performers.is_empty();
            Activity {
                reference,
                status: if detail {
                    Some(status.unwrap_or("unknown").to_owned())
                } else {
                    status.map(str::to_owned)
                },
                code,
                description,
                performers,
            }
        })
        .prop_filter("an activity says something", |a| {
            a.reference.is_some() || a.status.is_some()
        });
    (
        proptest::sample::select(careplan::CAREPLAN_STATUSES.to_vec()),
        proptest::sample::select(careplan::CAREPLAN_INTENTS.to_vec()),
        party(&["Patient"]),
        of(text()),
        of(period()),
        of(party(WHO)),
        vec(party(&["CareTeam"]), 0..2),
        vec(party(&["Goal"]), 0..3),
        vec(activity, 0..3),
    )
        .prop_map(
            |(
                status,
                intent,
                patient,
                title,
                period,
                coordinator,
                care_team,
                goals,
                activities,
            )| CarePlanRecord {
                id: None,
                status: status.to_owned(),
                intent: intent.to_owned(),
                patient,
                title,
                period,
                coordinator,
                care_team,
                goals,
                activities,
                sources: Vec::new(),
            },
        )
}

fn provision(depth: u32) -> BoxedStrategy<Provision> {
    let actor = (concept(), party(WHO)).prop_map(|(role, reference)| Actor { role, reference });
    let leaf = (
        of(proptest::sample::select(vec!["permit", "deny"])),
        of(period()),
        vec(actor, 0..2),
        vec(code(), 0..2),
        vec(code(), 0..2),
        of(period()),
    )
        .prop_map(
            |(kind, period, actors, purposes, classes, data_period)| Provision {
                kind: kind.map(str::to_owned),
                period,
                actors,
                purposes,
                classes,
                data_period,
                ..Provision::default()
            },
        );
    let leaf = leaf.prop_filter("a provision says something", |p| *p != Provision::default());
    if depth == 0 {
        return leaf.boxed();
    }
    (leaf, vec(provision(depth - 1), 0..2))
        .prop_map(|(mut p, nested)| {
            p.provisions = nested;
            p
        })
        .boxed()
}

fn consent() -> impl Strategy<Value = ConsentDirective> {
    (
        proptest::sample::select(consent::CONSENT_STATUSES.to_vec()),
        party(&["Patient"]),
        concept(),
        vec(concept(), 1..3),
        of(date()),
        of(concept()),
        of(provision(2)),
    )
        .prop_map(
            |(status, patient, scope, categories, date_time, policy_rule, provision)| {
                ConsentDirective {
                    id: None,
                    status: status.to_owned(),
                    patient,
                    scope,
                    categories,
                    date_time,
                    policy_rule,
                    provision,
                    sources: Vec::new(),
                }
            },
        )
}

fn survives(record: Record) -> Result<(), TestCaseError> {
    let fhir = render(&record, None);
    prop_assert_eq!(errors(&fhir), Vec::<String>::new(), "{}", fhir);
    let mut back = Record::from_resource(&fhir, None).unwrap();
    if let (Record::Referral(r), Record::Referral(orig)) = (&mut back, &record) {
        // The receiver's side travels in the Task.
        if let Some(task) = orig.to_task(None, "ServiceRequest/x") {
            r.apply_task(&task, fhir["status"].as_str().unwrap());
            r.task = None;
        }
    }
    prop_assert_eq!(back, record);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn referrals(r in referral()) { survives(Record::Referral(r))?; }
    #[test]
    fn transitions(t in transition()) { survives(Record::Transition(t))?; }
    #[test]
    fn care_plans(c in care_plan()) { survives(Record::CarePlan(c))?; }
    #[test]
    fn consents(c in consent()) { survives(Record::Consent(c))?; }
}
