//! A subscriber with a backlog gets several events per notification: in order, each
//! once, a failed batch retried with the same events under the same webhook id, and
//! never more events than the subscription's `max-count`; consent decided per event.

use std::time::Duration;

use serde_json::{json, Value};

use crate::consent_support::{
    agents, consent, ledger, patient, wait_ledger, DENIED, DISCLOSED, RECIPIENT,
};
use crate::helpers::TestApp;
use crate::receiver::{param, Hit, Receiver};
use crate::subscriptions::{discharged, subscribe, subscription};
use crate::{test_both, test_both_denying};

test_both!(a_backlog_goes_out_in_batches, max_count_bounds_a_batch);
test_both_denying!(consent_is_decided_per_event_of_a_batch);

const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

/// Event notifications as (answer, webhook id, event numbers), in arrival order.
fn notifications(hits: &[Hit]) -> Vec<(u16, String, Vec<i64>)> {
    hits.iter()
        .filter(|h| h.kind() == "event-notification")
        .map(|h| {
            let id = h.header("webhook-id").unwrap_or_default().to_owned();
            (h.answered, id, h.event_numbers())
        })
        .collect()
}

/// While the receiver refuses, event 1 is being retried alone and events 2..=n queue
/// behind it; `then` scripts the answers once it accepts again.
async fn backlog(app: &TestApp, rx: &Receiver, n: usize, then: &[u16]) {
    rx.answer(503, None);
    app.create(&discharged("Patient/b1")).await;
    rx.wait("a refused first event", |h| {
        h.iter().any(|h| h.answered == 503)
    })
    .await;
    for i in 2..=n {
        app.create(&discharged(&format!("Patient/b{i}"))).await;
    }
    rx.then_answer(then);
    rx.answer(200, None);
}

fn delivered_numbers(hits: &[Hit]) -> Vec<Vec<i64>> {
    notifications(hits)
        .into_iter()
        .filter(|(status, _, _)| *status == 200)
        .map(|(_, _, numbers)| numbers)
        .collect()
}

async fn a_backlog_goes_out_in_batches(app: TestApp) {
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &subscription("encounter-end", &[], &rx.url, "id-only"),
    )
    .await;
    // Event 1 goes through; the batch behind it is refused once (come back in a
    // second), and event 6 is written before its retry: the retry still carries 2..=5.
    backlog(&app, &rx, 5, &[200, 503]).await;
    rx.answer(200, Some("1"));
    rx.wait("the batch refused", |h| {
        h.iter()
            .any(|h| h.answered == 503 && h.event_numbers().len() > 1)
    })
    .await;
    app.create(&discharged("Patient/b6")).await;
    let hits = rx
        .wait("all six events", |h| {
            delivered_numbers(h).concat().len() >= 6
        })
        .await;
    assert_eq!(
        delivered_numbers(&hits),
        [vec![1], vec![2, 3, 4, 5], vec![6]]
    );
    let sent = notifications(&hits);
    let first = &sent.iter().find(|n| n.2 == [1]).unwrap().1;
    let batch: Vec<_> = sent.iter().filter(|n| n.2.len() > 1).collect();
    assert_eq!(
        batch.iter().map(|n| n.0).collect::<Vec<_>>(),
        [503, 200],
        "the batch was refused once, then accepted: {sent:?}"
    );
    assert_eq!(batch[0].2, batch[1].2, "the retry carries the same events");
    assert_eq!(batch[0].1, batch[1].1, "the retry has the same webhook id");
    assert_ne!(
        &batch[0].1, first,
        "another notification, another webhook id"
    );
    // The status says how far the subscription has got: the batch's last event.
    let last = hits
        .iter()
        .find(|h| h.answered == 200 && h.event_numbers().len() > 1)
        .unwrap();
    let status = &last.json["entry"][0]["resource"];
    assert_eq!(param(status, "events-since-subscription-start"), "5");
    // One focus entry per event.
    let focus: Vec<_> = last.json["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["fullUrl"].as_str())
        .filter(|u| u.contains("/Encounter/"))
        .collect();
    assert_eq!(focus.len(), 4, "{focus:?}");
    // Delivered is delivered: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.delivered_events().len(), 3);
}

async fn max_count_bounds_a_batch(app: TestApp) {
    let rx = Receiver::start().await;
    let mut sub = subscription("encounter-end", &[], &rx.url, "id-only");
    sub["channel"]["extension"]
        .as_array_mut()
        .unwrap()
        .push(json!({"url": format!("{BACKPORT}backport-max-count"), "valuePositiveInt": 2}));
    subscribe(&app, &sub).await;
    backlog(&app, &rx, 5, &[]).await;
    let hits = rx
        .wait("all five events", |h| {
            delivered_numbers(h).concat().len() >= 5
        })
        .await;
    assert_eq!(delivered_numbers(&hits), [vec![1], vec![2, 3], vec![4, 5]]);
    // The ledger: one disclosure per event and attempt (those of a notification are
    // written together; the first event's refused attempt is one too), each found by
    // its patient.
    let entries = wait_ledger(&app, DISCLOSED, 6).await;
    assert_eq!(entries.iter().filter(|e| e["outcome"] == "4").count(), 1);
    let mut numbers: Vec<String> = entries
        .iter()
        .filter(|e| e["outcome"] == "0")
        .flat_map(|e| e["entity"].as_array().cloned().unwrap_or_default())
        .flat_map(|en| en["detail"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["type"] == "event-number")
        .filter_map(|d| d["valueString"].as_str().map(str::to_owned))
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["1", "2", "3", "4", "5"]);
    for e in &entries {
        let who = e["entity"][0]["what"]["reference"].as_str().unwrap();
        let found = ledger(&app, &format!("patient={who}&{DISCLOSED}")).await;
        assert!(found.iter().any(|f| f["id"] == e["id"]), "{who}");
    }
}

async fn consent_is_decided_per_event_of_a_batch(app: TestApp) {
    let practice = "Organization/practice-b";
    patient(&app, "b1", "Practitioner/elsewhere", None).await;
    patient(&app, "b2", "Practitioner/elsewhere", None).await;
    app.create(&consent("Patient/b1", "permit", practice, None))
        .await;
    let c2 = app
        .create(&consent("Patient/b2", "permit", practice, None))
        .await;
    let rx = Receiver::start().await;
    let mut sub = subscription("encounter-end", &[], &rx.url, "id-only");
    sub["extension"] = json!([{"url": RECIPIENT,
        "extension": [{"url": "actor", "valueReference": {"reference": practice}}]}]);
    subscribe(&app, &sub).await;
    // Event 1 (b1) is refused and retried alone; events 2 (b2) and 3 (b1) queue.
    rx.answer(503, None);
    app.create(&discharged("Patient/b1")).await;
    rx.wait("a refused first event", |h| {
        h.iter().any(|h| h.answered == 503)
    })
    .await;
    app.create(&discharged("Patient/b2")).await;
    app.create(&discharged("Patient/b1")).await;
    // b2 withdraws the release before the batch is claimed.
    let mut revoked = c2.clone();
    revoked["status"] = json!("inactive");
    let r = app
        .put_json(&format!("Consent/{}", c2["id"].as_str().unwrap()), &revoked)
        .await;
    assert_eq!(r.status(), 200);
    rx.answer(200, None);
    let hits = rx
        .wait("events 1 and 3", |h| {
            delivered_numbers(h).concat().len() >= 2
        })
        .await;
    // b2's event, withheld at its first claim, took no number: b1's second discharge
    // is the subscriber's event 2, and its numbers never skip.
    assert_eq!(delivered_numbers(&hits), [vec![1], vec![2]]);
    let denial = wait_ledger(&app, &format!("patient=Patient/b2&{DENIED}"), 1).await;
    assert_eq!(agents(&denial[0]), [practice]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        delivered_numbers(&rx.hits()).concat(),
        [1, 2],
        "b2's event never goes"
    );
    let second = rx
        .hits()
        .into_iter()
        .find(|h| h.answered == 200 && h.event_numbers() == [2])
        .unwrap();
    let focus = second.json["entry"][0]["resource"]["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "notification-event")
        .flat_map(|p| p["part"].as_array().unwrap().clone())
        .find(|p| p["name"] == "focus")
        .unwrap()["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    // The focus is an absolute URL: its last two segments are Encounter/{id}.
    let path = focus.rsplitn(3, '/').collect::<Vec<_>>();
    let encounter: Value = app
        .get(&format!("{}/{}", path[1], path[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        encounter["subject"]["reference"], "Patient/b1",
        "event 2 is b1's"
    );
}

/// On PostgreSQL an event's outbox row can commit after rows queued later were claimed
/// (ids come from a sequence; commits land in any order). Such a row must wait for the
/// notification in flight or being retried: the subscriber still gets its events one
/// notification at a time, in number order. (SQLite's single writer commits in id
/// order.) The late row is written here by a transaction of the test's own, held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_row_committed_late_waits_for_the_retry() {
    let Some(app) = crate::helpers::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    // An event to carry: a discharge before anyone subscribed.
    app.create(&discharged("Patient/late-0")).await;
    let rx = Receiver::start().await;
    let sub = subscribe(
        &app,
        &subscription("encounter-end", &[], &rx.url, "id-only"),
    )
    .await;
    let mut other = app.pg_connection().await;
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    let (late,): (i64,) = sqlx::query_as(
        "INSERT INTO outbox (subscription_id, kind, event_seq, webhook_id, state, next_attempt, created) \
         SELECT $1, 'event-notification', max(seq), 'late-row', 'pending', 0, 0 FROM domain_events \
         WHERE event = 'PatientDischarged' RETURNING id",
    )
    .bind(&sub)
    .fetch_one(&mut other)
    .await
    .unwrap();
    // A later discharge's row (a higher id) commits first, is numbered 1 and refused.
    rx.answer(503, None);
    app.create(&discharged("Patient/late-1")).await;
    rx.wait("a refused first event", |h| {
        h.iter().any(|h| h.answered == 503)
    })
    .await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    // The late row is now the lowest pending id; event 1 waits for its next retry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    rx.answer(200, None);
    let hits = rx
        .wait("both events delivered", |h| {
            delivered_numbers(h).concat().len() >= 2
        })
        .await;
    let sent = notifications(&hits);
    let first_ok = sent.iter().position(|n| n.0 == 200).unwrap();
    assert!(
        sent[..=first_ok].iter().all(|n| n.2 == [1]),
        "nothing overtook event 1 while it was retried: {sent:?}"
    );
    assert_eq!(delivered_numbers(&hits), [vec![1], vec![2]], "{sent:?}");
    let (number,): (Option<i64>,) = sqlx::query_as("SELECT event_number FROM outbox WHERE id = $1")
        .bind(late)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(number, Some(2), "the late row went second, as event 2");
}
