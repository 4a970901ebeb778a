//! Consent enforcement and the disclosure ledger (issue #5), end to end with real
//! local subscribers, on gateways whose no-consent policy denies (the production
//! default): who is told, who is not, revocation during retries, minimum necessary,
//! the ledger (read-only), `$evaluate` and `$disclosures`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::consent_support::*;
use crate::helpers::{assert_outcome, TestApp};
use crate::receiver::Receiver;
use crate::subscriptions::{discharged, subscribe};
use crate::test_both_denying;

test_both_denying!(
    a_denied_practice_never_hears_while_the_pcp_does,
    a_revocation_during_retries_stops_them,
    minimum_necessary_withholds_labelled_data,
    the_ledger_cannot_be_altered,
    evaluate_and_disclosures_explain,
    a_malformed_recipient_is_refused,
);

async fn a_denied_practice_never_hears_while_the_pcp_does(app: TestApp) {
    patient(&app, "pd", "Practitioner/pcp-d", None).await;
    app.create(&consent(
        "Patient/pd",
        "deny",
        "Organization/practice-x",
        None,
    ))
    .await;
    let (pcp, practice, nobody) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    subscribe(
        &app,
        &subscription_for("Patient/pd", &["Practitioner/pcp-d"], &pcp.url, "id-only"),
    )
    .await;
    let refused = subscribe(
        &app,
        &subscription_for(
            "Patient/pd",
            &["Practitioner/dr-x", "Organization/practice-x"],
            &practice.url,
            "full-resource",
        ),
    )
    .await;
    subscribe(
        &app,
        &subscription_for("Patient/pd", &[], &nobody.url, "id-only"),
    )
    .await;

    let enc = app.create(&discharged("Patient/pd")).await;
    let enc_ref = format!("Encounter/{}", enc["id"].as_str().unwrap());
    pcp.wait("the PCP's notification", |h| {
        h.iter().any(|h| h.kind() == "event-notification")
    })
    .await;
    assert!(pcp.delivered_events()[0]
        .json
        .to_string()
        .contains(&enc_ref));
    // Denied at match time: the denials are in the ledger when the write returns.
    let denied = ledger(&app, &format!("patient=Patient/pd&{DENIED}")).await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    let practice_denial = denied
        .iter()
        .find(|e| agents(e).contains(&"Organization/practice-x".to_owned()))
        .expect("the practice's denial");
    assert_eq!(practice_denial["outcome"], "4");
    assert!(
        practice_denial
            .to_string()
            .contains(&format!("Subscription/{refused}")),
        "{practice_denial}"
    );
    assert!(
        practice_denial["outcomeDesc"]
            .as_str()
            .unwrap()
            .contains("Consent/"),
        "the deciding consent is named: {practice_denial}"
    );
    let unknown = denied
        .iter()
        .find(|e| agents(e).is_empty())
        .expect("the unnamed recipient's denial");
    assert!(unknown["outcomeDesc"]
        .as_str()
        .unwrap()
        .starts_with("not disclosed"));
    let delivered = wait_ledger(&app, &format!("patient=Patient/pd&{DISCLOSED}"), 1).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["outcome"], "0");
    assert_eq!(agents(&delivered[0]), ["Practitioner/pcp-d"]);
    // Whatever the worker does next, nothing reaches the practice or the unnamed one.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for rx in [&practice, &nobody] {
        let kinds: Vec<String> = rx.hits().iter().map(|h| h.kind()).collect();
        assert_eq!(kinds, ["handshake"], "only the handshake: {kinds:?}");
    }
}

async fn a_revocation_during_retries_stops_them(app: TestApp) {
    patient(&app, "pr", "Practitioner/someone-else", None).await;
    let c = app
        .create(&consent(
            "Patient/pr",
            "permit",
            "Organization/practice-y",
            None,
        ))
        .await;
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &subscription_for(
            "Patient/pr",
            &["Organization/practice-y"],
            &rx.url,
            "id-only",
        ),
    )
    .await;
    rx.answer(503, None);
    app.create(&discharged("Patient/pr")).await;
    rx.wait("two failed attempts", |h| {
        h.iter()
            .filter(|h| h.kind() == "event-notification")
            .count()
            >= 2
    })
    .await;

    let mut revoked = c.clone();
    revoked["status"] = json!("inactive");
    let id = c["id"].as_str().unwrap();
    let r = app.put_json(&format!("Consent/{id}"), &revoked).await;
    assert_eq!(r.status(), 200);
    let denial = wait_ledger(&app, &format!("patient=Patient/pr&{DENIED}"), 1).await;
    assert_eq!(agents(&denial[0]), ["Organization/practice-y"]);
    let sent = rx
        .hits()
        .iter()
        .filter(|h| h.kind() == "event-notification")
        .count();
    // The subscriber comes back: still nothing more is sent.
    rx.answer(200, None);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = rx
        .hits()
        .iter()
        .filter(|h| h.kind() == "event-notification")
        .count();
    assert_eq!(after, sent, "no retry after the revocation");
    // Every attempt that went out is in the ledger, unacknowledged.
    let attempts = ledger(&app, &format!("patient=Patient/pr&{DISCLOSED}")).await;
    assert_eq!(attempts.len(), sent, "{attempts:?}");
    assert!(attempts.iter().all(|a| a["outcome"] == "4"));
    // The revocation itself is audited (and so was the grant).
    let changes = ledger(
        &app,
        "patient=Patient/pr&subtype=http://handoff.example.org/fhir/CodeSystem/ledger|consent-change",
    )
    .await;
    assert_eq!(changes.len(), 2, "{changes:?}");
}

async fn minimum_necessary_withholds_labelled_data(app: TestApp) {
    let restricted =
        json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"});
    patient(&app, "pm", "Practitioner/pcp-m", Some(restricted.clone())).await;
    app.create(&consent(
        "Patient/pm",
        "permit",
        "Organization/practice-m",
        Some(json!({"type": "deny", "securityLabel": [restricted]})),
    ))
    .await;
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &subscription_for(
            "Patient/pm",
            &["Organization/practice-m"],
            &rx.url,
            "full-resource",
        ),
    )
    .await;
    let enc = app.create(&discharged("Patient/pm")).await;
    let hits = rx
        .wait("the notification", |h| {
            h.iter().any(|h| h.kind() == "event-notification")
        })
        .await;
    let n = hits
        .iter()
        .find(|h| h.kind() == "event-notification")
        .unwrap();
    let types: Vec<&str> = n.json["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    assert!(types.contains(&"Encounter"), "{types:?}");
    assert!(
        !types.contains(&"Patient"),
        "the labelled Patient is withheld: {types:?}"
    );
    let note = &n.json["meta"]["extension"][0];
    assert_eq!(
        note["url"],
        "http://handoff.example.org/fhir/StructureDefinition/withheld-data"
    );
    assert_eq!(
        note["extension"][0]["valueReference"]["reference"],
        "Patient/pm"
    );
    assert!(note.to_string().contains("minimum necessary"), "{note}");
    let entry = wait_ledger(&app, &format!("patient=Patient/pm&{DISCLOSED}"), 1).await;
    assert_eq!(entry[0]["outcome"], "0");
    let enc_ref = format!("Encounter/{}", enc["id"].as_str().unwrap());
    assert!(entry[0].to_string().contains(&enc_ref));
}

async fn the_ledger_cannot_be_altered(app: TestApp) {
    app.create(&consent("Patient/pl", "permit", "Organization/o", None))
        .await;
    let entries = ledger(&app, "patient=Patient/pl").await;
    assert_eq!(entries.len(), 1, "the consent change is audited");
    let id = entries[0]["id"].as_str().unwrap().to_owned();
    let mut changed = entries[0].clone();
    changed["outcome"] = json!("8");
    let r = app.post_json("AuditEvent", &changed).await;
    assert_outcome(r, 405, "not-supported", None).await;
    let r = app.put_json(&format!("AuditEvent/{id}"), &changed).await;
    assert_outcome(r, 405, "not-supported", None).await;
    let r = app
        .client
        .delete(app.url(&format!("AuditEvent/{id}")))
        .send()
        .await
        .unwrap();
    assert_outcome(r, 405, "not-supported", None).await;
    let r = app
        .client
        .delete(app.url("AuditEvent?patient=Patient/pl"))
        .send()
        .await
        .unwrap();
    assert_outcome(r, 405, "not-supported", None).await;
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": changed, "request": {"method": "PUT", "url": format!("AuditEvent/{id}")}}]});
    let r = app.post_json("", &tx).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let now: Value = app
        .get(&format!("AuditEvent/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now, entries[0], "unchanged");
    let cs: Value = app.get("metadata").await.json().await.unwrap();
    let ae = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "AuditEvent")
        .expect("AuditEvent in the CapabilityStatement")
        .clone();
    let codes: Vec<&str> = ae["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for no in ["create", "update", "delete"] {
        assert!(!codes.contains(&no), "{codes:?}");
    }
    assert!(codes.contains(&"read") && codes.contains(&"search-type"));
    let params = ae["searchParam"].to_string();
    for p in ["patient", "agent", "date", "entity", "_id", "_lastUpdated"] {
        assert!(params.contains(&format!("\"{p}\"")), "{p}: {params}");
    }
}

async fn evaluate_and_disclosures_explain(app: TestApp) {
    patient(&app, "pe", "Practitioner/pcp-e", None).await;
    let c = app
        .create(&consent(
            "Patient/pe",
            "deny",
            "Organization/practice-e",
            None,
        ))
        .await;
    let ask = |recipient: &str| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "patient", "valueReference": {"reference": "Patient/pe"}},
            {"name": "recipient", "valueReference": {"reference": recipient}},
            {"name": "purpose", "valueCode": "TREAT"},
            {"name": "data", "valueCode": "Encounter"}]})
    };
    let r = app
        .post_json("Consent/$evaluate", &ask("Organization/practice-e"))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let param = |v: &Value, n: &str| {
        v["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(param(&v, "decision")["valueCode"], "deny");
    assert_eq!(
        param(&v, "consent")["valueReference"]["reference"],
        format!("Consent/{}", c["id"].as_str().unwrap())
    );
    let v: Value = app
        .post_json("Consent/$evaluate", &ask("Practitioner/pcp-e"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(param(&v, "decision")["valueCode"], "permit", "{v}");
    assert!(param(&v, "reason")["valueString"]
        .as_str()
        .unwrap()
        .contains("PCP"));
    let v: Value = app
        .post_json("Consent/$evaluate", &ask("Organization/elsewhere"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(param(&v, "decision")["valueCode"], "deny", "by policy: {v}");
    let bad = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueString": "pe"}]});
    let r = app.post_json("Consent/$evaluate", &bad).await;
    assert_outcome(r, 400, "value", Some("Parameters.parameter[0]")).await;

    // The accounting: one disclosure to the PCP, within the window.
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &subscription_for("Patient/pe", &["Practitioner/pcp-e"], &rx.url, "id-only"),
    )
    .await;
    app.create(&discharged("Patient/pe")).await;
    rx.wait("the notification", |h| {
        h.iter().any(|h| h.kind() == "event-notification")
    })
    .await;
    let start = Instant::now();
    let b = loop {
        let b = app.search("Patient/pe/$disclosures?start=2020-01-01").await;
        if b["total"] == 1 || start.elapsed() > Duration::from_secs(10) {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(b["type"], "searchset");
    assert_eq!(b["total"], 1, "{b}");
    assert_eq!(agents(&b["entry"][0]["resource"]), ["Practitioner/pcp-e"]);
    let b = app
        .search("Patient/pe/$disclosures?start=2020-01-01&end=2020-12-31")
        .await;
    assert_eq!(b["total"], 0);
    let r = app.get("Patient/pe/$disclosures?start=yesterday").await;
    assert_outcome(r, 400, "value", None).await;
}

async fn a_malformed_recipient_is_refused(app: TestApp) {
    let mut s = subscription_for(
        "Patient/px",
        &["Encounter/not-a-party"],
        "http://127.0.0.1:9/x",
        "id-only",
    );
    let r = app.post_json("Subscription", &s).await;
    assert_outcome(
        r,
        422,
        "value",
        Some("Subscription.extension[0].extension[0].valueReference"),
    )
    .await;
    s["extension"] = json!([{"url": RECIPIENT, "extension": [
        {"url": "role", "valueCoding": {"system": ROLES, "code": "PRCP"}}]}]);
    let r = app.post_json("Subscription", &s).await;
    assert_outcome(r, 422, "required", Some("Subscription.extension[0]")).await;
    assert_eq!(app.count("Subscription").await, 0, "nothing stored");
}

/// `handoff consent check` asks a store directly (SQLite here: the CLI cannot name a
/// PostgreSQL schema), with the same rules as the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_what_and_why() {
    let dir = std::env::temp_dir().join(format!("handoff-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("h.db").display());
    let u = url.clone();
    let app = crate::helpers::spawn_with(crate::helpers::Backend::Sqlite, move |s| {
        s.database_url = u;
        s.consent_default = "deny".into();
    })
    .await
    .unwrap();
    patient(&app, "pc", "Practitioner/pcp-c", None).await;
    let c = app
        .create(&consent(
            "Patient/pc",
            "deny",
            "Organization/practice-c",
            None,
        ))
        .await;
    let check = |recipient: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
            .args([
                "consent",
                "check",
                "--patient",
                "Patient/pc",
                "--recipient",
                recipient,
                "--purpose",
                "TREAT",
                "--data",
                "Encounter",
                "--database-url",
                &url,
            ])
            .env_remove("HANDOFF_CONFIG")
            .env_remove("HANDOFF_CONSENT_DEFAULT")
            .output()
            .unwrap()
    };
    let out = check("Organization/practice-c");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("decision: deny"), "{text}");
    assert!(
        text.contains(&format!("consent: Consent/{}", c["id"].as_str().unwrap())),
        "{text}"
    );
    let out = check("Practitioner/pcp-c");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("decision: permit") && text.contains("PCP"),
        "{text}"
    );
    drop(app);
    let _ = std::fs::remove_dir_all(dir);
}

/// `consent_default_by_purpose`: with no directive on file, the purpose decides where
/// the configuration says so, `consent_default` elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_no_consent_default_can_differ_by_purpose() {
    use crate::helpers::{spawn_with, Backend};
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_with(backend, |s| {
            s.consent_default = "deny".into();
            s.consent_default_by_purpose
                .insert("HOPERAT".into(), "permit".into());
        })
        .await
        else {
            continue; // PostgreSQL unreachable outside CI (helpers says so)
        };
        patient(&app, "pp", "Practitioner/pcp-p", None).await;
        let decide = |purpose: &'static str| {
            let body = json!({"resourceType": "Parameters", "parameter": [
                {"name": "patient", "valueReference": {"reference": "Patient/pp"}},
                {"name": "recipient", "valueReference": {"reference": "Organization/quality-team"}},
                {"name": "purpose", "valueCode": purpose},
                {"name": "data", "valueCode": "Encounter"}]});
            let app = &app;
            async move {
                let v: Value = app
                    .post_json("Consent/$evaluate", &body)
                    .await
                    .json()
                    .await
                    .unwrap();
                v["parameter"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == "decision")
                    .map(|p| p["valueCode"].as_str().unwrap_or("").to_owned())
                    .unwrap_or_default()
            }
        };
        assert_eq!(decide("HOPERAT").await, "permit", "{backend:?}");
        assert_eq!(decide("HPAYMT").await, "deny", "{backend:?}");
        assert_eq!(decide("TREAT").await, "deny", "{backend:?}: not the PCP");
    }
}
