//! `$validate`: every issue reported with its path, nothing stored.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, JSON};
use crate::test_both;

test_both!(validate_reports_without_storing);

fn encounter() -> Value {
    json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}})
}

async fn validate(app: &TestApp, body: String) -> Value {
    let r = app
        .send_raw(Method::POST, "Encounter/$validate", JSON, body)
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn issues(outcome: &Value) -> Vec<(String, String, String)> {
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["severity"].as_str().unwrap().to_owned(),
                i["code"].as_str().unwrap().to_owned(),
                i["expression"][0].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn validate_reports_without_storing(app: TestApp) {
    let ok = validate(&app, encounter().to_string()).await;
    assert_eq!(
        issues(&ok),
        [("information".into(), "informational".into(), "".into())]
    );

    // Several problems at once, each with its path.
    let mut bad = encounter();
    bad["status"] = json!("done");
    bad["period"] = json!({"start": "2026-02-30"});
    bad["colour"] = json!("red");
    let found = issues(&validate(&app, bad.to_string()).await);
    for expected in [
        ("error", "code-invalid", "Encounter.status"),
        ("error", "value", "Encounter.period.start"),
        ("error", "structure", "Encounter.colour"),
    ] {
        let e = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(found.contains(&e), "{expected:?} not in {found:?}");
    }

    // Wrapped in Parameters; the wrong type; a profile this server does not know.
    let wrapped = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": encounter()},
        {"name": "profile", "valueUri": "http://example.org/StructureDefinition/discharge"}]});
    let w = issues(&validate(&app, wrapped.to_string()).await);
    assert_eq!(w, [("error".into(), "not-found".into(), "".into())]);
    let patient = json!({"resourceType": "Patient"});
    assert_eq!(
        issues(&validate(&app, patient.to_string()).await)[0].1,
        "invalid"
    );
    let not_json = issues(&validate(&app, "{".into()).await);
    assert_eq!(not_json[0].1, "structure");

    assert_eq!(app.count("Encounter").await, 0);
    assert_eq!(app.count("Patient").await, 0);
    // The CapabilityStatement says so.
    let cs: Value = app.get("metadata").await.json().await.unwrap();
    let enc = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Encounter")
        .unwrap();
    assert_eq!(enc["operation"][0]["name"], "validate");
}
