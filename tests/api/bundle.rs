//! Transaction (all or nothing, urn:uuid rewriting, conditional entries) and batch.

use serde_json::{json, Value};

use crate::helpers::{assert_outcome, ids, TestApp};
use crate::test_both;

test_both!(
    transaction_rewrites_references,
    transaction_conditional_entry_reuses_existing,
    transaction_is_all_or_nothing,
    transaction_of_several_updates,
    transaction_from_fixture,
    batch_entries_stand_alone,
    bundle_type_must_be_transaction_or_batch,
);

/// A transaction of PUTs: `(type, id, If-Match)` each, renaming them to `name`.
fn puts(entries: &[(&str, &str, Option<&str>)], name: &str) -> Value {
    let entry: Vec<Value> = entries
        .iter()
        .map(|(rtype, id, if_match)| {
            let mut request = json!({"method": "PUT", "url": format!("{rtype}/{id}")});
            if let Some(v) = if_match {
                request["ifMatch"] = json!(format!("W/\"{v}\""));
            }
            json!({"resource": {"resourceType": rtype, "id": id, "name": name}, "request": request})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entry})
}

/// A transaction of several updates: existing and new resources, with and without
/// If-Match, in any order; a stale If-Match on one fails them all.
async fn transaction_of_several_updates(app: TestApp) {
    let a = app
        .create(&json!({"resourceType": "Organization", "name": "A"}))
        .await;
    let b = app
        .create(&json!({"resourceType": "Organization", "name": "B"}))
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let t = puts(
        &[
            ("Organization", b, None),
            ("Organization", "new-org", None),
            ("Organization", a, Some("1")),
        ],
        "Renamed",
    );
    let r = app.post_json("", &t).await;
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    let statuses = statuses(&resp);
    assert_eq!(statuses, ["200 OK", "201 Created", "200 OK"]);
    for (id, version) in [(b, "2"), ("new-org", "1"), (a, "2")] {
        let got = organization(&app, id).await;
        assert_eq!(got["name"], "Renamed", "{id}");
        assert_eq!(got["meta"]["versionId"], version, "{id}");
    }

    // A stale If-Match on one of them: nothing changes.
    let t = puts(
        &[
            ("Organization", a, Some("2")),
            ("Organization", b, Some("1")),
        ],
        "Again",
    );
    assert_outcome(
        app.post_json("", &t).await,
        412,
        "conflict",
        Some("Bundle.entry[1]"),
    )
    .await;
    for id in [a, b, "new-org"] {
        assert_eq!(organization(&app, id).await["name"], "Renamed", "{id}");
    }
}

/// Each entry's `response.status` of a transaction- or batch-response Bundle.
fn statuses(resp: &Value) -> Vec<&str> {
    resp["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect()
}

async fn organization(app: &TestApp, id: &str) -> Value {
    app.get(&format!("Organization/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

fn discharge_transaction(mrn: &str) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1c2b7e-3b9c-4c1e-9d38-1f0c7a3e9b01",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:example:mrn", "value": mrn}],
                    "name": [{"family": "Andrews"}]
                },
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": format!("identifier=urn:example:mrn|{mrn}")}
            },
            {
                "fullUrl": "urn:uuid:0b7d6a53-d7f8-4f4e-a2a4-8f0a8f3c2c10",
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                    "subject": {"reference": "urn:uuid:6f1c2b7e-3b9c-4c1e-9d38-1f0c7a3e9b01"},
                    "period": {"start": "2026-11-10T08:00:00Z", "end": "2026-11-14T16:30:00Z"}
                },
                "request": {"method": "POST", "url": "Encounter"}
            }
        ]
    })
}

async fn transaction_rewrites_references(app: TestApp) {
    let r = app.post_json("", &discharge_transaction("MRN-1")).await;
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["type"], "transaction-response");
    let entries = resp["entry"].as_array().unwrap();
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    assert_eq!(entries[1]["response"]["status"], "201 Created");
    assert!(entries[0]["response"]["location"]
        .as_str()
        .unwrap()
        .contains("/Patient/"));
    let patient_id = entries[0]["resource"]["id"].as_str().unwrap();
    let enc = &entries[1]["resource"];
    assert_eq!(
        enc["subject"]["reference"],
        json!(format!("Patient/{patient_id}"))
    );
    // And it is what the store holds.
    let stored: Value = app
        .get(&format!("Encounter/{}", enc["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stored["subject"]["reference"],
        json!(format!("Patient/{patient_id}"))
    );
    assert_eq!(
        ids(&app.search(&format!("Encounter?patient={patient_id}")).await).len(),
        1
    );
}

async fn transaction_conditional_entry_reuses_existing(app: TestApp) {
    let existing = app
        .create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:example:mrn", "value": "MRN-2"}]}))
        .await;
    let r = app.post_json("", &discharge_transaction("MRN-2")).await;
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(
        resp["entry"][1]["resource"]["subject"]["reference"],
        json!(format!("Patient/{}", existing["id"].as_str().unwrap()))
    );
    assert_eq!(app.count("Patient").await, 1);
}

async fn transaction_is_all_or_nothing(app: TestApp) {
    let org = app
        .create(&json!({"resourceType": "Organization", "name": "Riverside"}))
        .await;
    let id = org["id"].as_str().unwrap();
    let mut t = discharge_transaction("MRN-3");
    // A third entry with a stale If-Match fails the whole transaction.
    t["entry"].as_array_mut().unwrap().push(json!({
        "resource": {"resourceType": "Organization", "id": id, "name": "Renamed"},
        "request": {"method": "PUT", "url": format!("Organization/{id}"), "ifMatch": "W/\"7\""}
    }));
    assert_outcome(
        app.post_json("", &t).await,
        412,
        "conflict",
        Some("Bundle.entry[2]"),
    )
    .await;
    assert_eq!(app.count("Patient").await, 0);
    assert_eq!(app.count("Encounter").await, 0);
    assert_eq!(organization(&app, id).await["name"], "Riverside");
    // An invalid entry resource fails it before anything is written, naming the entry.
    let mut t = discharge_transaction("MRN-3");
    t["entry"][1]["resource"]["period"]["end"] = json!("2026-11-31T10:00:00Z");
    assert_outcome(
        app.post_json("", &t).await,
        400,
        "value",
        Some("Bundle.entry[1].resource.period.end"),
    )
    .await;
    assert_eq!(app.count("Patient").await, 0);
    // An entry whose url names another type than its resource.
    let mut t = discharge_transaction("MRN-3");
    t["entry"][1]["request"]["url"] = json!("Patient");
    assert_outcome(
        app.post_json("", &t).await,
        400,
        "invalid",
        Some("Bundle.entry[1]"),
    )
    .await;
    assert_eq!(app.count("Patient").await, 0);
}

async fn transaction_from_fixture(app: TestApp) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/transaction-discharge.json"
    ))
    .unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    let r = app.post_json("", &bundle).await;
    let status = r.status();
    let resp: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{resp}");
    let n = bundle["entry"].as_array().unwrap().len();
    assert_eq!(resp["entry"].as_array().unwrap().len(), n);
    assert!(resp["entry"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["response"]["status"] == "201 Created"));
    assert_eq!(app.count("Encounter").await, 1);
}

async fn batch_entries_stand_alone(app: TestApp) {
    let patient = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Andrews"}]}))
        .await;
    let pid = patient["id"].as_str().unwrap();
    let b = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Organization", "name": "Good"}, "request": {"method": "POST", "url": "Organization"}},
            {"resource": {"resourceType": "Organization", "id": "org-x", "name": "Stale"},
             "request": {"method": "PUT", "url": "Organization/org-x", "ifMatch": "W/\"3\""}},
            {"request": {"method": "GET", "url": format!("Patient/{pid}")}},
            {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
            {"request": {"method": "DELETE", "url": format!("Patient/{pid}")}}
        ]
    });
    let r = app.post_json("", &b).await;
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    assert_eq!(resp["type"], "batch-response");
    let statuses = statuses(&resp);
    assert_eq!(
        statuses,
        [
            "201 Created",
            "412 Precondition Failed",
            "200 OK",
            "404 Not Found",
            "204 No Content"
        ]
    );
    assert_eq!(
        resp["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(resp["entry"][2]["resource"]["id"], json!(pid));
    assert_eq!(app.count("Organization").await, 1);
    assert_eq!(app.count("Patient").await, 0);
}

async fn bundle_type_must_be_transaction_or_batch(app: TestApp) {
    let b = json!({"resourceType": "Bundle", "type": "collection"});
    assert_outcome(app.post_json("", &b).await, 400, "not-supported", None).await;
    let b = json!({"resourceType": "Patient"});
    assert_outcome(app.post_json("", &b).await, 400, "invalid", None).await;
}
