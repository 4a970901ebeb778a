//! What the handoff tests share (accountability.rs, andrews.rs): the two-backend test
//! macro, the parties, a gateway with the test clock, and readers of the handoff Task,
//! the worklist and the handoff events.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, Backend, TestApp};

/// `name` on SQLite and PostgreSQL, each given its backend (tests pick their settings).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await;
            }
        }
    )*};
}

pub const PCP: &str = "Practitioner/pcp-1";
pub const ON_CALL: &str = "PractitionerRole/pcp-on-call";
pub const HOSPITAL: &str = "Organization/general-hospital";
pub const COORDINATOR: &str = "Practitioner/hospital-coordinator";

/// The gateway with the test clock, an alternate for the PCP and a coordinator for the
/// hospital; no periodic sweep (the tests sweep when they choose).
pub async fn spawn_clock(
    backend: Backend,
    tweak: impl FnOnce(&mut handoff::config::Settings),
) -> Option<TestApp> {
    spawn_with(backend, |s| {
        s.handoffs.test_clock = true;
        s.handoffs.sweep_interval_secs = 0;
        s.handoffs.alternates.insert(PCP.into(), ON_CALL.into());
        s.handoffs
            .coordinators
            .insert(HOSPITAL.into(), COORDINATOR.into());
        tweak(s);
    })
    .await
}

pub fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|_| panic!("not an instant: {s}"))
        .with_timezone(&Utc)
}

pub fn deadline(task: &Value) -> Option<DateTime<Utc>> {
    task["restriction"]["period"]["end"].as_str().map(instant)
}

pub fn accountable(task: &Value) -> String {
    task["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == "http://handoff.example.org/fhir/StructureDefinition/accountable")
        .and_then(|e| e["valueReference"]["reference"].as_str())
        .unwrap_or_default()
        .to_owned()
}

pub fn business(task: &Value) -> String {
    task["businessStatus"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The one Task whose focus is `focus`.
pub async fn task_for(app: &TestApp, focus: &str) -> Value {
    let b = app.search(&format!("Task?focus={focus}")).await;
    assert_eq!(b["total"], 1, "one handoff Task for {focus}: {b}");
    b["entry"][0]["resource"].clone()
}

pub async fn read(app: &TestApp, reference: &str) -> Value {
    let r = app.get(reference).await;
    assert_eq!(r.status(), 200, "{reference}");
    r.json().await.unwrap()
}

/// PUT `task` with `status` (and what `edit` changes); the stored result.
pub async fn put_task(app: &TestApp, task: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut t = task.clone();
    edit(&mut t);
    let id = t["id"].as_str().unwrap().to_owned();
    let r = app.put_json(&format!("Task/{id}"), &t).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// `POST Task/{id}/$op` with an optional Parameters body: status and body.
pub async fn operation(app: &TestApp, id: &str, op: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.client.post(app.url(&format!("Task/{id}/${op}")));
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/fhir+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

pub fn reason(text: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": text}]})
}

/// `POST /api/v1/sweep?now=…`.
pub async fn sweep(app: &TestApp, now: DateTime<Utc>) -> Value {
    let (status, v) = app
        .api(Method::POST, &format!("sweep?now={}", stamp(now)), None)
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub async fn worklist(app: &TestApp, party: &str, now: Option<DateTime<Utc>>) -> Value {
    let at = now
        .map(|n| format!("&now={}", stamp(n)))
        .unwrap_or_default();
    let (status, v) = app
        .api(Method::GET, &format!("worklist?party={party}{at}"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The worklist item for `task` (by `Task/id`).
pub fn item<'a>(list: &'a Value, task: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["task"] == task)
        .unwrap_or_else(|| panic!("{task} not in the worklist: {list}"))
}

/// The handoff events recorded (name, detail), oldest first.
pub async fn handoff_events(app: &TestApp) -> Vec<(String, Value)> {
    let (status, v) = app.api(Method::GET, "events?limit=500", None).await;
    assert_eq!(status, 200);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["record_kind"] == "handoff")
        .map(|e| (e["event"].as_str().unwrap().to_owned(), e["detail"].clone()))
        .collect()
}

/// Just the names of the handoff events, in order.
pub async fn handoff_event_names(app: &TestApp) -> Vec<String> {
    handoff_events(app).await.into_iter().map(|e| e.0).collect()
}
