//! `$status` and `$events` take their parameters from the query or a POSTed
//! Parameters body (Backport IG): type-level `$status` narrowed by `id` and `status`,
//! `$events` by its numbers; unknown parameters and bad values refused.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::receiver::Receiver;
use crate::subscriptions::{discharged, subscribe, subscription, wait_status};
use crate::test_both;

test_both!(status_and_events_take_their_parameters);

/// The subscription ids a `$status` Bundle reports, sorted.
fn reported(bundle: &Value) -> Vec<String> {
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e["resource"]["parameter"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "subscription")?["valueReference"]["reference"]
                .as_str()?
                .rsplit('/')
                .next()
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids
}

fn parameters(params: &[(&str, &str, &str)]) -> Value {
    json!({"resourceType": "Parameters", "parameter": params.iter().map(|(name, kind, v)| {
        let mut p = json!({"name": name});
        p[*kind] = json!(v);
        p
    }).collect::<Vec<_>>()})
}

async fn status_and_events_take_their_parameters(app: TestApp) {
    let rx = Receiver::start().await;
    let active = subscribe(
        &app,
        &subscription("encounter-end", &[], &rx.url, "id-only"),
    )
    .await;
    let down = Receiver::start().await;
    down.answer(500, None);
    let created = app
        .create(&subscription("encounter-end", &[], &down.url, "id-only"))
        .await;
    let errored = created["id"].as_str().unwrap().to_owned();
    wait_status(&app, &errored, "error").await;
    let mut both = vec![active.clone(), errored.clone()];
    both.sort();

    // GET: no parameters, every subscription; `id` and `status` narrow (ORed within,
    // repeated or comma-separated).
    assert_eq!(reported(&app.search("Subscription/$status").await), both);
    let url = format!("Subscription/$status?id={errored}");
    assert_eq!(reported(&app.search(&url).await), [errored.as_str()]);
    let url = format!("Subscription/$status?id={errored},{active}");
    assert_eq!(reported(&app.search(&url).await), both);
    let url = "Subscription/$status?status=active";
    assert_eq!(reported(&app.search(url).await), [active.as_str()]);
    let url = "Subscription/$status?status=error&status=off";
    assert_eq!(reported(&app.search(url).await), [errored.as_str()]);
    let url = format!("Subscription/$status?id={active}&status=error");
    assert!(reported(&app.search(&url).await).is_empty());
    // The instance level ignores both, as the IG says.
    let url = format!("Subscription/{active}/$status?status=error");
    assert_eq!(reported(&app.search(&url).await), [active.as_str()]);

    // POST: the same from a Parameters body.
    let body = parameters(&[("id", "valueId", &errored)]);
    let r = app.post_json("Subscription/$status", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(reported(&r.json().await.unwrap()), [errored.as_str()]);
    let body = parameters(&[
        ("status", "valueCode", "active"),
        ("status", "valueCode", "error"),
    ]);
    let r = app.post_json("Subscription/$status", &body).await;
    assert_eq!(reported(&r.json().await.unwrap()), both);

    // Refused, naming what is wrong.
    for (url, says) in [
        (
            "Subscription/$status?status=gone".to_owned(),
            "status must be one of",
        ),
        (
            "Subscription/$status?since=1".to_owned(),
            "Unknown $status parameter 'since'",
        ),
    ] {
        let r = app.get(&url).await;
        assert_eq!(r.status(), 400, "{url}");
        let o: Value = r.json().await.unwrap();
        assert!(o.to_string().contains(says), "{url}: {o}");
    }
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "id", "valueReference": {"reference": "Subscription/x"}}]});
    let r = app.post_json("Subscription/$status", &body).await;
    assert_eq!(r.status(), 400);
    let o: Value = r.json().await.unwrap();
    assert!(o.to_string().contains("Parameters.parameter[0]"), "{o}");
    let r = app
        .post_json(
            "Subscription/$status",
            &json!({"resourceType": "Basic", "code": {"text": "x"}}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let o: Value = r.json().await.unwrap();
    assert!(
        o.to_string().contains("must be a Parameters resource"),
        "{o}"
    );

    // $events: the numbers and content level from a POSTed body, as from the query.
    app.create(&discharged("Patient/p-ops")).await;
    rx.wait("the discharge notification", |h| h.len() >= 2)
        .await;
    let url = format!("Subscription/{active}/$events");
    let body = parameters(&[
        ("eventsSinceNumber", "valueString", "1"),
        ("content", "valueCode", "full-resource"),
    ]);
    let r = app.post_json(&url, &body).await;
    assert_eq!(r.status(), 200);
    let ev: Value = r.json().await.unwrap();
    assert!(ev.to_string().contains("notification-event"), "{ev}");
    assert!(
        ev.to_string().contains("\"resourceType\":\"Encounter\""),
        "{ev}"
    );
    let body = parameters(&[("eventsSinceNumber", "valueString", "2")]);
    let none: Value = app.post_json(&url, &body).await.json().await.unwrap();
    assert!(!none.to_string().contains("notification-event"), "{none}");
    let body = parameters(&[("eventsSinceNumber", "valueString", "x")]);
    let r = app.post_json(&url, &body).await;
    assert_eq!(r.status(), 400);
    let o: Value = r.json().await.unwrap();
    assert!(
        o.to_string()
            .contains("eventsSinceNumber must be a whole number"),
        "{o}"
    );
}
