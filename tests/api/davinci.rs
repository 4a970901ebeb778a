//! Da Vinci Unsolicited Notifications both ways: a subscriber on the message channel
//! receives message Bundles at its `$process-message`, and the gateway's own
//! `POST /fhir/$process-message` stores what a message carries, raising the same
//! events (and so notifying its own subscribers).

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::receiver::Receiver;
use crate::records::encounter;
use crate::subscriptions::subscription;
use crate::test_both;

test_both!(
    a_discharge_goes_out_as_a_da_vinci_message,
    an_inbound_discharge_message_is_stored_and_notified,
    bad_messages_are_refused_and_nothing_is_stored,
    a_resent_message_gets_its_first_answer_and_is_applied_once,
);

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/davinci/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn a_discharge_goes_out_as_a_da_vinci_message(app: TestApp) {
    let rx = Receiver::start().await;
    let endpoint = rx.url.trim_end_matches("/notify").to_owned();
    let mut sub = subscription(
        "encounter-end",
        &["Encounter?patient=Patient/dv1"],
        &endpoint,
        "full-resource",
    );
    sub["channel"]["type"] = json!("message");
    let created = app.create(&sub).await;
    assert_eq!(
        created["status"], "active",
        "no handshake on the message channel: {created}"
    );

    let patient = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Example"}]}))
        .await;
    let pid = patient["id"].as_str().unwrap();
    let mut enc = encounter("finished", "Location/ward-1");
    enc["subject"]["reference"] = json!(format!("Patient/{pid}"));
    enc["period"]["end"] = json!("2026-11-23T10:00:00Z");
    // Filtered on Patient/dv1: this one must not go out...
    app.create(&enc).await;
    // ...this one must.
    let mut sub2 = sub.clone();
    sub2["_criteria"]["extension"][0]["valueString"] =
        json!(format!("Encounter?patient=Patient/{pid}"));
    app.create(&sub2).await;
    let enc2 = app.create(&enc).await;
    let hits = rx.wait("the message", |h| !h.is_empty()).await;
    assert_eq!(hits.len(), 1, "only the matching subscription was notified");
    let m = &hits[0].json;
    assert_eq!(m["type"], "message");
    let header = &m["entry"][0]["resource"];
    assert_eq!(header["resourceType"], "MessageHeader");
    assert_eq!(header["eventCoding"]["code"], "notification-discharge");
    assert!(header["focus"][0]["reference"]
        .as_str()
        .unwrap()
        .ends_with(&format!("Encounter/{}", enc2["id"].as_str().unwrap())));
    let types: Vec<&str> = m["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    assert!(
        types.contains(&"Encounter") && types.contains(&"Patient"),
        "{types:?}"
    );
    assert!(hits[0].header("webhook-signature").is_some());
}

async fn an_inbound_discharge_message_is_stored_and_notified(app: TestApp) {
    let rx = Receiver::start().await;
    let sub = subscription("encounter-end", &[], &rx.url, "id-only");
    let created = app.create(&sub).await;
    let id = created["id"].as_str().unwrap();
    rx.wait("the handshake", |h| !h.is_empty()).await;
    let start = std::time::Instant::now();
    while app
        .get(&format!("Subscription/{id}"))
        .await
        .json::<Value>()
        .await
        .unwrap()["status"]
        != "active"
    {
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let message = fixture("discharge-notification.json");
    let r = app.post_json("$process-message", &message).await;
    let status = r.status();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "message");
    let header = &answer["entry"][0]["resource"];
    assert_eq!(header["response"]["code"], "ok");
    assert_eq!(
        header["response"]["identifier"],
        message["entry"][0]["resource"]["id"]
    );
    // What it carried is stored, and it raised the discharge like a FHIR write would.
    let enc_id = &carried_encounter(&message);
    let stored: Value = app
        .get(&format!("Encounter/{enc_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["status"], "finished");
    assert!(app
        .event_names()
        .await
        .contains(&"PatientDischarged".to_owned()));
    let hits = rx
        .wait("the notification", |h| {
            h.iter().any(|h| h.kind() == "event-notification")
        })
        .await;
    assert!(hits
        .iter()
        .any(|h| h.json.to_string().contains(&format!("Encounter/{enc_id}"))));
}

async fn bad_messages_are_refused_and_nothing_is_stored(app: TestApp) {
    let mut not_message = fixture("discharge-notification.json");
    not_message["type"] = json!("collection");
    let mut no_event = fixture("discharge-notification.json");
    no_event["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("eventCoding");
    let mut lost_focus = fixture("discharge-notification.json");
    lost_focus["entry"][0]["resource"]["focus"] =
        json!([{"reference": "https://gw.example.org/fhir/Encounter/not-in-the-bundle"}]);
    for (body, want) in [
        (not_message, "Bundle.type"),
        (no_event, "Bundle.entry[0].resource.event"),
        (lost_focus, "Bundle.entry[0].resource.focus[0]"),
    ] {
        let r = app.post_json("$process-message", &body).await;
        let status = r.status().as_u16();
        let oo: Value = r.json().await.unwrap();
        assert!(status == 400 || status == 422, "{status}: {oo}");
        assert!(oo.to_string().contains(want), "{want} not named: {oo}");
    }
    let r = app
        .post_json("$process-message", &json!({"resourceType": "Patient"}))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("Encounter").await, 0);
    assert_eq!(app.count("Patient").await, 0);
}

/// The id of the Encounter a message carries.
fn carried_encounter(message: &Value) -> String {
    let entries = message["entry"].as_array().unwrap();
    let enc = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Encounter")
        .unwrap();
    enc["resource"]["id"].as_str().unwrap().to_owned()
}

async fn history_len(app: &TestApp, path: &str) -> usize {
    app.search(path).await["entry"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn a_resent_message_gets_its_first_answer_and_is_applied_once(app: TestApp) {
    let message = fixture("discharge-notification.json");
    let history = format!("Encounter/{}/_history", carried_encounter(&message));
    let first: Value = app
        .post_json("$process-message", &message)
        .await
        .json()
        .await
        .unwrap();
    // The sender lost that answer and sends the message again, twice at once.
    let (a, b) = tokio::join!(
        app.post_json("$process-message", &message),
        app.post_json("$process-message", &message)
    );
    for r in [a, b] {
        assert_eq!(r.status(), 200);
        let again: Value = r.json().await.unwrap();
        assert_eq!(again, first, "a resend is answered with the first response");
    }
    assert_eq!(history_len(&app, &history).await, 1, "applied once");
    let discharges =
        |names: Vec<String>| names.iter().filter(|n| *n == "PatientDischarged").count();
    assert_eq!(discharges(app.event_names().await), 1);

    // The same message id from another sender is another message.
    let mut other = message.clone();
    other["entry"][0]["resource"]["source"]["endpoint"] = json!("https://other.example.org/fhir");
    let r = app.post_json("$process-message", &other).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_ne!(answer["id"], first["id"], "a new response");
    assert_eq!(history_len(&app, &history).await, 2, "applied");
}
