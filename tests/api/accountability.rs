//! Handoffs (issue #6), on both stores: discharge and referral handoffs through their
//! lifecycle (accept, decline, silence -> escalation with the test clock, completion
//! with the result pushed back to the referrer), deadline configuration, the worklist
//! and the FHIR search over Tasks. Mr. Andrews' scenario and the two-gateway sweep are
//! in `andrews.rs`.

use chrono::{Datelike, Duration, Utc, Weekday};
use reqwest::Method;
use serde_json::{json, Value};

use crate::handoff_support::*;
use crate::helpers::{assert_outcome, spawn_with, Backend};
use crate::receiver::Receiver;
use crate::records::encounter;
use crate::subscriptions::{subscribe, subscription};

crate::both_backends!(
    a_discharge_handoff_is_acknowledged_accepted_and_completed,
    a_declined_referral_goes_straight_back_to_the_sender,
    a_silent_receiver_is_escalated_step_by_step,
    a_completed_referral_brings_the_result_back_to_the_referrer,
    deadlines_follow_the_configuration,
    worklist_and_task_search,
);

fn discharge(follow_up_days: Option<u32>) -> Value {
    let mut e = encounter("finished", "Location/ward-1");
    e["period"]["end"] = json!("2026-11-23T10:00:00Z");
    if let Some(d) = follow_up_days {
        e["extension"] = json!([{"url": "http://handoff.example.org/fhir/StructureDefinition/follow-up",
            "extension": [{"url": "what", "valueString": "See the PCP"},
                          {"url": "withinDays", "valuePositiveInt": d}]}]);
    }
    e
}

fn referral() -> Value {
    json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p3"}, "code": {"text": "Cardiology consult"},
        "requester": {"reference": PCP}, "performer": [{"reference": "Practitioner/cardio-1"}]})
}

async fn a_discharge_handoff_is_acknowledged_accepted_and_completed(backend: Backend) {
    let Some(app) = spawn_clock(backend, |_| {}).await else {
        return;
    };
    let before = Utc::now();
    let enc = app.create(&discharge(Some(2))).await;
    let focus = format!("Encounter/{}", enc["id"].as_str().unwrap());
    let task = task_for(&app, &focus).await;
    assert_eq!(task["status"], "requested");
    assert_eq!(task["owner"]["reference"], PCP, "the PCP is the receiver");
    assert_eq!(task["requester"]["reference"], HOSPITAL);
    assert_eq!(task["for"]["reference"], "Patient/p3");
    assert_eq!(business(&task), "awaiting-acceptance");
    assert_eq!(
        accountable(&task),
        HOSPITAL,
        "the sender is accountable until accepted"
    );
    // 1 business day: at least a day, at most three (over a weekend).
    let due = deadline(&task).unwrap();
    assert!(
        due >= before + Duration::hours(23)
            && due <= before + Duration::days(3) + Duration::minutes(1),
        "{due}"
    );
    let id = task["id"].as_str().unwrap().to_owned();

    // Acknowledged: still the hospital's.
    let got = put_task(&app, &task, |t| t["status"] = json!("received")).await;
    assert_eq!(business(&got), "acknowledged");
    assert_eq!(accountable(&got), HOSPITAL);
    assert_eq!(deadline(&got), Some(due), "the acceptance deadline stands");

    // Accepted with $accept: the PCP is accountable; the deadline is now the follow-up
    // the discharge asked for (2 days after it ended).
    let (status, accepted) = operation(&app, &id, "accept", None).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accountable(&accepted), PCP);
    assert_eq!(deadline(&accepted), Some(instant("2026-11-25T10:00:00Z")));

    // Wrong moves are refused, with nothing stored.
    let (status, oo) = operation(&app, &id, "accept", None).await;
    assert_eq!(status, 409, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let mut back = accepted.clone();
    back["status"] = json!("requested");
    let r = app.put_json(&format!("Task/{id}"), &back).await;
    assert_outcome(r, 409, "business-rule", Some("Task.status")).await;
    let (status, oo) = operation(&app, "no-such-task", "accept", None).await;
    assert_eq!(
        (status, oo["resourceType"].as_str()),
        (404, Some("OperationOutcome"))
    );

    // The receiver reports progress, then completes.
    let progress = put_task(&app, &accepted, |t| {
        t["status"] = json!("in-progress");
    })
    .await;
    let progress = put_task(&app, &progress, |t| {
        t["businessStatus"] = json!({"text": "visit-booked"});
    })
    .await;
    assert_eq!(progress["businessStatus"]["text"], "visit-booked");
    let done = put_task(&app, &progress, |t| t["status"] = json!("completed")).await;
    assert_eq!(business(&done), "completed");
    assert_eq!(deadline(&done), None);

    let list = worklist(&app, PCP, None).await;
    assert_eq!(item(&list, &format!("Task/{id}"))["category"], "closed");
    assert_eq!(
        handoff_event_names(&app).await,
        ["HandoffRequested", "HandoffAccepted", "HandoffCompleted"]
    );
}

async fn a_declined_referral_goes_straight_back_to_the_sender(backend: Backend) {
    let Some(app) = spawn_clock(backend, |s| {
        s.handoffs
            .coordinators
            .insert(PCP.into(), "Practitioner/pcp-coordinator".into());
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    let sub = subscription(
        "handoff-escalation",
        &["Task?recipient=Practitioner/pcp-coordinator"],
        &rx.url,
        "full-resource",
    );
    subscribe(&app, &sub).await;

    let sr = app.create(&referral()).await;
    let focus = format!("ServiceRequest/{}", sr["id"].as_str().unwrap());
    let task = task_for(&app, &focus).await;
    assert_eq!(task["owner"]["reference"], "Practitioner/cardio-1");
    assert_eq!(task["requester"]["reference"], PCP);
    let id = task["id"].as_str().unwrap().to_owned();

    // A decline needs a reason.
    let (status, oo) = operation(&app, &id, "decline", None).await;
    assert_eq!(
        (status, oo["resourceType"].as_str()),
        (400, Some("OperationOutcome"))
    );
    let (status, oo) = operation(
        &app,
        &id,
        "decline",
        Some(json!({"resourceType": "Patient"})),
    )
    .await;
    assert_eq!(status, 400, "{oo}");

    let (status, declined) = operation(
        &app,
        &id,
        "decline",
        Some(reason("not taking new heart-failure patients")),
    )
    .await;
    assert_eq!(status, 200, "{declined}");
    assert_eq!(declined["status"], "rejected");
    assert_eq!(business(&declined), "declined-returned-to-sender");
    assert_eq!(accountable(&declined), PCP, "back with the sender");
    assert!(declined["note"][0]["text"]
        .as_str()
        .unwrap()
        .contains("not taking new heart-failure patients"));

    // The referral says so, and the sender's coordinator is told at once.
    let (_, rec) = app
        .api(
            Method::GET,
            &format!("referrals/{}", sr["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(rec["status"], "rejected");
    let hits = rx
        .wait("the returned handoff", |h| {
            h.iter().any(|x| x.kind() == "event-notification")
        })
        .await;
    let n = hits
        .iter()
        .find(|x| x.kind() == "event-notification")
        .unwrap();
    let text = n.json.to_string();
    assert!(text.contains(&format!("Task/{id}")), "{text}");
    assert!(text.contains("declined-returned-to-sender"), "{text}");
    let events = handoff_events(&app).await;
    let (name, detail) = events.last().unwrap();
    assert_eq!(name, "HandoffDeclined");
    assert!(
        detail["reason"]
            .as_str()
            .unwrap()
            .contains("not taking new"),
        "{detail}"
    );
    let list = worklist(&app, "Practitioner/pcp-coordinator", None).await;
    assert_eq!(item(&list, &format!("Task/{id}"))["category"], "declined");
}

async fn a_silent_receiver_is_escalated_step_by_step(backend: Backend) {
    let Some(app) = spawn_clock(backend, |_| {}).await else {
        return;
    };
    let on_call = Receiver::start().await;
    let coordinator = Receiver::start().await;
    for (rx, who) in [(&on_call, ON_CALL), (&coordinator, COORDINATOR)] {
        let sub = subscription(
            "handoff-escalation",
            &[&format!("Task?recipient={who}")],
            &rx.url,
            "full-resource",
        );
        subscribe(&app, &sub).await;
    }
    let enc = app.create(&discharge(None)).await;
    let focus = format!("Encounter/{}", enc["id"].as_str().unwrap());
    let task = task_for(&app, &focus).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let due = deadline(&task).unwrap();

    // Not yet due: nothing happens.
    let s = sweep(&app, due - Duration::minutes(1)).await;
    assert_eq!(
        (s["ran"].as_bool(), s["escalated"].as_array().unwrap().len()),
        (Some(true), 0)
    );
    let list = worklist(&app, PCP, Some(due - Duration::minutes(1))).await;
    assert_eq!(
        item(&list, &format!("Task/{id}"))["category"],
        "waiting-for-acceptance"
    );
    let list = worklist(&app, PCP, Some(due + Duration::minutes(1))).await;
    assert_eq!(item(&list, &format!("Task/{id}"))["category"], "overdue");

    // Step 1: to the alternate configured for the PCP.
    let t1 = due + Duration::hours(1);
    let s = sweep(&app, t1).await;
    assert_eq!(s["escalated"], json!([format!("Task/{id}")]));
    let task = read(&app, &format!("Task/{id}")).await;
    assert_eq!(task["status"], "requested");
    assert_eq!(business(&task), "escalated-to-alternate");
    assert_eq!(
        accountable(&task),
        HOSPITAL,
        "escalation does not move responsibility"
    );
    let note = task["note"][0]["text"].as_str().unwrap();
    assert!(
        note.contains(ON_CALL) && note.contains("not accepted"),
        "{note}"
    );
    let step2_due = deadline(&task).unwrap();
    assert!(step2_due > t1, "the alternate has a fresh deadline");
    let hits = on_call
        .wait("the escalation to the alternate", |h| {
            h.iter().any(|x| x.kind() == "event-notification")
        })
        .await;
    let text = hits
        .iter()
        .find(|x| x.kind() == "event-notification")
        .unwrap()
        .json
        .to_string();
    assert!(
        text.contains(&format!("Task/{id}")) && text.contains("escalated-to-alternate"),
        "{text}"
    );
    let list = worklist(&app, ON_CALL, Some(t1)).await;
    let it = item(&list, &format!("Task/{id}"));
    assert_eq!(it["category"], "escalated");
    assert_eq!(it["roles"], json!(["escalation-recipient"]));

    // The same sweep again takes no second step before the new deadline.
    let s = sweep(&app, t1 + Duration::minutes(5)).await;
    assert_eq!(s["escalated"], json!([]));

    // Step 2: back to the hospital's coordinator; then nothing more.
    let t2 = step2_due + Duration::hours(1);
    let s = sweep(&app, t2).await;
    assert_eq!(s["escalated"], json!([format!("Task/{id}")]));
    let task = read(&app, &format!("Task/{id}")).await;
    assert_eq!(business(&task), "escalated-to-sender");
    assert_eq!(deadline(&task), None);
    assert_eq!(task["note"].as_array().unwrap().len(), 2);
    coordinator
        .wait("the escalation back to the sender", |h| {
            h.iter().any(|x| {
                x.kind() == "event-notification"
                    && x.json.to_string().contains("escalated-to-sender")
            })
        })
        .await;
    let s = sweep(&app, t2 + Duration::days(30)).await;
    assert_eq!(s["escalated"], json!([]));

    // Each step is recorded with its reason.
    let events = handoff_events(&app).await;
    let steps: Vec<&Value> = events
        .iter()
        .filter(|e| e.0 == "HandoffEscalated")
        .map(|e| &e.1)
        .collect();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0]["step"].as_str(), steps[0]["to"].as_str()),
        (Some("alternate"), Some(ON_CALL))
    );
    assert_eq!(
        (steps[1]["step"].as_str(), steps[1]["to"].as_str()),
        (Some("sender"), Some(COORDINATOR))
    );
    assert!(
        steps[1]["reason"].as_str().unwrap().contains("returned to"),
        "{}",
        steps[1]
    );
    // The alternate did not hear of step 2 (the filter is on the recipient).
    assert!(!on_call
        .hits()
        .iter()
        .any(|h| h.json.to_string().contains("escalated-to-sender")));

    // A late acceptance still counts and closes the ladder.
    let (status, accepted) = operation(&app, &id, "accept", None).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accountable(&accepted), PCP);
    assert_eq!(business(&accepted), "accepted");
}

async fn a_completed_referral_brings_the_result_back_to_the_referrer(backend: Backend) {
    let Some(app) = spawn_clock(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    let sub = subscription(
        "referral-status",
        &[&format!("ServiceRequest?requester={PCP}")],
        &rx.url,
        "full-resource",
    );
    subscribe(&app, &sub).await;

    // The sender writes the referral with its own Task: that Task is the handoff.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f0c1a52-3b7e-4a53-9d7e-0c6a1b2c3d41", "resource": referral(),
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"resource": {"resourceType": "Task", "status": "requested", "intent": "order",
            "focus": {"reference": "urn:uuid:6f0c1a52-3b7e-4a53-9d7e-0c6a1b2c3d41"},
            "for": {"reference": "Patient/p3"}, "requester": {"reference": PCP},
            "owner": {"reference": "Practitioner/cardio-1"}, "description": "please see within 2 weeks"},
         "request": {"method": "POST", "url": "Task"}}]});
    let r = app.post_json("", &bundle).await;
    let out: Value = r.json().await.unwrap();
    let location = out["entry"][0]["response"]["location"].as_str().unwrap();
    let sr_id = location.split("ServiceRequest/").nth(1).unwrap();
    let sr_id = sr_id.split('/').next().unwrap().to_owned();
    let focus = format!("ServiceRequest/{sr_id}");
    let task = task_for(&app, &focus).await;
    assert_eq!(
        task["description"], "please see within 2 weeks",
        "the sender's Task is kept"
    );
    assert!(
        deadline(&task).is_some(),
        "with the gateway's deadline: {task}"
    );
    assert_eq!(accountable(&task), PCP);

    // Accepted by a plain FHIR update: the referrer hears of it.
    let accepted = put_task(&app, &task, |t| t["status"] = json!("accepted")).await;
    assert_eq!(accountable(&accepted), "Practitioner/cardio-1");
    let due = deadline(&accepted).unwrap();
    assert!(
        due > Utc::now() + Duration::days(29),
        "the consult note is due in 30 days: {due}"
    );
    rx.wait("the acceptance", |h| {
        h.iter()
            .any(|x| x.json.to_string().contains("\"status\":\"accepted\""))
    })
    .await;

    // The consult note comes back as the Task's output: the loop closes.
    // The report lives in the cardiologist's system (the gateway stores no
    // DiagnosticReport); the Task's output points at it.
    let report_ref = "DiagnosticReport/consult-1".to_owned();
    let done = put_task(&app, &accepted, |t| {
        t["status"] = json!("completed");
        t["output"] = json!([{"type": {"text": "consult note"}, "valueReference": {"reference": report_ref}}]);
    })
    .await;
    assert_eq!(business(&done), "completed");
    let hits = rx
        .wait("the result", |h| {
            h.iter().any(|x| x.json.to_string().contains(&report_ref))
        })
        .await;
    let n = hits
        .iter()
        .find(|x| x.json.to_string().contains(&report_ref))
        .unwrap();
    let entries = n.json["entry"].as_array().unwrap();
    let carried_task = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Task")
        .expect("the Task travels");
    assert_eq!(carried_task["resource"]["status"], "completed");
    assert_eq!(
        carried_task["resource"]["output"][0]["valueReference"]["reference"],
        report_ref.as_str()
    );
    let (_, rec) = app
        .api(Method::GET, &format!("referrals/{sr_id}"), None)
        .await;
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["results"][0]["reference"], report_ref.as_str());
    assert_eq!(
        handoff_event_names(&app).await,
        ["HandoffRequested", "HandoffAccepted", "HandoffCompleted"]
    );
}

async fn deadlines_follow_the_configuration(backend: Backend) {
    let Some(app) = spawn_with(backend, |s| {
        s.handoffs.referral_accept = "5 business days".into();
        s.handoffs.discharge_accept = "4 hours".into();
        s.handoffs.discharge_follow_up = "7 days".into();
        s.handoffs.referral_result = "10 days".into();
    })
    .await
    else {
        return;
    };
    let before = Utc::now();
    let enc = app.create(&discharge(None)).await;
    let task = task_for(&app, &format!("Encounter/{}", enc["id"].as_str().unwrap())).await;
    let due = deadline(&task).unwrap();
    assert!(
        due >= before + Duration::hours(4) - Duration::seconds(1)
            && due <= Utc::now() + Duration::hours(4),
        "{due}"
    );
    // A discharge that names no follow-up has no deadline once accepted.
    let (_, accepted) = operation(&app, task["id"].as_str().unwrap(), "accept", None).await;
    assert_eq!(deadline(&accepted), None);

    // A follow-up without a time gets the configured one (7 days after the discharge).
    let mut e = discharge(None);
    e["extension"] = json!([{"url": "http://handoff.example.org/fhir/StructureDefinition/follow-up",
        "extension": [{"url": "what", "valueString": "See the PCP"}]}]);
    let enc = app.create(&e).await;
    let task = task_for(&app, &format!("Encounter/{}", enc["id"].as_str().unwrap())).await;
    let (_, accepted) = operation(&app, task["id"].as_str().unwrap(), "accept", None).await;
    assert_eq!(deadline(&accepted), Some(instant("2026-11-30T10:00:00Z")));

    let sr = app.create(&referral()).await;
    let task = task_for(
        &app,
        &format!("ServiceRequest/{}", sr["id"].as_str().unwrap()),
    )
    .await;
    let due = deadline(&task).unwrap();
    // Five weekdays later, at the same time of day: 5 calendar days from a Sunday, 6
    // from a Saturday, 7 from a weekday (the exact days: `handoffs::policy` tests).
    assert!(
        due >= before + Duration::days(5)
            && due <= Utc::now() + Duration::days(7)
            && !matches!(due.weekday(), Weekday::Sat | Weekday::Sun),
        "5 business days: {due}"
    );
    let (_, accepted) = operation(&app, task["id"].as_str().unwrap(), "accept", None).await;
    let due = deadline(&accepted).unwrap();
    assert!(
        due >= before + Duration::days(10) && due <= Utc::now() + Duration::days(10),
        "{due}"
    );

    // Without the test clock, nobody can move time.
    let (status, p) = app
        .api(Method::POST, "sweep?now=2030-01-01T00:00:00Z", None)
        .await;
    assert_eq!(status, 403, "{p}");
    let (status, p) = app
        .api(
            Method::GET,
            &format!("worklist?party={PCP}&now=2030-01-01"),
            None,
        )
        .await;
    assert_eq!(status, 403, "{p}");
    let (status, s) = app.api(Method::POST, "sweep", None).await;
    assert_eq!((status, s["ran"].as_bool()), (200, Some(true)), "{s}");
}

async fn worklist_and_task_search(backend: Backend) {
    let Some(app) = spawn_clock(backend, |_| {}).await else {
        return;
    };
    let enc = app.create(&discharge(Some(2))).await;
    let sr = app.create(&referral()).await;
    let d_task = task_for(&app, &format!("Encounter/{}", enc["id"].as_str().unwrap())).await;
    let r_task = task_for(
        &app,
        &format!("ServiceRequest/{}", sr["id"].as_str().unwrap()),
    )
    .await;

    // The PCP receives the discharge and sent the referral.
    let list = worklist(&app, PCP, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let d = item(&list, &format!("Task/{}", d_task["id"].as_str().unwrap()));
    assert_eq!(
        (d["kind"].as_str(), d["category"].as_str()),
        (Some("discharge"), Some("waiting-for-acceptance"))
    );
    assert_eq!(d["patient"], "Patient/p3");
    assert!(d["roles"].as_array().unwrap().contains(&json!("receiver")));
    assert!(d["deadline"].is_string());
    assert!(d.get("last_delivery").is_some());
    let r = item(&list, &format!("Task/{}", r_task["id"].as_str().unwrap()));
    assert_eq!(r["kind"], "referral");
    assert_eq!(r["roles"], json!(["sender", "accountable"]));
    assert_eq!(list["counts"]["waiting-for-acceptance"], 2);
    // The cardiologist sees only the referral.
    let list = worklist(&app, "Practitioner/cardio-1", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Closed ones drop out after `days`.
    let (_, declined) = operation(
        &app,
        r_task["id"].as_str().unwrap(),
        "decline",
        Some(reason("full")),
    )
    .await;
    assert_eq!(declined["status"], "rejected");
    let in_a_week = Utc::now() + Duration::days(8);
    let list = worklist(&app, "Practitioner/cardio-1", Some(in_a_week)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let (status, _) = app
        .api(
            Method::GET,
            &format!(
                "worklist?party=Practitioner/cardio-1&days=30&now={}",
                stamp(in_a_week)
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);

    // Bad input: clear problems.
    for bad in [
        "worklist",
        "worklist?party=nobody",
        "worklist?party=Practitioner/x&days=many",
        "worklist?party=Practitioner/x&colour=red",
    ] {
        let (status, p) = app.api(Method::GET, bad, None).await;
        assert_eq!(status, 400, "{bad}: {p}");
        assert!(p["detail"].is_string(), "{p}");
    }

    // The FHIR equivalent: Tasks by owner, status, business status and deadline.
    let b = app
        .search(&format!(
            "Task?owner={PCP}&status=requested&business-status=awaiting-acceptance"
        ))
        .await;
    assert_eq!(crate::helpers::ids(&b), [d_task["id"].as_str().unwrap()]);
    let soon = stamp(Utc::now() + Duration::days(5));
    let b = app.search(&format!("Task?deadline=lt{soon}")).await;
    assert_eq!(
        crate::helpers::ids(&b),
        [d_task["id"].as_str().unwrap()],
        "the declined referral has no deadline left"
    );
    let b = app.search(&format!("Task?deadline=gt{soon}")).await;
    assert_eq!(b["total"], 0);
    let b = app
        .search("Task?code=http://handoff.example.org/fhir/CodeSystem/handoff-kind|discharge")
        .await;
    assert_eq!(b["total"], 1);
}
