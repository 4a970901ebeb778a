//! The Provenance an ADT message leaves names what the message wrote (R4
//! `Provenance.target`: generated or updated), not what it repeated unchanged.

use serde_json::Value;

use crate::helpers::TestApp;
use crate::hl7::{a01_as, assert_aa, fixture, send, visit};
use crate::test_both;

test_both!(a_provenance_targets_only_what_its_message_wrote);

/// The targets of the Provenance for message `control`, sorted.
async fn targets(app: &TestApp, control: &str) -> Vec<String> {
    let all = app.search("Provenance?_count=50").await;
    let entries = all["entry"].as_array().cloned().unwrap_or_default();
    let p = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|p| p["entity"][0]["what"]["identifier"]["value"] == control)
        .unwrap_or_else(|| panic!("no Provenance for {control}: {all}"));
    let mut t: Vec<String> = p["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reference"].as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

fn types(refs: &[String]) -> Vec<&str> {
    refs.iter().map(|r| r.split('/').next().unwrap()).collect()
}

async fn a_provenance_targets_only_what_its_message_wrote(app: TestApp) {
    // The first message creates everything it names.
    assert_aa(
        &send(&app, &fixture("a01-v23-lf.hl7")).await,
        "MSG-A01-0001",
    );
    let first = targets(&app, "MSG-A01-0001").await;
    for t in [
        "Patient",
        "Encounter",
        "Condition",
        "Practitioner",
        "Location",
    ] {
        assert!(types(&first).contains(&t), "{t} in {first:?}");
    }

    // The same content under a new control id: only the visit gets a new version.
    let ack = send(&app, &a01_as("A08", "MSG-A08-SAME")).await;
    assert_aa(&ack, "MSG-A08-SAME");
    let enc = visit(&app).await;
    let enc_ref = format!("Encounter/{}", enc["id"].as_str().unwrap());
    assert_eq!(targets(&app, "MSG-A08-SAME").await, [enc_ref.clone()]);
    let patient_ref = enc["subject"]["reference"].as_str().unwrap().to_owned();
    let patient: Value = app.get(&patient_ref).await.json().await.unwrap();
    assert_eq!(
        patient["meta"]["versionId"], "1",
        "the patient was not rewritten"
    );

    // A new family name: the patient is written again, and named.
    let renamed = a01_as("A08", "MSG-A08-NAME").replace("DOE^JANE^Q", "ROE^JANE^Q");
    assert_aa(&send(&app, &renamed).await, "MSG-A08-NAME");
    let mut want = vec![enc_ref, patient_ref];
    want.sort();
    assert_eq!(targets(&app, "MSG-A08-NAME").await, want);
}
