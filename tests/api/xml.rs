//! XML both ways: bodies, Accept, _format, and errors in the client's format.

use serde_json::Value;

use crate::helpers::{TestApp, JSON, XML};
use crate::test_both;

test_both!(xml_create_read_and_negotiation);

async fn xml_create_read_and_negotiation(app: TestApp) {
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/encounter-discharge.xml"
    ))
    .unwrap();
    let r = app
        .send_raw(reqwest::Method::POST, "Encounter", XML, body)
        .await;
    assert_eq!(r.status(), 201);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(JSON),
        "no Accept: JSON back"
    );
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "finished");
    assert_eq!(created["period"]["end"], "2026-11-14T16:30:00Z");
    let id = created["id"].as_str().unwrap();

    let r = app
        .client
        .get(app.url(&format!("Encounter/{id}")))
        .header("Accept", XML)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(XML));
    let xml = r.text().await.unwrap();
    assert!(
        xml.contains("<Encounter xmlns=\"http://hl7.org/fhir\">"),
        "{xml}"
    );
    assert!(xml.contains(&format!("<id value=\"{id}\"/>")));
    assert!(xml.contains("<end value=\"2026-11-14T16:30:00Z\"/>"));

    // _format wins over Accept.
    let r = app
        .client
        .get(app.url(&format!("Encounter/{id}?_format=json")))
        .header("Accept", XML)
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(JSON));
    let r = app
        .client
        .get(app.url("Encounter?_format=xml"))
        .send()
        .await
        .unwrap();
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Bundle xmlns=\"http://hl7.org/fhir\">"));
    let r = app
        .client
        .get(app.url("Encounter?_format=yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);

    // Errors come back in XML to an XML client.
    let r = app
        .client
        .get(app.url("Encounter/missing"))
        .header("Accept", XML)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("<OperationOutcome xmlns=\"http://hl7.org/fhir\">"),
        "{text}"
    );
    assert!(text.contains("<code value=\"not-found\"/>"));

    // Bad XML content: an unknown element, a bad date.
    let bad = "<Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"finished\"/><colour value=\"x\"/></Encounter>";
    let r = app
        .send_raw(reqwest::Method::POST, "Encounter", XML, bad)
        .await;
    assert_eq!(r.status(), 400);
    let bad = "<Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"finished\"/><class><code value=\"IMP\"/></class><period><start value=\"2026-02-30\"/></period></Encounter>";
    let r = app
        .send_raw(reqwest::Method::POST, "Encounter", XML, bad)
        .await;
    assert_eq!(r.status(), 400);
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["issue"][0]["expression"][0], "Encounter.period.start");
    assert_eq!(app.count("Encounter").await, 1);
}
