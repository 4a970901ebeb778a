//! Guards (`store::Guard`): what a recipient client's change was checked against must
//! still be stored when the change commits. The window between the check and the
//! commit cannot be hit reliably over HTTP, so the guards are committed here as the
//! API commits them, with a change made in between by another writer.

use handoff::fhir::search::query;
use handoff::store::{Guard, StoreError, WriteOp, WriteOutcome};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::test_both;

fn task(id: &str, owner: &str, identifier: &str) -> Value {
    json!({"resourceType": "Task", "id": id, "status": "requested", "intent": "order",
           "identifier": [{"system": "urn:test:task", "value": identifier}],
           "owner": {"reference": owner}})
}

fn put(t: Value) -> WriteOp {
    WriteOp::Update {
        rtype: "Task".into(),
        id: t["id"].as_str().unwrap().into(),
        resource: t,
        if_match: None,
        full_url: None,
    }
}

fn version(rtype: &str, id: &str, v: Option<i64>) -> WriteOp {
    WriteOp::Guard(Guard::Version {
        rtype: rtype.into(),
        id: id.into(),
        version: v,
    })
}

/// The checked change (the Task given to `Practitioner/pcp`), committed with the guard
/// of the version it was checked at.
async fn change_checked_at(
    app: &TestApp,
    id: &str,
    identifier: &str,
    v: Option<i64>,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let change = put(task(id, "Practitioner/pcp", identifier));
    app.store.commit(vec![change, version("Task", id, v)]).await
}

fn is_conflict(r: &Result<Vec<WriteOutcome>, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(m)) if m.contains("changed while"))
}

async fn owner_of(app: &TestApp, id: &str) -> String {
    let s = app.store.read("Task", id).await.unwrap().unwrap();
    s.json().unwrap()["owner"]["reference"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_change_commits_only_on_what_was_checked(app: TestApp) {
    let store = &app.store;
    store
        .commit(vec![put(task("t1", "Practitioner/pcp", "a"))])
        .await
        .unwrap();
    // Checked at version 1; another writer gives the Task to someone else (version 2)
    // before the change commits: nothing of the change is written.
    store
        .commit(vec![put(task("t1", "Practitioner/other", "a"))])
        .await
        .unwrap();
    let r = change_checked_at(&app, "t1", "a", Some(1)).await;
    assert!(is_conflict(&r), "{r:?}");
    assert_eq!(owner_of(&app, "t1").await, "Practitioner/other");

    // Checked at the version stored: it commits, and the outcomes are the changes'
    // alone (the guard yields none).
    let out = change_checked_at(&app, "t1", "a", Some(2)).await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(matches!(&out[0], WriteOutcome::Updated(s) if s.version == 3));

    // Checked as absent (an update that creates), created meanwhile by another writer.
    store
        .commit(vec![put(task("t2", "Practitioner/other", "b"))])
        .await
        .unwrap();
    let r = change_checked_at(&app, "t2", "b", None).await;
    assert!(is_conflict(&r), "{r:?}");
    assert_eq!(owner_of(&app, "t2").await, "Practitioner/other");

    // A deleted resource counts as absent.
    store
        .commit(vec![WriteOp::Delete {
            rtype: "Task".into(),
            id: "t2".into(),
            if_match: None,
        }])
        .await
        .unwrap();
    let out = change_checked_at(&app, "t2", "b", None).await.unwrap();
    assert!(matches!(&out[..], [WriteOutcome::Created(_)]), "{out:?}");

    // A conditional update judged on no match, and a match created meanwhile: the
    // commit would update that unchecked Task, so it fails.
    let pairs = vec![("identifier".to_string(), "urn:test:task|c".to_string())];
    let q = query::parse("Task", &pairs, false).unwrap();
    let judged = WriteOp::Guard(Guard::Matches {
        query: q.clone(),
        ids: vec![],
    });
    store
        .commit(vec![put(task("t3", "Practitioner/other", "c"))])
        .await
        .unwrap();
    let mut changed = task("t3", "Practitioner/pcp", "c");
    changed.as_object_mut().unwrap().remove("id");
    let conditional = WriteOp::ConditionalUpdate {
        query: q.clone(),
        resource: changed,
        full_url: None,
    };
    let r = store.commit(vec![conditional.clone(), judged]).await;
    assert!(is_conflict(&r), "{r:?}");
    assert_eq!(owner_of(&app, "t3").await, "Practitioner/other");
    // Judged on the match there is: it commits.
    let judged = WriteOp::Guard(Guard::Matches {
        query: q,
        ids: vec!["t3".into()],
    });
    let out = store.commit(vec![conditional, judged]).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(owner_of(&app, "t3").await, "Practitioner/pcp");
}

test_both!(a_change_commits_only_on_what_was_checked);
