//! The internal API (`/api/v1`): records written as plain JSON become FHIR resources
//! in the same transaction, with the same lifecycle rules; bad input is refused as
//! problem details with nothing stored.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::records::referral_sr;
use crate::test_both;

test_both!(
    a_referral_created_through_the_api_is_fhir,
    status_changes_through_the_api_keep_unmodelled_elements,
    illegal_changes_through_the_api_are_conflicts,
    transitions_and_consents_through_the_api,
    bad_input_is_refused_with_problem_details,
    the_openapi_document_describes_the_routes,
);

fn referral() -> Value {
    json!({"status": "requested", "patient": {"reference": "Patient/a1"},
        "referrer": {"reference": "Practitioner/gp-1"},
        "receivers": [{"reference": "Organization/cardiology"}],
        "reasons": [{"text": "palpitations"}], "urgency": "routine",
        "supporting_info": [{"reference": "Observation/holter"}]})
}

async fn a_referral_created_through_the_api_is_fhir(app: TestApp) {
    let (status, r) = app.api(Method::POST, "referrals", Some(referral())).await;
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["status"], "requested");
    // The FHIR side: a ServiceRequest and the receiver's Task, found by search.
    let sr: Value = app
        .get(&format!("ServiceRequest/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["reasonCode"][0]["text"], "palpitations");
    assert_eq!(sr["supportingInfo"][0]["reference"], "Observation/holter");
    let tasks = app.search(&format!("Task?focus=ServiceRequest/{id}")).await;
    assert_eq!(tasks["total"], 1);
    let task = &tasks["entry"][0]["resource"];
    assert_eq!(task["status"], "requested");
    assert_eq!(task["owner"]["reference"], "Organization/cardiology");
    assert_eq!(r["task"]["id"], task["id"]);
    assert_eq!(app.event_names().await, ["ReferralRequested"]);
}

async fn status_changes_through_the_api_keep_unmodelled_elements(app: TestApp) {
    let mut sr = referral_sr("Patient/a2");
    sr["occurrenceDateTime"] = json!("2026-12-01");
    let sr = app.create(&sr).await;
    let id = sr["id"].as_str().unwrap();
    let (status, r) = app
        .api(
            Method::PATCH,
            &format!("referrals/{id}"),
            Some(json!({"status": "accepted"})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "accepted");
    let (status, r) = app
        .api(
            Method::PATCH,
            &format!("referrals/{id}"),
            Some(
                json!({"status": "completed", "results": [{"reference": "DiagnosticReport/echo"}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["results"][0]["reference"], "DiagnosticReport/echo");
    let stored: Value = app
        .get(&format!("ServiceRequest/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["note"], sr["note"]);
    assert_eq!(stored["occurrenceDateTime"], "2026-12-01");
    let task: Value = app
        .get(&format!("Task/{}", r["task"]["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["output"][0]["valueReference"]["reference"],
        "DiagnosticReport/echo"
    );
    assert_eq!(
        app.event_names().await,
        ["ReferralRequested", "ReferralAccepted", "ReferralCompleted"]
    );
}

async fn illegal_changes_through_the_api_are_conflicts(app: TestApp) {
    let (_, r) = app.api(Method::POST, "referrals", Some(referral())).await;
    let id = r["id"].as_str().unwrap();
    let path = format!("referrals/{id}");
    let (status, _) = app
        .api(Method::PATCH, &path, Some(json!({"status": "rejected"})))
        .await;
    assert_eq!(status, 200);
    let (status, p) = app
        .api(Method::PATCH, &path, Some(json!({"status": "accepted"})))
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["status"], 409);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("is rejected; it cannot become accepted"),
        "{p}"
    );
    // The referral's Task is also its handoff (#6), whose rules answer first.
    assert_eq!(p["errors"][0]["at"], "Task.status", "{p}");
    let (_, now) = app.api(Method::GET, &path, None).await;
    assert_eq!(now["status"], "rejected");
    assert_eq!(
        app.event_names().await,
        ["ReferralRequested", "ReferralRejected"]
    );
}

async fn transitions_and_consents_through_the_api(app: TestApp) {
    let t = json!({"status": "in-progress", "patient": {"reference": "Patient/a3"},
        "period": {"start": "2026-11-20T08:00:00Z"}, "locations": [{"reference": "Location/ward-1"}],
        "pcp": {"reference": "Practitioner/pcp-1"}});
    let (status, r) = app.api(Method::POST, "transitions", Some(t)).await;
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["class"]["code"], "IMP");
    // Discharge without an end time: 422, nothing changes.
    let path = format!("transitions/{id}");
    let (status, p) = app
        .api(Method::PATCH, &path, Some(json!({"status": "finished"})))
        .await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["errors"][0]["at"], "Encounter.period.end");
    let (status, r) = app
        .api(
            Method::PATCH,
            &path,
            Some(
                json!({"status": "finished", "period": {"end": "2026-11-23T09:00:00Z"},
                "follow_up": [{"what": "PCP visit", "within_days": 2}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let enc: Value = app
        .get(&format!("Encounter/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        enc["period"],
        json!({"start": "2026-11-20T08:00:00Z", "end": "2026-11-23T09:00:00Z"})
    );
    assert_eq!(
        enc["extension"][0]["extension"][1],
        json!({"url": "withinDays", "valuePositiveInt": 2})
    );

    let (status, c) = app
        .api(Method::POST, "consents", Some(json!({"status": "active", "patient": {"reference": "Patient/a3"},
            "provision": {"type": "permit", "purposes": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}})))
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["scope"]["coding"][0]["code"], "patient-privacy");
    let cid = c["id"].as_str().unwrap();
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("consents/{cid}"),
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("consents/{cid}"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, 409);
    let (_, list) = app.api(Method::GET, "consents?status=inactive", None).await;
    assert_eq!(list["total"], 1);
    assert_eq!(
        app.event_names().await,
        [
            "PatientAdmitted",
            "PatientDischarged",
            "ConsentChanged",
            "ConsentChanged"
        ]
    );
}

async fn bad_input_is_refused_with_problem_details(app: TestApp) {
    let cases: Vec<(Method, &str, Option<Value>, u16, &str)> = vec![
        (
            Method::POST,
            "referrals",
            Some(json!("not an object")),
            400,
            "not a referral record",
        ),
        (
            Method::POST,
            "referrals",
            Some(json!({"status": "requested"})),
            400,
            "missing field `patient`",
        ),
        (
            Method::POST,
            "referrals",
            Some(json!({"status": "sent", "patient": {"reference": "Patient/x"}})),
            400,
            "unknown variant `sent`",
        ),
        (
            Method::POST,
            "referrals",
            Some(
                json!({"status": "requested", "patient": {"reference": "Patient/x"}, "colour": "red"}),
            ),
            400,
            "unknown field `colour`",
        ),
        (
            Method::POST,
            "referrals",
            Some(
                json!({"id": "mine", "status": "requested", "patient": {"reference": "Patient/x"}}),
            ),
            400,
            "'id' is set by the server",
        ),
        (
            Method::POST,
            "referrals",
            Some(
                json!({"status": "requested", "patient": {"reference": "Patient/x"}, "urgency": "whenever"}),
            ),
            422,
            "not acceptable",
        ),
        (
            Method::POST,
            "referrals",
            Some(json!({"status": "requested", "patient": {"display": "no reference"}})),
            422,
            "not acceptable",
        ),
        (
            Method::POST,
            "transitions",
            Some(json!({"status": "finished", "patient": {"reference": "Patient/x"}})),
            422,
            "a discharge needs an end time",
        ),
        (
            Method::POST,
            "referrals",
            Some(
                json!({"status": "requested", "patient": {"reference": "Patient/x"}, "authored_on": "yesterday"}),
            ),
            422,
            "not make a valid FHIR R4 ServiceRequest",
        ),
        (
            Method::POST,
            "wards",
            Some(json!({})),
            404,
            "No record kind 'wards'",
        ),
        (
            Method::GET,
            "referrals?status=sent",
            None,
            400,
            "not a referral status",
        ),
        (
            Method::GET,
            "referrals?colour=red",
            None,
            400,
            "Unknown parameter 'colour'",
        ),
        (
            Method::GET,
            "referrals?limit=100000",
            None,
            400,
            "limit must be",
        ),
        (
            Method::GET,
            "referrals/nope",
            None,
            404,
            "No referral record nope",
        ),
        (
            Method::PATCH,
            "referrals/nope",
            Some(json!({"status": "accepted"})),
            404,
            "No referral record nope",
        ),
        (Method::GET, "events?since=x", None, 400, "since must be"),
    ];
    for (method, path, body, want, text) in cases {
        let (status, p) = app.api(method.clone(), path, body.clone()).await;
        assert_eq!(status, want, "{method} {path} {body:?}: {p}");
        assert_eq!(p["status"], want, "{p}");
        assert!(
            p.to_string().contains(text),
            "{method} {path}: {p} lacks {text}"
        );
    }
    // Not JSON at all.
    let root = app.base.trim_end_matches("/fhir");
    let r = app
        .client
        .post(format!("{root}/api/v1/referrals"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Nothing was stored by any of it.
    assert_eq!(app.count("ServiceRequest").await, 0);
    assert_eq!(app.count("Encounter").await, 0);
    assert!(app.event_names().await.is_empty());
}

async fn the_openapi_document_describes_the_routes(app: TestApp) {
    let (status, doc) = app.api(Method::GET, "openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/api/v1/{kind}",
            "/api/v1/{kind}/{id}",
            "/api/v1/events",
            "/api/v1/openapi.json",
            "/api/v1/worklist",
            "/api/v1/sweep"
        ]
    );
    for schema in [
        "Referral",
        "Transition",
        "CarePlan",
        "Consent",
        "Problem",
        "Event",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    // The documented record fields are the ones the API accepts.
    let props = doc["components"]["schemas"]["Referral"]["properties"]
        .as_object()
        .unwrap();
    for f in [
        "status",
        "patient",
        "referrer",
        "receivers",
        "reasons",
        "supporting_info",
        "results",
    ] {
        assert!(props.contains_key(f), "{f}");
    }
}
