//! Mr. Andrews' discharge (the seed's scenario 2) end to end from fixtures/andrews (the
//! demo in docs/demo-andrews.md runs the same steps with curl), on both stores; and the
//! sweep's single runner with two gateway processes on one PostgreSQL.

use chrono::Duration;
use serde_json::{json, Value};

use crate::faults::{config, free_port, start, wait_up, FreshDatabase};
use crate::handoff_support::{
    accountable, business, deadline, handoff_event_names, instant, item, operation, put_task, read,
    stamp, sweep, task_for, worklist,
};
use crate::helpers::{spawn_with, Backend, TestApp};
use crate::receiver::{Hit, Receiver};
use crate::subscriptions::subscribe;

crate::both_backends!(mr_andrews_is_handed_over_and_the_loop_closes);

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/andrews/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The demo's `[handoffs]` settings, read from fixtures/andrews/handoff.toml.
fn demo_handoffs() -> handoff::handoffs::HandoffSettings {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/andrews/handoff.toml");
    let s: handoff::config::Settings =
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    s.validate().unwrap();
    s.handoffs
}

async fn subscribe_fixture(app: &TestApp, name: &str, rx: &Receiver) {
    let mut s = fixture(name);
    s["channel"]["endpoint"] = json!(rx.url);
    subscribe(app, &s).await;
}

fn notified(hits: &[Hit], needle: &str) -> bool {
    hits.iter()
        .any(|h| h.kind() == "event-notification" && h.json.to_string().contains(needle))
}

async fn mr_andrews_is_handed_over_and_the_loop_closes(backend: Backend) {
    let Some(app) = spawn_with(backend, |s| {
        s.handoffs = demo_handoffs();
        s.handoffs.sweep_interval_secs = 0;
        // The production default: only Mr. Andrews' release (01-parties.json) and the
        // PCP rule let anyone hear about him.
        s.consent_default = "deny".into();
    })
    .await
    else {
        return;
    };
    let r = app.post_json("", &fixture("01-parties.json")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (pcp, on_call, coordinator) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    subscribe_fixture(&app, "02-subscription-pcp-discharges.json", &pcp).await;
    subscribe_fixture(&app, "03-subscription-on-call-escalations.json", &on_call).await;
    subscribe_fixture(
        &app,
        "04-subscription-coordinator-escalations.json",
        &coordinator,
    )
    .await;
    subscribe_fixture(&app, "05-subscription-pcp-referral-results.json", &pcp).await;

    // 1. Riverside discharges Mr. Andrews: Dr Okafor (his PCP, from
    //    Patient.generalPractitioner) hears of it with the 2-day follow-up, and is
    //    asked to accept.
    let r = app
        .put_json("Encounter/andrews-stay", &fixture("06-discharge.json"))
        .await;
    assert_eq!(r.status(), 201);
    pcp.wait("the discharge", |h| {
        notified(h, "See the PCP within 2 days")
    })
    .await;
    let task = task_for(&app, "Encounter/andrews-stay").await;
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["owner"]["reference"], "Practitioner/dr-okafor");
    assert_eq!(task["requester"]["reference"], "Organization/riverside");
    assert_eq!(accountable(&task), "Organization/riverside");
    assert!(task["description"]
        .as_str()
        .unwrap()
        .contains("within 2 days"));

    // 2. Dr Okafor stays silent: the practice's on-call clinician is asked next, then
    //    the hospital's coordinator.
    let due = deadline(&task).unwrap();
    let s = sweep(&app, due + Duration::hours(1)).await;
    assert_eq!(s["escalated"], json!([format!("Task/{id}")]));
    on_call
        .wait("the escalation", |h| notified(h, "escalated-to-alternate"))
        .await;
    let task = read(&app, &format!("Task/{id}")).await;
    let s = sweep(&app, deadline(&task).unwrap() + Duration::hours(1)).await;
    assert_eq!(s["escalated"], json!([format!("Task/{id}")]));
    coordinator
        .wait("the return to the hospital", |h| {
            notified(h, "escalated-to-sender")
        })
        .await;
    let list = worklist(&app, "Practitioner/riverside-coordinator", None).await;
    assert_eq!(item(&list, &format!("Task/{id}"))["category"], "escalated");

    // 3. Dr Okafor accepts: responsibility moves to her, due the follow-up visit.
    let (status, accepted) = operation(&app, &id, "accept", None).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accountable(&accepted), "Practitioner/dr-okafor");
    assert_eq!(deadline(&accepted), Some(instant("2026-11-16T16:30:00Z")));

    // 4. She refers him to Dr Chen, cardiology: a referral handoff, tracked.
    let r = app
        .put_json(
            "ServiceRequest/andrews-cardiology",
            &fixture("07-referral.json"),
        )
        .await;
    assert_eq!(r.status(), 201);
    let referral = task_for(&app, "ServiceRequest/andrews-cardiology").await;
    assert_eq!(referral["owner"]["reference"], "Practitioner/dr-chen");
    assert_eq!(accountable(&referral), "Practitioner/dr-okafor");
    let rid = referral["id"].as_str().unwrap().to_owned();
    let (status, taken) = operation(&app, &rid, "accept", None).await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(accountable(&taken), "Practitioner/dr-chen");
    pcp.wait("the referral accepted", |h| {
        notified(h, "\"status\":\"accepted\"")
    })
    .await;

    // 5. Dr Chen's consult note comes back to Dr Okafor: the loop closes.
    // (The consult note itself lives in Dr Chen's system; the Task points at it.)
    let done = put_task(&app, &taken, |t| {
        t["status"] = json!("completed");
        t["output"] = json!([{"type": {"text": "consult note"},
            "valueReference": {"reference": "DiagnosticReport/andrews-cardiology-consult"}}]);
    })
    .await;
    assert_eq!(business(&done), "completed");
    let hits = pcp
        .wait("the consult note", |h| {
            notified(h, "DiagnosticReport/andrews-cardiology-consult")
        })
        .await;
    assert!(notified(&hits, "\"status\":\"completed\""));

    // 6. Dr Okafor's worklist: the discharge she accepted, the referral closed.
    let list = worklist(&app, "Practitioner/dr-okafor", None).await;
    assert_eq!(item(&list, &format!("Task/{rid}"))["category"], "closed");
    let d = item(&list, &format!("Task/{id}"));
    assert_eq!(d["accountable"], "Practitioner/dr-okafor");
    assert!(d["last_delivery"]["state"].is_string(), "{d}");
    let names = handoff_event_names(&app).await;
    assert_eq!(
        names,
        [
            "HandoffRequested",
            "HandoffEscalated",
            "HandoffEscalated",
            "HandoffAccepted",
            "HandoffRequested",
            "HandoffAccepted",
            "HandoffCompleted"
        ]
    );
}

/// Two gateways on one PostgreSQL sweep at the same moment: one holds the lease and
/// escalates, the other does nothing; the handoff is escalated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_runs_on_one_gateway_at_a_time() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let client = reqwest::Client::new();
    let (p1, p2) = (free_port(), free_port());
    let with_clock = |name: &str, port: u16| {
        let path = config(&db.dir, name, port, db.url.as_str());
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n[handoffs]\ntest_clock = true\n");
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut a = start(&with_clock("a.toml", p1), p1);
    wait_up(&client, &a.base).await;
    let mut b = start(&with_clock("b.toml", p2), p2);
    wait_up(&client, &b.base).await;

    let mut enc = crate::records::encounter("finished", "Location/ward-1");
    enc["period"]["end"] = json!("2026-11-23T10:00:00Z");
    let r = client
        .post(format!("{}/Encounter", a.base))
        .header("Content-Type", "application/fhir+json")
        .body(enc.to_string())
        .send()
        .await
        .unwrap();
    let enc: Value = r.json().await.unwrap();
    let tasks: Value = client
        .get(format!(
            "{}/Task?focus=Encounter/{}",
            b.base,
            enc["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = &tasks["entry"][0]["resource"];
    let now = stamp(deadline(task).unwrap() + Duration::hours(1));
    let sweep_at = |base: String| {
        let (client, now) = (client.clone(), now.clone());
        async move {
            let root = base.trim_end_matches("/fhir");
            let r = client
                .post(format!("{root}/api/v1/sweep?now={now}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let (sa, sb) = tokio::join!(sweep_at(a.base.clone()), sweep_at(b.base.clone()));
    let ran: Vec<bool> = [&sa, &sb]
        .iter()
        .map(|s| s["ran"].as_bool().unwrap())
        .collect();
    assert_eq!(
        ran.iter().filter(|r| **r).count(),
        1,
        "exactly one ran: {sa} {sb}"
    );
    let (winner, loser) = if ran[0] {
        (&a.base, &b.base)
    } else {
        (&b.base, &a.base)
    };
    let escalated: usize = [&sa, &sb]
        .iter()
        .map(|s| s["escalated"].as_array().unwrap().len())
        .sum();
    assert_eq!(escalated, 1);
    // The lease stays with the winner: the other still does nothing, the winner runs.
    assert_eq!(sweep_at(loser.clone()).await["ran"], false);
    assert_eq!(sweep_at(winner.clone()).await["ran"], true);
    let root = a.base.trim_end_matches("/fhir");
    let events: Value = client
        .get(format!("{root}/api/v1/events?limit=500"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "HandoffEscalated")
        .count();
    assert_eq!(n, 1, "escalated once: {events}");
    for g in [&mut a, &mut b] {
        g.child.kill().unwrap();
        g.child.wait().unwrap();
    }
    db.drop().await;
}
