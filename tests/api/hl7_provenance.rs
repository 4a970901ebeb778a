//! The Provenance an ADT message leaves names what the message wrote (R4
//! `Provenance.target`: generated or updated), not what it repeated unchanged; the
//! patient always, for the patient's compartment.

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

    // The same content under a new control id: only the visit gets a new version;
    // the patient is named all the same (the Provenance is in its compartment, and
    // consent decides reads of it by that).
    let ack = send(&app, &a01_as("A08", "MSG-A08-SAME")).await;
    assert_aa(&ack, "MSG-A08-SAME");
    let enc = visit(&app).await;
    let enc_ref = format!("Encounter/{}", enc["id"].as_str().unwrap());
    let patient_ref = enc["subject"]["reference"].as_str().unwrap().to_owned();
    let mut want = vec![enc_ref.clone(), patient_ref.clone()];
    want.sort();
    assert_eq!(targets(&app, "MSG-A08-SAME").await, want);
    let patient: Value = app.get(&patient_ref).await.json().await.unwrap();
    assert_eq!(
        patient["meta"]["versionId"], "1",
        "the patient was not rewritten"
    );
    let in_compartment = app
        .search(&format!("Provenance?target={patient_ref}"))
        .await;
    assert_eq!(in_compartment["total"], 2, "{in_compartment}");

    // A new attending: that practitioner is written, and named.
    let attending = a01_as("A08", "MSG-A08-ATT").replace("ATT01^JONES", "ATT02^JONES");
    assert_aa(&send(&app, &attending).await, "MSG-A08-ATT");
    let named = targets(&app, "MSG-A08-ATT").await;
    assert_eq!(
        types(&named),
        ["Encounter", "Patient", "Practitioner"],
        "{named:?}"
    );
}
