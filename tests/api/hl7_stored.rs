//! Messages laid over what is stored: a practitioner deleted since a message last
//! named it is written anew when a message names it again (the read before the commit
//! skips deleted resources; the write finds the tombstone and writes the next version).

use serde_json::Value;

use crate::helpers::TestApp;
use crate::hl7::{a01_as, assert_aa, fixture, send, visit};
use crate::test_both;

test_both!(a_deleted_practitioner_named_again_is_written_anew);

async fn a_deleted_practitioner_named_again_is_written_anew(app: TestApp) {
    assert_aa(
        &send(&app, &fixture("a01-v23-lf.hl7")).await,
        "MSG-A01-0001",
    );
    let enc = visit(&app).await;
    let attending = enc["participant"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["individual"]["reference"].as_str())
        .find(|r| r.starts_with("Practitioner/"))
        .expect("the visit names its attending")
        .to_owned();
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
