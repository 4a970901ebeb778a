//! What the consent tests and the batch tests share: patients with a PCP, Consent
//! directives, subscriptions on behalf of a recipient, and the ledger's AuditEvents.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::subscriptions::subscription;

pub const RECIPIENT: &str =
    "http://handoff.example.org/fhir/StructureDefinition/subscription-recipient";
pub const ROLES: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

/// A discharge subscription for `patient` on behalf of `recipients`.
pub fn subscription_for(
    patient: &str,
    recipients: &[&str],
    endpoint: &str,
    content: &str,
) -> Value {
    let mut s = subscription(
        "encounter-end",
        &[&format!("Encounter?patient={patient}")],
        endpoint,
        content,
    );
    if !recipients.is_empty() {
        let actors: Vec<Value> = recipients
            .iter()
            .map(|r| json!({"url": "actor", "valueReference": {"reference": r}}))
            .collect();
        s["extension"] = json!([{"url": RECIPIENT, "extension": actors}]);
    }
    s
}

pub fn consent(patient: &str, kind: &str, actor: &str, nested: Option<Value>) -> Value {
    let mut c = json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient},
        "provision": {"type": kind, "actor": [{"role": {"coding": [{"system": ROLES, "code": "PRCP"}]},
            "reference": {"reference": actor}}],
            "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}});
    if let Some(n) = nested {
        c["provision"]["provision"] = json!([n]);
    }
    c
}

pub async fn patient(app: &TestApp, id: &str, pcp: &str, security: Option<Value>) {
    let mut p = json!({"resourceType": "Patient", "id": id,
        "generalPractitioner": [{"reference": pcp}]});
    if let Some(s) = security {
        p["meta"] = json!({"security": [s]});
    }
    let r = app.put_json(&format!("Patient/{id}"), &p).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// The ledger's AuditEvents matching a search (e.g. `patient=Patient/x`).
pub async fn ledger(app: &TestApp, query: &str) -> Vec<Value> {
    let b = app.search(&format!("AuditEvent?{query}&_count=100")).await;
    b["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

pub async fn wait_ledger(app: &TestApp, query: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let found = ledger(app, query).await;
        if found.len() >= n {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the ledger never had {n} entries for {query}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn agents(e: &Value) -> Vec<String> {
    e["agent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["who"]["reference"].as_str().map(str::to_owned))
        .collect()
}

pub const DENIED: &str =
    "subtype=http://handoff.example.org/fhir/CodeSystem/ledger|disclosure-denied";
pub const DISCLOSED: &str = "subtype=http://handoff.example.org/fhir/CodeSystem/ledger|disclosure";
