//! Authenticated API clients and consent on reads (issue #5, docs/consent.md
//! "Reads"): tokens are asked for once clients are registered; a recipient client
//! reads only what the patient's consent lets it receive, through every read path;
//! each read of a patient's data is in the ledger; a recipient is kept away from what
//! no per-resource decision guards, cannot write itself permissions, and changes only
//! what is its own and consent lets it see.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::{spawn_with, Backend, TestApp};
use crate::subscriptions::subscription;

const ENGINE: &str = "engine-token";
const PCP: &str = "pcp-token";
const LEDGER: &str = "http://handoff.example.org/fhir/CodeSystem/ledger";
const RECIPIENT: &str =
    "http://handoff.example.org/fhir/StructureDefinition/subscription-recipient";

macro_rules! test_with_clients {
    ($($name:ident),* $(,)?) => {
        mod with_clients {
            $(
                mod $name {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() {
                        if let Some(app) = super::super::spawn_clients(super::super::Backend::Sqlite).await {
                            super::super::$name(app).await;
                        }
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() {
                        if let Some(app) = super::super::spawn_clients(super::super::Backend::Postgres).await {
                            super::super::$name(app).await;
                        }
                    }
                }
            )*
        }
    };
}

test_with_clients!(
    tokens_are_asked_for_once_clients_exist,
    a_recipient_reads_only_what_consent_permits,
    every_read_of_a_patients_data_is_in_the_ledger,
    a_recipient_is_kept_to_its_own,
    a_recipient_changes_only_what_is_its_own,
    internal_api_reads_are_in_the_ledger,
);

/// A gateway with the production no-consent default (deny; the PCP by policy), a
/// full-access interface engine and a PCP practice as a recipient client.
async fn spawn_clients(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |s| {
        s.consent_default = "deny".into();
        s.clients = vec![
            client("engine", ENGINE, "full", &[]),
            client(
                "riverside-pcp",
                PCP,
                "recipient",
                &["Practitioner/pcp", "Organization/riverside"],
            ),
        ];
    })
    .await
}

fn client(name: &str, token: &str, access: &str, actor: &[&str]) -> handoff::auth::ClientConfig {
    handoff::auth::ClientConfig {
        name: name.into(),
        token_sha256: handoff::auth::token_sha256(token),
        access: access.into(),
        actor: actor.iter().map(|a| a.to_string()).collect(),
        role: Vec::new(),
        purpose: None,
    }
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Response {
    let url = if path.starts_with("/api") || path == "/health" {
        app.base.trim_end_matches("/fhir").to_owned() + path
    } else {
        app.url(path)
    };
    let mut rb = app.client.request(method, url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/fhir+json")
            .body(b.to_string());
    }
    rb.send().await.unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let r = call(app, Some(token), Method::GET, path, None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(app: &TestApp, token: &str, path: &str, body: &Value) -> u16 {
    let r = call(app, Some(token), Method::PUT, path, Some(body)).await;
    let status = r.status().as_u16();
    if status >= 400 {
        eprintln!(
            "PUT {path}: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }
    status
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = call(app, Some(token), Method::POST, path, Some(body)).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn refs(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or(""),
                e["resource"]["id"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// p1's PCP is the recipient client, p2's somebody else; each has an Encounter.
async fn two_patients(app: &TestApp) {
    for (id, pcp) in [("p1", "Practitioner/pcp"), ("p2", "Practitioner/other")] {
        let patient = json!({"resourceType": "Patient", "id": id, "name": [{"family": "Test"}],
            "generalPractitioner": [{"reference": pcp}]});
        assert_eq!(
            put(app, ENGINE, &format!("/Patient/{id}"), &patient).await,
            201
        );
        let enc = json!({"resourceType": "Encounter", "id": format!("e-{id}"), "status": "in-progress",
            "period": {"start": "2026-11-20T10:00:00Z"},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": format!("Patient/{id}")}});
        assert_eq!(
            put(app, ENGINE, &format!("/Encounter/e-{id}"), &enc).await,
            201
        );
    }
    let org = json!({"resourceType": "Organization", "id": "riverside", "name": "Riverside"});
    assert_eq!(put(app, ENGINE, "/Organization/riverside", &org).await, 201);
}

fn permit(patient: &str, actor: &str) -> Value {
    json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient},
        "provision": {"type": "permit", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
            "reference": {"reference": actor}}]}})
}

async fn tokens_are_asked_for_once_clients_exist(app: TestApp) {
    let r = call(&app, None, Method::GET, "/Patient", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"handoff\"");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "login");
    let r = call(&app, Some("not-a-token"), Method::GET, "/Patient", None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // Nothing is written without a token either.
    let p = json!({"resourceType": "Patient", "id": "x"});
    assert_eq!(
        call(&app, None, Method::PUT, "/Patient/x", Some(&p))
            .await
            .status(),
        401
    );
    assert_eq!(get(&app, ENGINE, "/Patient/x").await.0, 404);
    // The coordination API answers in its own error format.
    let r = call(&app, None, Method::GET, "/api/v1/worklist", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Liveness and the CapabilityStatement are public.
    assert_eq!(
        call(&app, None, Method::GET, "/health", None)
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&app, None, Method::GET, "/metadata", None)
            .await
            .status(),
        200
    );
    assert_eq!(get(&app, ENGINE, "/Patient").await.0, 200);
    assert_eq!(get(&app, PCP, "/Patient").await.0, 200);
}

async fn a_recipient_reads_only_what_consent_permits(app: TestApp) {
    two_patients(&app).await;
    // Its own patient, by the PCP policy; not the other, who signed nothing.
    assert_eq!(get(&app, PCP, "/Patient/p1").await.0, 200);
    let (status, oo) = get(&app, PCP, "/Patient/p2").await;
    assert_eq!(status, 403, "{oo}");
    assert_eq!(oo["issue"][0]["code"], "forbidden");
    assert_eq!(get(&app, PCP, "/Patient/p2/_history/1").await.0, 403);
    assert_eq!(get(&app, PCP, "/Encounter/e-p2").await.0, 403);
    // Searches leave the other patient's data out, and then give no total.
    let (_, b) = get(&app, PCP, "/Encounter?_include=Encounter:patient").await;
    assert_eq!(refs(&b), vec!["Encounter/e-p1", "Patient/p1"], "{b}");
    assert!(b.get("total").is_none(), "{b}");
    let (_, full) = get(&app, ENGINE, "/Encounter?_include=Encounter:patient").await;
    assert_eq!(refs(&full).len(), 4);
    assert_eq!(full["total"], 2);
    let (_, h) = get(&app, PCP, "/Patient/p2/_history").await;
    assert!(refs(&h).is_empty(), "{h}");
    let (_, h) = get(&app, PCP, "/Encounter/_history").await;
    assert_eq!(refs(&h), vec!["Encounter/e-p1"]);
    // A batch read is decided too.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"request": {"method": "GET", "url": "Patient/p2"}}]});
    let (status, out) = post(&app, PCP, "", &batch).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["entry"][0]["response"]["status"], "200 OK");
    assert!(
        out["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("403"),
        "{out}"
    );
    // Data about nobody in particular is readable.
    assert_eq!(get(&app, PCP, "/Organization/riverside").await.0, 200);
    // Once p2 permits the practice, it reads p2 too.
    assert_eq!(
        post(
            &app,
            ENGINE,
            "/Consent",
            &permit("Patient/p2", "Organization/riverside")
        )
        .await
        .0,
        201
    );
    assert_eq!(get(&app, PCP, "/Patient/p2").await.0, 200);
    let (_, b) = get(&app, PCP, "/Encounter").await;
    assert_eq!(refs(&b).len(), 2);
}

async fn every_read_of_a_patients_data_is_in_the_ledger(app: TestApp) {
    two_patients(&app).await;
    assert_eq!(get(&app, PCP, "/Patient/p1").await.0, 200);
    assert_eq!(get(&app, PCP, "/Patient/p2").await.0, 403);
    assert_eq!(get(&app, ENGINE, "/Patient/p2").await.0, 200);
    // The recipient's reads are disclosures: in the patient's accounting.
    let (_, d1) = get(&app, ENGINE, "/Patient/p1/$disclosures").await;
    let e = &d1["entry"][0]["resource"];
    assert_eq!(d1["entry"].as_array().unwrap().len(), 1, "{d1}");
    assert_eq!(e["subtype"][0]["code"], "read-disclosure");
    assert_eq!(e["subtype"][1]["code"], "read");
    assert_eq!(e["outcome"], "0");
    assert_eq!(e["agent"][0]["who"]["reference"], "Practitioner/pcp");
    assert_eq!(e["agent"][0]["altId"], "riverside-pcp");
    let (_, d2) = get(&app, ENGINE, "/Patient/p2/$disclosures").await;
    assert_eq!(d2["entry"].as_array().unwrap().len(), 1, "{d2}");
    let e = &d2["entry"][0]["resource"];
    assert_eq!(e["subtype"][0]["code"], "read-denied");
    assert_eq!(e["outcome"], "4");
    // The engine's read is a use, audited but not a disclosure.
    let (_, uses) = get(
        &app,
        ENGINE,
        &format!("/AuditEvent?subtype={LEDGER}|read&patient=Patient/p2"),
    )
    .await;
    assert_eq!(uses["total"], 1, "{uses}");
    assert_eq!(uses["entry"][0]["resource"]["agent"][0]["altId"], "engine");
    // A search audits each patient once, naming what it held of theirs.
    let (_, _) = get(&app, PCP, "/Encounter?_include=Encounter:patient").await;
    let (_, d1) = get(&app, ENGINE, "/Patient/p1/$disclosures").await;
    let search = d1["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["subtype"][1]["code"] == "search-type")
        .cloned()
        .unwrap_or_else(|| panic!("{d1}"));
    assert_eq!(sent(&search), vec!["Encounter/e-p1"], "{search}");
}

/// What a ledger AuditEvent names as sent.
fn sent(audit: &Value) -> Vec<&str> {
    audit["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["description"] == "sent")
        .filter_map(|x| x["what"]["reference"].as_str())
        .collect()
}

async fn a_recipient_is_kept_to_its_own(app: TestApp) {
    two_patients(&app).await;
    for path in [
        "/AuditEvent",
        "/Patient/p1/$disclosures",
        "/_history",
        "/api/v1/worklist",
    ] {
        assert_eq!(get(&app, PCP, path).await.0, 403, "{path}");
    }
    // It cannot write itself permissions: consent, demographics naming it as PCP.
    let (status, oo) = post(
        &app,
        PCP,
        "/Consent",
        &permit("Patient/p2", "Practitioner/pcp"),
    )
    .await;
    assert_eq!(status, 403, "{oo}");
    let p2 = json!({"resourceType": "Patient", "id": "p2", "generalPractitioner": [{"reference": "Practitioner/pcp"}]});
    assert_eq!(put(&app, PCP, "/Patient/p2", &p2).await, 403);
    assert_eq!(get(&app, PCP, "/Patient/p2").await.0, 403);
    // Its subscriptions name it as their recipient, and nobody else.
    let sub = recipients_subscription;
    let (status, oo) = post(&app, PCP, "/Subscription", &sub("Practitioner/other")).await;
    assert_eq!(status, 403, "{oo}");
    let (status, mine) = post(&app, PCP, "/Subscription", &sub("Practitioner/pcp")).await;
    assert_eq!(status, 201, "{mine}");
    let (status, theirs) = post(&app, ENGINE, "/Subscription", &sub("Practitioner/other")).await;
    assert_eq!(status, 201, "{theirs}");
    let (_, listed) = get(&app, PCP, "/Subscription").await;
    assert_eq!(
        refs(&listed),
        vec![format!("Subscription/{}", mine["id"].as_str().unwrap())]
    );
    let theirs_id = theirs["id"].as_str().unwrap();
    assert_eq!(
        get(&app, PCP, &format!("/Subscription/{theirs_id}"))
            .await
            .0,
        403
    );
    assert_eq!(
        get(&app, PCP, &format!("/Subscription/{theirs_id}/$events"))
            .await
            .0,
        403
    );
    let (_, st) = get(&app, PCP, "/Subscription/$status").await;
    assert_eq!(st["entry"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(
        get(&app, ENGINE, "/Subscription/$status").await.1["entry"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // It answers only the handoffs it owns.
    for (id, owner) in [
        ("t-other", "Practitioner/other"),
        ("t-mine", "Practitioner/pcp"),
    ] {
        let task = json!({"resourceType": "Task", "id": id, "status": "requested", "intent": "order",
            "for": {"reference": "Patient/p1"}, "owner": {"reference": owner}});
        assert_eq!(put(&app, ENGINE, &format!("/Task/{id}"), &task).await, 201);
    }
    let none = json!({"resourceType": "Parameters"});
    let (status, oo) = post(&app, PCP, "/Task/t-other/$accept", &none).await;
    assert_eq!(status, 403, "{oo}");
    let (status, t) = post(&app, PCP, "/Task/t-mine/$accept", &none).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "accepted");
}

fn task(id: &str, owner: &str, status: &str) -> Value {
    json!({"resourceType": "Task", "id": id, "status": status, "intent": "order",
        "for": {"reference": "Patient/p1"}, "owner": {"reference": owner}})
}

fn referral(id: &str, patient: &str, note: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "identifier": [{"system": "urn:test:referral", "value": id}],
        "subject": {"reference": patient}, "note": [{"text": note}]})
}

/// What is stored of `path`, read by the full-access engine.
async fn stored(app: &TestApp, path: &str) -> Value {
    let (status, v) = get(app, ENGINE, path).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn a_recipient_changes_only_what_is_its_own(app: TestApp) {
    two_patients(&app).await;
    // Tasks about p1, whose PCP the client is (consent permits it to see them): it
    // changes the one it owns, not another practice's.
    for (id, owner) in [
        ("t-other", "Practitioner/other"),
        ("t-mine", "Practitioner/pcp"),
    ] {
        let t = task(id, owner, "requested");
        assert_eq!(put(&app, ENGINE, &format!("/Task/{id}"), &t).await, 201);
    }
    let taken = task("t-other", "Practitioner/other", "accepted");
    assert_eq!(put(&app, PCP, "/Task/t-other", &taken).await, 403);
    let r = call(&app, Some(PCP), Method::DELETE, "/Task/t-other", None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(stored(&app, "/Task/t-other").await["status"], "requested");
    let mine = task("t-mine", "Practitioner/pcp", "accepted");
    assert_eq!(put(&app, PCP, "/Task/t-mine", &mine).await, 200);

    // Referrals: about p1 it may update; about p2, whose consent does not let it see
    // them, neither by id, nor by a conditional update, nor inside a transaction.
    for (id, patient) in [("sr-p1", "Patient/p1"), ("sr-p2", "Patient/p2")] {
        let sr = referral(id, patient, "as sent");
        assert_eq!(
            put(&app, ENGINE, &format!("/ServiceRequest/{id}"), &sr).await,
            201
        );
    }
    let changed = referral("sr-p1", "Patient/p1", "changed");
    assert_eq!(put(&app, PCP, "/ServiceRequest/sr-p1", &changed).await, 200);
    let changed = referral("sr-p2", "Patient/p2", "changed");
    let r = call(
        &app,
        Some(PCP),
        Method::PUT,
        "/ServiceRequest/sr-p2",
        Some(&changed),
    )
    .await;
    assert_eq!(r.status(), 403);
    let oo: Value = r.json().await.unwrap();
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ServiceRequest/sr-p2"),
        "{oo}"
    );
    let path = "/ServiceRequest?identifier=urn:test:referral|sr-p2";
    assert_eq!(put(&app, PCP, path, &changed).await, 403);
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": task("t-new", "Practitioner/pcp", "requested"),
         "request": {"method": "PUT", "url": "Task/t-new"}},
        {"resource": changed, "request": {"method": "PUT", "url": "ServiceRequest/sr-p2"}}]});
    let (status, oo) = post(&app, PCP, "/", &tx).await;
    assert_eq!(status, 403, "{oo}");
    assert_eq!(
        get(&app, ENGINE, "/Task/t-new").await.0,
        404,
        "nothing of it stored"
    );
    let sr = stored(&app, "/ServiceRequest/sr-p2").await;
    assert_eq!(
        (
            sr["note"][0]["text"].as_str(),
            sr["meta"]["versionId"].as_str()
        ),
        (Some("as sent"), Some("1"))
    );

    // Another party's subscription cannot be taken over by writing over it.
    let mut theirs = recipients_subscription("Practitioner/other");
    theirs["id"] = json!("s-other");
    assert_eq!(
        put(&app, ENGINE, "/Subscription/s-other", &theirs).await,
        201
    );
    let mut mine = recipients_subscription("Practitioner/pcp");
    mine["id"] = json!("s-other");
    assert_eq!(put(&app, PCP, "/Subscription/s-other", &mine).await, 403);
}

/// A Subscription (off) naming `who` as its recipient.
fn recipients_subscription(who: &str) -> Value {
    let mut s = subscription(
        "encounter-end",
        &[],
        "https://pcp.example.org/hook",
        "id-only",
    );
    s["status"] = json!("off");
    s["extension"] = json!([{"url": RECIPIENT, "extension": [{"url": "actor", "valueReference": {"reference": who}}]}]);
    s
}

/// The full-access engine's uses of `patient`'s data in the ledger, oldest first.
async fn uses_of(app: &TestApp, patient: &str) -> Vec<Value> {
    let path = format!("/AuditEvent?subtype={LEDGER}|read&patient={patient}&_count=50");
    let (status, b) = get(app, ENGINE, &path).await;
    assert_eq!(status, 200, "{b}");
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}

async fn internal_api_reads_are_in_the_ledger(app: TestApp) {
    two_patients(&app).await;
    assert!(uses_of(&app, "Patient/p1").await.is_empty());
    // Records: a list audits each patient once, naming the record's resource.
    let (status, list) = get(&app, ENGINE, "/api/v1/transitions").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 2, "{list}");
    let (status, one) = get(&app, ENGINE, "/api/v1/transitions/e-p1").await;
    assert_eq!(status, 200, "{one}");
    let (status, events) = get(&app, ENGINE, "/api/v1/events").await;
    assert_eq!(status, 200, "{events}");
    let p1 = uses_of(&app, "Patient/p1").await;
    let interactions: Vec<&str> = p1
        .iter()
        .filter_map(|e| e["subtype"][1]["code"].as_str())
        .collect();
    assert_eq!(
        interactions,
        ["search-type", "read", "search-type"],
        "{p1:?}"
    );
    for e in &p1 {
        assert_eq!(e["agent"][0]["altId"], "engine");
        assert_eq!(sent(e), ["Encounter/e-p1"], "{e}");
    }
    // The other patient's data was only in the list and the events.
    assert_eq!(uses_of(&app, "Patient/p2").await.len(), 2);
    // Reads are uses, not disclosures: not in the patient's accounting.
    let (_, d1) = get(&app, ENGINE, "/Patient/p1/$disclosures").await;
    assert_eq!(d1["entry"].as_array().map_or(0, Vec::len), 0, "{d1}");

    // The worklist names each handoff's Task.
    let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "code": {"text": "Cardiology consult"},
        "requester": {"reference": "Practitioner/pcp"},
        "performer": [{"reference": "Practitioner/cardio"}]});
    let (status, sr) = post(&app, ENGINE, "/ServiceRequest", &sr).await;
    assert_eq!(status, 201, "{sr}");
    let (status, list) = get(&app, ENGINE, "/api/v1/worklist?party=Practitioner/pcp").await;
    assert_eq!(status, 200, "{list}");
    let task = list["items"][0]["task"]
        .as_str()
        .expect("the referral's handoff");
    let p1 = uses_of(&app, "Patient/p1").await;
    assert_eq!(p1.len(), 4, "{p1:?}");
    let last = &p1[3]["entity"];
    assert!(
        last.as_array()
            .unwrap()
            .iter()
            .any(|x| x["what"]["reference"] == task),
        "{last}"
    );
}
