//! FHIR writes keep the coordination records and their domain events in step, in the
//! same transaction; illegal lifecycle changes are refused with nothing stored.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::test_both;

test_both!(
    a_service_request_and_its_task_make_a_referral,
    a_completed_referral_cannot_go_back,
    encounters_make_transitions_with_events,
    a_discharge_without_an_end_time_is_refused,
    a_transaction_with_the_task_first_still_links_it,
    a_task_written_before_its_service_request_is_found,
    a_task_write_reads_its_service_requests_status,
    care_plans_and_consents_raise_change_events,
    deleting_the_resource_removes_the_record,
);

pub fn referral_sr(patient: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": patient},
        "requester": {"reference": "Practitioner/gp-1"},
        "performer": [{"reference": "Organization/cardiology"}],
        "code": {"text": "Cardiology consult"},
        "reasonCode": [{"text": "chest pain on exertion"}],
        "supportingInfo": [{"reference": "Observation/ecg-1"}],
        "priority": "urgent",
        "note": [{"text": "kept though the record does not model it"}]})
}

fn task_for(sr_id: &str, status: &str) -> Value {
    json!({"resourceType": "Task", "status": status, "intent": "order",
        "focus": {"reference": format!("ServiceRequest/{sr_id}")},
        "owner": {"reference": "Organization/cardiology"}})
}

async fn record(app: &TestApp, path: &str) -> Value {
    let (status, v) = app.api(Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

async fn a_service_request_and_its_task_make_a_referral(app: TestApp) {
    let sr = app.create(&referral_sr("Patient/p1")).await;
    let id = sr["id"].as_str().unwrap();
    let r = record(&app, &format!("referrals/{id}")).await;
    assert_eq!(r["status"], "requested");
    assert_eq!(r["patient"]["reference"], "Patient/p1");
    assert_eq!(r["referrer"]["reference"], "Practitioner/gp-1");
    assert_eq!(r["receivers"][0]["reference"], "Organization/cardiology");
    assert_eq!(r["reasons"][0]["text"], "chest pain on exertion");
    assert_eq!(r["supporting_info"][0]["reference"], "Observation/ecg-1");
    assert_eq!(r["urgency"], "urgent");
    // The ServiceRequest, and the handoff Task the gateway opened for it (#6).
    let handoff = app.search(&format!("Task?focus=ServiceRequest/{id}")).await;
    let handoff_id = handoff["entry"][0]["resource"]["id"].clone();
    assert_eq!(
        r["sources"],
        json!([{"resource_type": "ServiceRequest", "id": id, "version": 1},
               {"resource_type": "Task", "id": handoff_id, "version": 1}])
    );
    // Listed by patient.
    let (_, list) = app
        .api(Method::GET, "referrals?patient=Patient/p1", None)
        .await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id);

    // The receiver accepts through its Task, then completes it with a result.
    let task = app.create(&task_for(id, "accepted")).await;
    let task_id = task["id"].as_str().unwrap();
    let r = record(&app, &format!("referrals/{id}")).await;
    assert_eq!(r["status"], "accepted");
    assert_eq!(r["task"], json!({"id": task_id, "status": "accepted"}));
    let mut done = task.clone();
    done["status"] = json!("completed");
    done["output"] = json!([{"type": {"text": "consult note"}, "valueReference": {"reference": "DiagnosticReport/dr-1"}}]);
    let resp = app.put_json(&format!("Task/{task_id}"), &done).await;
    assert_eq!(resp.status(), 200);
    let r = record(&app, &format!("referrals/{id}")).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["results"][0]["reference"], "DiagnosticReport/dr-1");
    // (Beside the gateway's handoff Task, #6.)
    let own = json!({"resource_type": "Task", "id": task_id, "version": 2});
    assert!(
        r["sources"].as_array().unwrap().contains(&own),
        "{}",
        r["sources"]
    );

    assert_eq!(
        app.event_names().await,
        ["ReferralRequested", "ReferralAccepted", "ReferralCompleted"]
    );
    let (_, ev) = app
        .api(Method::GET, &format!("events?kind=referrals&id={id}"), None)
        .await;
    assert_eq!(
        ev["items"][2]["resource"],
        format!("Task/{task_id}/_history/2")
    );
    assert_eq!(
        ev["items"][2]["detail"],
        json!({"from": "accepted", "to": "completed"})
    );
    assert_eq!(ev["items"][2]["patient"], "Patient/p1");
}

async fn a_completed_referral_cannot_go_back(app: TestApp) {
    let sr = app.create(&referral_sr("Patient/p2")).await;
    let id = sr["id"].as_str().unwrap();
    let task = app.create(&task_for(id, "completed")).await;
    let task_id = task["id"].as_str().unwrap();
    let mut back = task.clone();
    back["status"] = json!("requested");
    let resp = app.put_json(&format!("Task/{task_id}"), &back).await;
    assert_eq!(resp.status(), 409);
    let oo: Value = resp.json().await.unwrap();
    assert_eq!(oo["issue"][0]["code"], "business-rule");
    assert_eq!(oo["issue"][0]["expression"][0], "ServiceRequest.status");
    let msg = oo["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        msg.contains("is completed; it cannot become requested"),
        "{msg}"
    );
    // Nothing stored: the Task is still version 1, the record still completed.
    let t: Value = app
        .get(&format!("Task/{task_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["meta"]["versionId"], "1");
    assert_eq!(
        record(&app, &format!("referrals/{id}")).await["status"],
        "completed"
    );
    // The ServiceRequest cannot go back to draft either.
    let mut draft = sr.clone();
    draft["status"] = json!("draft");
    assert_eq!(
        app.put_json(&format!("ServiceRequest/{id}"), &draft)
            .await
            .status(),
        409
    );
    assert_eq!(
        app.event_names().await,
        ["ReferralRequested", "ReferralCompleted"]
    );
}

pub fn encounter(status: &str, location: &str) -> Value {
    json!({"resourceType": "Encounter", "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p3"},
        "period": {"start": "2026-11-20T08:00:00Z"},
        "serviceProvider": {"reference": "Organization/general-hospital"},
        "location": [{"location": {"reference": location}}],
        "participant": [
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
             "individual": {"reference": "Practitioner/hospitalist"}},
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0443", "code": "PP"}]}],
             "individual": {"reference": "Practitioner/pcp-1"}}]})
}

async fn encounters_make_transitions_with_events(app: TestApp) {
    let enc = app
        .create(&encounter("in-progress", "Location/ward-1"))
        .await;
    let id = enc["id"].as_str().unwrap();
    let mut moved = enc.clone();
    moved["location"] = json!([{"location": {"reference": "Location/icu"}}]);
    assert_eq!(
        app.put_json(&format!("Encounter/{id}"), &moved)
            .await
            .status(),
        200
    );
    let mut out = moved.clone();
    out["status"] = json!("finished");
    out["period"]["end"] = json!("2026-11-23T10:00:00Z");
    out["hospitalization"] = json!({"dischargeDisposition": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}]}});
    out["extension"] = json!([{"url": "http://handoff.example.org/fhir/StructureDefinition/follow-up",
        "extension": [{"url": "what", "valueString": "PCP visit"}, {"url": "who", "valueReference": {"reference": "Practitioner/pcp-1"}},
                      {"url": "withinDays", "valuePositiveInt": 2}]}]);
    assert_eq!(
        app.put_json(&format!("Encounter/{id}"), &out)
            .await
            .status(),
        200
    );

    let t = record(&app, &format!("transitions/{id}")).await;
    assert_eq!(t["status"], "finished");
    assert_eq!(t["pcp"]["reference"], "Practitioner/pcp-1");
    assert_eq!(t["attending"][0]["reference"], "Practitioner/hospitalist");
    assert_eq!(t["locations"][0]["reference"], "Location/icu");
    assert_eq!(t["discharge_disposition"]["coding"][0]["code"], "home");
    assert_eq!(
        t["follow_up"],
        json!([{"what": "PCP visit", "who": {"reference": "Practitioner/pcp-1"}, "within_days": 2}])
    );
    assert_eq!(
        app.event_names().await,
        ["PatientAdmitted", "PatientTransferred", "PatientDischarged"]
    );
    // A finished encounter does not reopen.
    let resp = app.put_json(&format!("Encounter/{id}"), &moved).await;
    assert_eq!(resp.status(), 409);
}

async fn a_discharge_without_an_end_time_is_refused(app: TestApp) {
    let enc = app
        .create(&encounter("in-progress", "Location/ward-1"))
        .await;
    let id = enc["id"].as_str().unwrap();
    let mut out = enc.clone();
    out["status"] = json!("finished");
    let resp = app.put_json(&format!("Encounter/{id}"), &out).await;
    assert_eq!(resp.status(), 422);
    let oo: Value = resp.json().await.unwrap();
    assert_eq!(oo["issue"][0]["expression"][0], "Encounter.period.end");
    assert!(oo["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("a discharge needs an end time"));
    let stored: Value = app
        .get(&format!("Encounter/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["meta"]["versionId"], "1");
    assert_eq!(
        record(&app, &format!("transitions/{id}")).await["status"],
        "in-progress"
    );
    assert_eq!(app.event_names().await, ["PatientAdmitted"]);
}

async fn a_transaction_with_the_task_first_still_links_it(app: TestApp) {
    let mut sr = referral_sr("Patient/p4");
    sr.as_object_mut().unwrap().remove("note");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7f6c7e54-1b8e-4d4f-9c53-3c2f4f2a0001",
         "resource": {"resourceType": "Task", "status": "accepted", "intent": "order",
                      "focus": {"reference": "urn:uuid:7f6c7e54-1b8e-4d4f-9c53-3c2f4f2a0002"}},
         "request": {"method": "POST", "url": "Task"}},
        {"fullUrl": "urn:uuid:7f6c7e54-1b8e-4d4f-9c53-3c2f4f2a0002", "resource": sr,
         "request": {"method": "POST", "url": "ServiceRequest"}}]});
    let resp = app.post_json("", &bundle).await;
    assert_eq!(resp.status(), 200);
    let (_, list) = app
        .api(Method::GET, "referrals?patient=Patient/p4", None)
        .await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["status"], "accepted");
    assert_eq!(list["items"][0]["task"]["status"], "accepted");
    assert_eq!(app.event_names().await, ["ReferralAccepted"]);
}

async fn a_task_written_before_its_service_request_is_found(app: TestApp) {
    // The receiver's Task arrives first, naming a client-chosen ServiceRequest id.
    app.create(&task_for("client-sr-1", "accepted")).await;
    let mut sr = referral_sr("Patient/p7");
    sr["id"] = json!("client-sr-1");
    let resp = app.put_json("ServiceRequest/client-sr-1", &sr).await;
    assert_eq!(resp.status(), 201);
    let r = record(&app, "referrals/client-sr-1").await;
    assert_eq!(r["status"], "accepted");
    assert_eq!(r["task"]["status"], "accepted");
}

/// A Task's write derives the referral's status from the ServiceRequest's own status
/// (read from its search rows) and the Task's: a draft stays a draft whatever the Task.
async fn a_task_write_reads_its_service_requests_status(app: TestApp) {
    let mut draft = referral_sr("Patient/p1");
    draft["status"] = json!("draft");
    let sr = app.create(&draft).await;
    let id = sr["id"].as_str().unwrap();
    assert_eq!(
        record(&app, &format!("referrals/{id}")).await["status"],
        "draft"
    );
    app.create(&task_for(id, "accepted")).await;
    let r = record(&app, &format!("referrals/{id}")).await;
    assert_eq!(r["task"]["status"], "accepted");
    assert_eq!(r["status"], "draft", "{r}");
}

async fn care_plans_and_consents_raise_change_events(app: TestApp) {
    let cp = app
        .create(&json!({"resourceType": "CarePlan", "status": "active", "intent": "plan",
            "subject": {"reference": "Patient/p5"}, "author": {"reference": "Practitioner/coordinator"},
            "activity": [{"detail": {"status": "scheduled", "description": "PCP follow-up visit",
                "performer": [{"reference": "Practitioner/pcp-1"}]}}]}))
        .await;
    let id = cp["id"].as_str().unwrap();
    let r = record(&app, &format!("care-plans/{id}")).await;
    assert_eq!(r["coordinator"]["reference"], "Practitioner/coordinator");
    assert_eq!(r["activities"][0]["status"], "scheduled");
    // Re-sending the same content raises nothing; a change does.
    assert_eq!(
        app.put_json(&format!("CarePlan/{id}"), &cp).await.status(),
        200
    );
    let mut done = cp.clone();
    done["status"] = json!("completed");
    assert_eq!(
        app.put_json(&format!("CarePlan/{id}"), &done)
            .await
            .status(),
        200
    );

    let consent = app
        .create(&json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p5"},
            "provision": {"type": "permit", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
                "reference": {"reference": "Organization/pcp-practice"}}],
                "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
                "provision": [{"type": "deny", "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}]}]}}))
        .await;
    let cid = consent["id"].as_str().unwrap();
    let c = record(&app, &format!("consents/{cid}")).await;
    assert_eq!(c["provision"]["type"], "permit");
    assert_eq!(
        c["provision"]["actors"][0]["reference"]["reference"],
        "Organization/pcp-practice"
    );
    assert_eq!(c["provision"]["purposes"][0]["code"], "TREAT");
    assert_eq!(
        c["provision"]["provisions"][0]["security_labels"][0]["code"],
        "ETH"
    );
    assert_eq!(
        app.event_names().await,
        ["CarePlanChanged", "CarePlanChanged", "ConsentChanged"]
    );
}

async fn deleting_the_resource_removes_the_record(app: TestApp) {
    let sr = app.create(&referral_sr("Patient/p6")).await;
    let id = sr["id"].as_str().unwrap();
    let resp = app
        .client
        .delete(app.url(&format!("ServiceRequest/{id}")))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (status, _) = app.api(Method::GET, &format!("referrals/{id}"), None).await;
    assert_eq!(status, 404);
}
