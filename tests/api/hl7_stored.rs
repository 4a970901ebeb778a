//! Messages laid over what is stored. The HL7 path remembers what it last saw stored
//! (`hl7::known`) and commits with a guard that the remembered versions are still
//! current; these tests change what it remembers behind its back (a delete, a FHIR
//! update) and check that the next message is applied over what is really stored.

use serde_json::Value;

use crate::helpers::TestApp;
use crate::hl7::{a01_as, assert_aa, client, fixture, send, visit};
use crate::test_both;

test_both!(
    a_deleted_practitioner_named_again_is_written_anew,
    a_practitioner_changed_through_fhir_is_written_back_by_the_next_message,
    a_visit_changed_through_fhir_is_what_the_next_message_is_laid_over,
    updates_racing_for_one_visit_are_each_applied
);

/// The visit's attending, `Practitioner/id`.
async fn attending(app: &TestApp) -> String {
    let enc = visit(app).await;
    enc["participant"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["individual"]["reference"].as_str())
        .find(|r| r.starts_with("Practitioner/"))
        .expect("the visit names its attending")
        .to_owned()
}

/// Each message on a connection of its own, all connected before any is sent, sent at
/// once; their ACKs in order.
pub async fn send_at_once(app: &TestApp, msgs: Vec<String>) -> Vec<String> {
    let mut clients = Vec::new();
    for _ in &msgs {
        clients.push(client(app).await);
    }
    let sends = clients
        .into_iter()
        .zip(msgs)
        .map(|(mut c, m)| tokio::spawn(async move { c.send(m.as_bytes()).await.unwrap() }));
    futures::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

async fn admit(app: &TestApp) {
    assert_aa(&send(app, &fixture("a01-v23-lf.hl7")).await, "MSG-A01-0001");
}

async fn a_deleted_practitioner_named_again_is_written_anew(app: TestApp) {
    admit(&app).await;
    let attending = attending(&app).await;
    let r = app.client.delete(app.url(&attending)).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(app.get(&attending).await.status(), 410);

    // The same content again: the practitioner, deleted, is written anew.
    assert_aa(
        &send(&app, &a01_as("A08", "MSG-A08-BACK")).await,
        "MSG-A08-BACK",
    );
    let back: Value = app.get(&attending).await.json().await.unwrap();
    assert_eq!(back["meta"]["versionId"], "3", "{back}");
    assert_eq!(visit(&app).await["meta"]["versionId"], "2");
}

/// The message's practitioner is remembered as the message wrote it; a FHIR client
/// then renames it. The next message naming it as before must see the rename (and
/// write the message's name back), not take the remembered version for current.
async fn a_practitioner_changed_through_fhir_is_written_back_by_the_next_message(app: TestApp) {
    admit(&app).await;
    let attending = attending(&app).await;
    let mut p: Value = app.get(&attending).await.json().await.unwrap();
    let said = p["name"].clone();
    p["name"] = serde_json::json!([{"family": "Renamed", "given": ["Through FHIR"]}]);
    let r = app.put_json(&attending, &p).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    assert_aa(
        &send(&app, &a01_as("A08", "MSG-A08-AGAIN")).await,
        "MSG-A08-AGAIN",
    );
    let now: Value = app.get(&attending).await.json().await.unwrap();
    assert_eq!(now["meta"]["versionId"], "3", "{now}");
    assert_eq!(now["name"], said, "{now}");
}

/// A FHIR client adds to the visit what no message maps (a priority); the next
/// message is laid over that version, not the one remembered from the admission.
async fn a_visit_changed_through_fhir_is_what_the_next_message_is_laid_over(app: TestApp) {
    admit(&app).await;
    let mut enc = visit(&app).await;
    let id = enc["id"].as_str().unwrap().to_owned();
    enc["priority"] = serde_json::json!({"text": "urgent"});
    let r = app.put_json(&format!("Encounter/{id}"), &enc).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    assert_aa(
        &send(&app, &a01_as("A08", "MSG-A08-OVER")).await,
        "MSG-A08-OVER",
    );
    let now = visit(&app).await;
    assert_eq!(now["meta"]["versionId"], "3", "{now}");
    assert_eq!(now["priority"]["text"], "urgent", "{now}");
}

/// Four different A08s for one visit at once, on four connections: each was laid over
/// a version another may have replaced before its commit (remembered or read), so
/// some fail their commit and are applied again. Each failure is another's success,
/// so none needs more than four attempts: every one is applied, in some order.
async fn updates_racing_for_one_visit_are_each_applied(app: TestApp) {
    admit(&app).await;
    let msgs = (0..4).map(|i| a01_as("A08", &format!("MSG-A08-RACE{i}")));
    let acks = send_at_once(&app, msgs.collect()).await;
    for (i, a) in acks.iter().enumerate() {
        assert_aa(a, &format!("MSG-A08-RACE{i}"));
    }
    assert_eq!(visit(&app).await["meta"]["versionId"], "5");
    assert_eq!(app.count("Provenance").await, 5);
}
