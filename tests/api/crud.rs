//! create, read, vread, update (If-Match), conditional create/update/delete, delete,
//! history, Prefer.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_outcome, TestApp, JSON};
use crate::test_both;

test_both!(
    create_then_read,
    update_with_if_match,
    update_can_create_with_client_id,
    conditional_create,
    conditional_update,
    delete_then_gone,
    conditional_delete,
    history_levels,
    prefer_return,
    unknown_ids_and_types,
);

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-7781"}],
        "name": [{"family": "Andrews", "given": ["Tom"]}],
        "birthDate": "1948-02-03"
    })
}

async fn create_then_read(app: TestApp) {
    let r = app.post_json("Patient", &patient()).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(JSON));
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(location, app.url(&format!("Patient/{id}/_history/1")));
    assert_eq!(created["meta"]["versionId"], "1");
    assert!(created["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let r = app.get(&format!("Patient/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(r.headers().contains_key("last-modified"));
    let read: Value = r.json().await.unwrap();
    assert_eq!(read, created);

    let r = app.get(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), created);
    // The server ignores a client id on create.
    let mut with_id = patient();
    with_id["id"] = json!("chosen-by-client");
    let c = app.create(&with_id).await;
    assert_ne!(c["id"], "chosen-by-client");
}

async fn update_with_if_match(app: TestApp) {
    let created = app.create(&patient()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut v2 = created.clone();
    v2["active"] = json!(true);
    let r = app
        .client
        .put(app.url(&format!("Patient/{id}")))
        .header("Content-Type", JSON)
        .header("If-Match", "W/\"1\"")
        .body(v2.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    // A stale version is refused and nothing changes.
    let mut stale = created.clone();
    stale["active"] = json!(false);
    let r = app
        .client
        .put(app.url(&format!("Patient/{id}")))
        .header("Content-Type", JSON)
        .header("If-Match", "W/\"1\"")
        .body(stale.to_string())
        .send()
        .await
        .unwrap();
    assert_outcome(r, 412, "conflict", None).await;
    let now: Value = app
        .get(&format!("Patient/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["meta"]["versionId"], "2");
    assert_eq!(now["active"], true);
    // Version 1 is still readable.
    let v1: Value = app
        .get(&format!("Patient/{id}/_history/1"))
        .await
        .json()
        .await
        .unwrap();
    assert!(v1.get("active").is_none());
}

async fn update_can_create_with_client_id(app: TestApp) {
    let mut p = patient();
    p["id"] = json!("pat-andrews");
    let r = app.put_json("Patient/pat-andrews", &p).await;
    assert_eq!(r.status(), 201);
    let r = app.put_json("Patient/pat-andrews", &p).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
}

async fn conditional_create(app: TestApp) {
    let q = "identifier=urn:oid:1.2.36.146.595.217.0.1|MRN-7781";
    let send = || {
        app.client
            .post(app.url("Patient"))
            .header("Content-Type", JSON)
            .header("If-None-Exist", q)
            .body(patient().to_string())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.count("Patient").await, 1);
    // Two matches: 412, nothing created.
    app.create(&patient()).await;
    assert_outcome(send().await.unwrap(), 412, "conflict", None).await;
    assert_eq!(app.count("Patient").await, 2);
}

async fn conditional_update(app: TestApp) {
    let path = "Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|MRN-7781";
    let r = app.put_json(path, &patient()).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let mut p = patient();
    p["gender"] = json!("male");
    let r = app.put_json(path, &p).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["meta"]["versionId"], "2");
    // No criteria at all is refused.
    assert_outcome(app.put_json("Patient", &p).await, 400, "required", None).await;
}

async fn delete_then_gone(app: TestApp) {
    let created = app.create(&patient()).await;
    let id = created["id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("Patient/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_outcome(
        app.get(&format!("Patient/{id}")).await,
        410,
        "deleted",
        None,
    )
    .await;
    // The old version stays readable, searches no longer find it.
    assert_eq!(
        app.get(&format!("Patient/{id}/_history/1")).await.status(),
        200
    );
    assert_eq!(app.count("Patient").await, 0);
    // Deleting again is harmless.
    let r = app
        .client
        .delete(app.url(&format!("Patient/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Deleting what never existed is too.
    let r = app
        .client
        .delete(app.url("Patient/never-was"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

async fn conditional_delete(app: TestApp) {
    app.create(&patient()).await;
    let r = app
        .client
        .delete(app.url("Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|MRN-7781"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.count("Patient").await, 0);
}

async fn history_levels(app: TestApp) {
    let created = app.create(&patient()).await;
    let id = created["id"].as_str().unwrap();
    let mut v2 = created.clone();
    v2["active"] = json!(true);
    assert_eq!(
        app.put_json(&format!("Patient/{id}"), &v2).await.status(),
        200
    );
    app.client
        .delete(app.url(&format!("Patient/{id}")))
        .send()
        .await
        .unwrap();
    app.create(&json!({"resourceType": "Organization", "name": "Riverside Cardiology"}))
        .await;

    let h = app.search(&format!("Patient/{id}/_history")).await;
    assert_eq!(h["type"], "history");
    assert_eq!(h["total"], 3);
    let methods: Vec<&str> = h["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["DELETE", "PUT", "POST"]);
    assert!(h["entry"][0].get("resource").is_none());
    assert_eq!(h["entry"][1]["resource"]["active"], true);

    assert_eq!(app.search("Patient/_history").await["total"], 3);
    assert_eq!(app.client_history_total().await, 4);
    let paged = app.search("_history?_count=2").await;
    assert_eq!(paged["entry"].as_array().unwrap().len(), 2);
    assert!(paged["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "next"));
    assert_outcome(
        app.get("Patient/unknown-id/_history").await,
        404,
        "not-found",
        None,
    )
    .await;
}

async fn prefer_return(app: TestApp) {
    let minimal = app
        .client
        .post(app.url("Patient"))
        .header("Content-Type", JSON)
        .header("Prefer", "return=minimal")
        .body(patient().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(minimal.status(), 201);
    assert!(minimal.headers().contains_key("location"));
    assert!(minimal.text().await.unwrap().is_empty());
    let oo = app
        .client
        .post(app.url("Patient"))
        .header("Content-Type", JSON)
        .header("Prefer", "return=OperationOutcome")
        .body(patient().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(oo.status(), 201);
    let v: Value = oo.json().await.unwrap();
    assert_eq!(v["resourceType"], "OperationOutcome");
    assert_eq!(v["issue"][0]["severity"], "information");
}

async fn unknown_ids_and_types(app: TestApp) {
    assert_outcome(app.get("Patient/nope").await, 404, "not-found", None).await;
    assert_outcome(
        app.get("Patient/nope/_history/1").await,
        404,
        "not-found",
        None,
    )
    .await;
    assert_outcome(app.get("Spaceship/1").await, 404, "not-supported", None).await;
    assert_outcome(
        app.post_json("Spaceship", &json!({"resourceType": "Spaceship"}))
            .await,
        404,
        "not-supported",
        None,
    )
    .await;
    let r = app.send_raw(Method::PATCH, "Patient/x", JSON, "{}").await;
    assert_outcome(r, 405, "not-supported", None).await;
    assert_outcome(
        app.get("no/such/path/here/at/all").await,
        404,
        "not-found",
        None,
    )
    .await;
}
