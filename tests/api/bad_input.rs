//! Every kind of bad input gets a precise OperationOutcome and leaves nothing stored.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_outcome, spawn_with, Backend, TestApp, JSON, XML};
use crate::test_both;

test_both!(
    bad_bodies_are_refused_and_nothing_is_stored,
    bad_updates,
    oversize_body_is_413
);

fn encounter() -> Value {
    json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-11-10T08:00:00Z", "end": "2026-11-14T16:30:00Z"}
    })
}

fn with(mut v: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut v);
    v
}

async fn bad_bodies_are_refused_and_nothing_is_stored(app: TestApp) {
    let post = |body: String, ct: &'static str| app.send_raw(Method::POST, "Encounter", ct, body);
    // Malformed JSON and XML.
    assert_outcome(
        post("{\"resourceType\": \"Encounter\",".into(), JSON).await,
        400,
        "structure",
        None,
    )
    .await;
    assert_outcome(
        post(
            "<Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"finished\">".into(),
            XML,
        )
        .await,
        400,
        "structure",
        None,
    )
    .await;
    assert_outcome(
        post("not json at all".into(), JSON).await,
        400,
        "structure",
        None,
    )
    .await;
    assert_outcome(post("[1,2,3]".into(), JSON).await, 400, "structure", None).await;
    assert_outcome(post(String::new(), JSON).await, 400, "required", None).await;
    // Unknown element, wrong JSON type, empty array.
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(encounter(), |e| e["colour"] = json!("blue")),
            "structure",
            "Encounter.colour",
        ),
        (
            with(encounter(), |e| e["status"] = json!(7)),
            "value",
            "Encounter.status",
        ),
        (
            with(encounter(), |e| e["identifier"] = json!([])),
            "structure",
            "Encounter.identifier",
        ),
        (
            with(encounter(), |e| e["class"] = json!([{"code": "IMP"}])),
            "structure",
            "Encounter.class",
        ),
        // Bad date, bad dateTime (no zone with a time), impossible calendar day.
        (
            with(encounter(), |e| {
                e["period"]["start"] = json!("2026-02-30T08:00:00Z")
            }),
            "value",
            "Encounter.period.start",
        ),
        (
            with(encounter(), |e| {
                e["period"]["end"] = json!("2026-11-14T16:30:00")
            }),
            "value",
            "Encounter.period.end",
        ),
        (
            with(encounter(), |e| e["period"]["end"] = json!("yesterday")),
            "value",
            "Encounter.period.end",
        ),
        // An instant needs a full date, a time and a zone.
        (
            with(encounter(), |e| {
                e["extension"] = json!([{"url": "http://example.org/fhir/StructureDefinition/seen-at",
                    "valueInstant": "2026-11-14"}])
            }),
            "value",
            "Encounter.extension[0].valueInstant",
        ),
        // A code outside its required value set; a missing required element.
        (
            with(encounter(), |e| e["status"] = json!("discharged-ish")),
            "code-invalid",
            "Encounter.status",
        ),
        (
            with(encounter(), |e| {
                e.as_object_mut().unwrap().remove("status");
            }),
            "required",
            "Encounter.status",
        ),
        // A reference to a type the element does not allow.
        (
            with(encounter(), |e| {
                e["subject"] = json!({"reference": "Practitioner/dr1"})
            }),
            "value",
            "Encounter.subject",
        ),
        // A contained resource with a bad id.
        (
            with(encounter(), |e| {
                e["contained"] = json!([{"resourceType": "Patient", "id": "bad id!"}])
            }),
            "value",
            "Encounter.contained[0].id",
        ),
    ];
    for (body, code, expr) in cases {
        let r = app.post_json("Encounter", &body).await;
        assert_outcome(r, 400, code, Some(expr)).await;
    }
    // The body's type differs from the URL's; an unknown resource type in the body.
    assert_outcome(
        app.post_json("Encounter", &json!({"resourceType": "Patient"}))
            .await,
        400,
        "invalid",
        None,
    )
    .await;
    assert_outcome(
        app.post_json("Encounter", &json!({"resourceType": "Nonsense"}))
            .await,
        400,
        "structure",
        None,
    )
    .await;
    // Nesting deeper than the limit, in JSON and XML.
    let mut deep = json!({"url": "x"});
    for _ in 0..200 {
        deep = json!({"url": "x", "extension": [deep]});
    }
    let deep_body = with(encounter(), |e| e["extension"] = json!([deep]));
    assert_outcome(
        app.post_json("Encounter", &deep_body).await,
        400,
        "structure",
        None,
    )
    .await;
    let deep_xml = format!(
        "<Encounter xmlns=\"http://hl7.org/fhir\">{}{}</Encounter>",
        "<extension url=\"x\">".repeat(300),
        "</extension>".repeat(300)
    );
    assert_outcome(post(deep_xml, XML).await, 400, "structure", None).await;
    // Unsupported media type.
    assert_outcome(
        post(encounter().to_string(), "text/plain").await,
        415,
        "not-supported",
        None,
    )
    .await;
    // Nothing at all was stored by any of the above.
    assert_eq!(app.count("Encounter").await, 0);
    assert_eq!(app.count("Patient").await, 0);
    assert_eq!(app.client_history_total().await, 0);
}

async fn bad_updates(app: TestApp) {
    let created = app.create(&encounter()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Id in the body differs from the URL; missing; URL id breaks the id rule.
    let other = with(created.clone(), |e| e["id"] = json!("other-id"));
    assert_outcome(
        app.put_json(&format!("Encounter/{id}"), &other).await,
        400,
        "invalid",
        None,
    )
    .await;
    let none = with(created.clone(), |e| {
        e.as_object_mut().unwrap().remove("id");
    });
    assert_outcome(
        app.put_json(&format!("Encounter/{id}"), &none).await,
        400,
        "required",
        None,
    )
    .await;
    let long = "x".repeat(65);
    let bad = with(created.clone(), |e| e["id"] = json!(long));
    assert_outcome(
        app.put_json(&format!("Encounter/{long}"), &bad).await,
        400,
        "value",
        None,
    )
    .await;
    let bad = with(created.clone(), |e| e["id"] = json!("a_b"));
    assert_outcome(
        app.put_json("Encounter/a_b", &bad).await,
        400,
        "value",
        None,
    )
    .await;
    // A malformed If-Match.
    let r = app
        .client
        .put(app.url(&format!("Encounter/{id}")))
        .header("Content-Type", JSON)
        .header("If-Match", "yesterday")
        .body(created.to_string())
        .send()
        .await
        .unwrap();
    assert_outcome(r, 400, "value", None).await;
    // A bad body on update changes nothing.
    let broken = with(created.clone(), |e| {
        e["period"]["start"] = json!("2026-13-01T00:00:00Z")
    });
    assert_outcome(
        app.put_json(&format!("Encounter/{id}"), &broken).await,
        400,
        "value",
        Some("Encounter.period.start"),
    )
    .await;
    let now: Value = app
        .get(&format!("Encounter/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["meta"]["versionId"], "1");
    assert_eq!(
        app.search(&format!("Encounter/{id}/_history")).await["total"],
        1
    );
}

async fn oversize_body_is_413(app: TestApp) {
    drop(app);
    let backend = Backend::Sqlite;
    let Some(app) = spawn_with(backend, |s| s.max_body_bytes = 4096).await else {
        return;
    };
    let big = with(
        encounter(),
        |e| e["text"] = json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "x".repeat(8000))}),
    );
    assert_outcome(
        app.post_json("Encounter", &big).await,
        413,
        "too-long",
        None,
    )
    .await;
    // Also when the client streams without announcing a length.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(big.to_string().into_bytes())]);
    let r = app
        .client
        .post(app.url("Encounter"))
        .header("Content-Type", JSON)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_outcome(r, 413, "too-long", None).await;
    assert_eq!(app.count("Encounter").await, 0);
}
