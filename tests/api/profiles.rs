//! The gateway's profiles: enforced on write when claimed in meta.profile (422, nothing
//! stored), checked by `$validate` on request, advertised in the CapabilityStatement.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, JSON};
use crate::test_both;

test_both!(
    incomplete_records_are_refused_and_not_stored,
    complete_records_are_created,
    a_missing_supporting_info_is_only_a_warning,
    updates_are_checked_after_base_validation,
    a_transaction_fails_whole_on_one_entry,
    a_batch_refuses_only_the_failing_entry,
    validate_checks_requested_and_claimed_profiles,
    unknown_claimed_profiles_are_accepted,
);

const SD: &str = "http://handoff.example.org/fhir/StructureDefinition/";
const VS: &str = "http://handoff.example.org/fhir/ValueSet/";

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/profiles/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// (severity, code, expression, diagnostics) of each issue.
fn issues(outcome: &Value) -> Vec<(String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    outcome["issue"]
        .as_array()
        .unwrap_or_else(|| panic!("not an OperationOutcome: {outcome}"))
        .iter()
        .map(|i| {
            (
                s(&i["severity"]),
                s(&i["code"]),
                s(&i["expression"][0]),
                s(&i["diagnostics"]),
            )
        })
        .collect()
}

fn issue(
    severity: &str,
    code: &str,
    expression: &str,
    diagnostics: &str,
) -> (String, String, String, String) {
    (
        severity.into(),
        code.into(),
        expression.into(),
        diagnostics.into(),
    )
}

/// Create; the status and the body.
async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    let r = app
        .post_json(body["resourceType"].as_str().unwrap(), body)
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn history_total(app: &TestApp) -> u64 {
    app.client_history_total().await
}

async fn incomplete_records_are_refused_and_not_stored(app: TestApp) {
    let cases = [
        (
            "referral-no-reason.json",
            issue("error", "invariant", "ServiceRequest", &format!(
                "Constraint hrsr-1 of profile {SD}handoff-referral-servicerequest failed: A referral gives its reason (reasonCode or reasonReference)")),
        ),
        (
            "discharge-no-end.json",
            issue("error", "required", "Encounter.period.end", &format!(
                "Encounter.period.end is missing: profile {SD}handoff-discharge-encounter requires it")),
        ),
        (
            "discharge-bad-disposition.json",
            issue("error", "code-invalid", "Encounter.hospitalization.dischargeDisposition.coding[0]", &format!(
                "Encounter.hospitalization.dischargeDisposition.coding[0]: code 'nursing-home' (system \
                 http://terminology.hl7.org/CodeSystem/discharge-disposition) is not in the value set \
                 {VS}handoff-discharge-disposition required by profile {SD}handoff-discharge-encounter: \
                 one of home, alt-home, other-hcf, hosp, long, aadvice, exp, psy, rehab, snf, oth")),
        ),
        (
            "careplan-no-goal-or-activity.json",
            issue("error", "invariant", "CarePlan", &format!(
                "Constraint hccp-1 of profile {SD}handoff-coordination-careplan failed: A coordination care plan has at least one activity or goal")),
        ),
        (
            "consent-no-actor.json",
            issue("error", "required", "Consent.provision.actor", &format!(
                "Consent.provision.actor is missing: profile {SD}handoff-disclosure-consent requires it")),
        ),
    ];
    for (name, expected) in cases {
        let (status, outcome) = post(&app, &fixture(name)).await;
        assert_eq!(status, 422, "{name}: {outcome}");
        assert_eq!(issues(&outcome), [expected], "{name}");
    }
    // Several problems at once are all reported.
    let mut many = fixture("discharge-no-end.json");
    many.as_object_mut().unwrap().remove("serviceProvider");
    many["subject"] = json!({"reference": "Group/g1"});
    let (status, outcome) = post(&app, &many).await;
    assert_eq!(status, 422);
    let found: Vec<_> = issues(&outcome).into_iter().map(|i| (i.1, i.2)).collect();
    assert_eq!(
        found,
        [
            ("value".into(), "Encounter.subject".into()),
            ("required".into(), "Encounter.period.end".into()),
            ("required".into(), "Encounter.serviceProvider".into()),
        ]
    );
    for rtype in ["ServiceRequest", "Encounter", "CarePlan", "Consent"] {
        assert_eq!(app.count(rtype).await, 0, "{rtype}");
    }
    assert_eq!(history_total(&app).await, 0);
}

async fn complete_records_are_created(app: TestApp) {
    for name in [
        "referral.json",
        "referral-task.json",
        "discharge.json",
        "careplan.json",
        "consent.json",
    ] {
        let body = fixture(name);
        let (status, stored) = post(&app, &body).await;
        assert_eq!(status, 201, "{name}: {stored}");
        assert_eq!(stored["meta"]["profile"], body["meta"]["profile"], "{name}");
    }
    // Five resources, plus the discharge's handoff Task and the gateway's version of
    // the referral's Task (#6).
    assert_eq!(history_total(&app).await, 7);
    // The CapabilityStatement lists the profiles of each type.
    let cs: Value = app.get("metadata").await.json().await.unwrap();
    let resource = |t: &str| {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(
        resource("Encounter")["supportedProfile"],
        json!([format!("{SD}handoff-discharge-encounter")])
    );
    assert_eq!(
        resource("Task")["supportedProfile"],
        json!([format!("{SD}handoff-referral-task")])
    );
    assert!(resource("Patient").get("supportedProfile").is_none());
}

async fn a_missing_supporting_info_is_only_a_warning(app: TestApp) {
    let body = fixture("referral-no-supporting-info.json");
    let (status, stored) = post(&app, &body).await;
    assert_eq!(status, 201, "{stored}");
    let r = app
        .send_raw(
            Method::POST,
            "ServiceRequest/$validate",
            JSON,
            body.to_string(),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(issues(&r.json().await.unwrap()), [issue(
        "warning",
        "invariant",
        "ServiceRequest.supportingInfo",
        &format!("Constraint hrsr-2 of profile {SD}handoff-referral-servicerequest failed: A referral should list the tests already done (supportingInfo)"),
    )]);
}

async fn updates_are_checked_after_base_validation(app: TestApp) {
    let mut referral = fixture("referral.json");
    referral["id"] = json!("r1");
    assert_eq!(
        app.put_json("ServiceRequest/r1", &referral).await.status(),
        201
    );
    let mut no_reason = fixture("referral-no-reason.json");
    no_reason["id"] = json!("r1");
    let r = app.put_json("ServiceRequest/r1", &no_reason).await;
    assert_eq!(r.status(), 422);
    assert_eq!(app.search("ServiceRequest/r1/_history").await["total"], 1);
    // Conditional update: refused, nothing created.
    let r = app
        .put_json(
            "Encounter?identifier=urn:x|1",
            &fixture("discharge-no-end.json"),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        issues(&r.json().await.unwrap())[0].2,
        "Encounter.period.end"
    );
    assert_eq!(app.count("Encounter").await, 0);
    // What breaks R4 itself is still a 400, whatever the profile says.
    let mut not_r4 = fixture("discharge-no-end.json");
    not_r4["status"] = json!("done");
    let r = app.post_json("Encounter", &not_r4).await;
    assert_eq!(r.status(), 400);
    assert_eq!(issues(&r.json().await.unwrap())[0].2, "Encounter.status");
}

fn entry(full_url: &str, resource: Value) -> Value {
    let rtype = resource["resourceType"].as_str().unwrap().to_owned();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": rtype}})
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

async fn a_transaction_fails_whole_on_one_entry(app: TestApp) {
    let patient = json!({"resourceType": "Patient", "gender": "male"});
    let org = json!({"resourceType": "Organization", "name": "Riverside"});
    let mut discharge = fixture("discharge.json");
    discharge["subject"] = json!({"reference": "urn:uuid:p"});
    discharge["serviceProvider"] = json!({"reference": "urn:uuid:o"});
    let mut no_end = discharge.clone();
    no_end["period"].as_object_mut().unwrap().remove("end");
    let tx = bundle(
        "transaction",
        vec![
            entry("urn:uuid:p", patient.clone()),
            entry("urn:uuid:o", org.clone()),
            entry("urn:uuid:e1", discharge.clone()),
            entry("urn:uuid:e2", no_end),
        ],
    );
    let r = app.post_json("", &tx).await;
    assert_eq!(r.status(), 422);
    let found = issues(&r.json().await.unwrap());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].2, "Bundle.entry[3].resource.period.end");
    // A reference to another entry is checked against the entry's type.
    let mut wrong_subject = discharge.clone();
    wrong_subject["subject"] = json!({"reference": "urn:uuid:o"});
    let tx2 = bundle(
        "transaction",
        vec![
            entry("urn:uuid:p", patient.clone()),
            entry("urn:uuid:o", org.clone()),
            entry("urn:uuid:e1", wrong_subject),
        ],
    );
    let r = app.post_json("", &tx2).await;
    assert_eq!(r.status(), 422);
    let found = issues(&r.json().await.unwrap());
    assert_eq!(
        (found[0].1.as_str(), found[0].2.as_str()),
        ("value", "Bundle.entry[2].resource.subject")
    );
    for rtype in ["Patient", "Organization", "Encounter"] {
        assert_eq!(app.count(rtype).await, 0, "{rtype}");
    }
    assert_eq!(history_total(&app).await, 0);
    // The same transaction without the bad entry goes through.
    let ok = bundle(
        "transaction",
        vec![
            entry("urn:uuid:p", patient),
            entry("urn:uuid:o", org),
            entry("urn:uuid:e1", discharge),
        ],
    );
    assert_eq!(app.post_json("", &ok).await.status(), 200);
    assert_eq!(app.count("Encounter").await, 1);
}

async fn a_batch_refuses_only_the_failing_entry(app: TestApp) {
    let b = bundle(
        "batch",
        vec![
            entry("urn:uuid:e1", fixture("discharge.json")),
            entry("urn:uuid:e2", fixture("discharge-no-end.json")),
        ],
    );
    let r = app.post_json("", &b).await;
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(
        resp["entry"][1]["response"]["status"],
        "422 Unprocessable Entity"
    );
    let outcome = &resp["entry"][1]["response"]["outcome"];
    assert_eq!(issues(outcome)[0].2, "Encounter.period.end");
    assert_eq!(app.count("Encounter").await, 1);
}

async fn validate(
    app: &TestApp,
    path: &str,
    body: &Value,
) -> Vec<(String, String, String, String)> {
    let r = app
        .send_raw(Method::POST, path, JSON, body.to_string())
        .await;
    assert_eq!(r.status(), 200);
    issues(&r.json().await.unwrap())
}

async fn validate_checks_requested_and_claimed_profiles(app: TestApp) {
    let discharge = format!("{SD}handoff-discharge-encounter");
    let mut unclaimed = fixture("discharge-no-end.json");
    unclaimed.as_object_mut().unwrap().remove("meta");
    // Without a profile: valid R4.
    let plain = validate(&app, "Encounter/$validate", &unclaimed).await;
    assert_eq!((plain[0].0.as_str(), plain.len()), ("information", 1));
    // ?profile=
    let q = validate(
        &app,
        &format!("Encounter/$validate?profile={discharge}"),
        &unclaimed,
    )
    .await;
    assert_eq!(
        q,
        [issue(
            "error",
            "required",
            "Encounter.period.end",
            &format!("Encounter.period.end is missing: profile {discharge} requires it")
        )]
    );
    // A Parameters body: the paths are those of the resource inside it.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": unclaimed},
        {"name": "profile", "valueCanonical": discharge}]});
    let p = validate(&app, "Encounter/$validate", &params).await;
    assert_eq!(
        p.iter().map(|i| i.2.as_str()).collect::<Vec<_>>(),
        ["Parameters.parameter[0].resource.period.end"]
    );
    // Claimed in meta.profile: checked without being asked; base issues come too.
    let mut claimed = fixture("discharge-no-end.json");
    claimed["period"]["start"] = json!("2026-02-30");
    let c = validate(&app, "Encounter/$validate", &claimed).await;
    let found: Vec<_> = c.iter().map(|i| (i.1.as_str(), i.2.as_str())).collect();
    assert_eq!(
        found,
        [
            ("value", "Encounter.period.start"),
            ("required", "Encounter.period.end")
        ]
    );
    // A valid resource says what it was checked against.
    let ok = validate(
        &app,
        &format!("Encounter/$validate?profile={discharge}"),
        &fixture("discharge.json"),
    )
    .await;
    assert_eq!(ok[0].0, "information");
    assert!(ok[0].3.contains(&discharge), "{ok:?}");
    // Unknown profiles, profiles of another type.
    let unknown = validate(
        &app,
        "Encounter/$validate?profile=http://example.org/nope",
        &fixture("discharge.json"),
    )
    .await;
    assert_eq!(
        unknown,
        [issue(
            "error",
            "not-found",
            "",
            "Profile http://example.org/nope is not known to this server"
        )]
    );
    let other = validate(
        &app,
        &format!("ServiceRequest/$validate?profile={discharge}"),
        &fixture("referral.json"),
    )
    .await;
    assert_eq!(
        (other[0].0.as_str(), other[0].1.as_str()),
        ("error", "invalid")
    );
    assert_eq!(history_total(&app).await, 0);
}

async fn unknown_claimed_profiles_are_accepted(app: TestApp) {
    // Missing what the discharge profile requires (but not the end time, which the
    // transition lifecycle demands of every finished Encounter).
    let mut other = fixture("discharge.json");
    other.as_object_mut().unwrap().remove("serviceProvider");
    other["meta"]["profile"] =
        json!(["http://example.org/fhir/StructureDefinition/their-encounter"]);
    let (status, stored) = post(&app, &other).await;
    assert_eq!(status, 201, "{stored}");
    // A known profile beside it is still enforced.
    other["meta"]["profile"] = json!([
        "http://example.org/fhir/StructureDefinition/their-encounter",
        format!("{SD}handoff-discharge-encounter|0.1.0")
    ]);
    let (status, _) = post(&app, &other).await;
    assert_eq!(status, 422);
    // $validate notes the unknown claim without failing it.
    other["meta"]["profile"] =
        json!(["http://example.org/fhir/StructureDefinition/their-encounter"]);
    let v = validate(&app, "Encounter/$validate", &other).await;
    assert_eq!(
        (v[0].0.as_str(), v[0].2.as_str()),
        ("information", "Encounter.meta.profile[0]")
    );
    assert_eq!(app.count("Encounter").await, 1);
}
