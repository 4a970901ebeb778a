//! A batch's jobs fail alone: with or without a job that fails, each other job's
//! writes commit and the failing job's writes (all of them) do not; a job that fails
//! before changing a row does not make the batch run again.

use rusqlite::Connection;
use serde_json::json;
use tokio::sync::oneshot;

use super::{commit_batch, Job, Policies};
use crate::store::{StoreError, StoreSettings, WriteOp};

fn put(id: &str, if_match: Option<i64>) -> WriteOp {
    WriteOp::Update {
        rtype: "Patient".into(),
        id: id.into(),
        resource: json!({"resourceType": "Patient", "id": id, "active": true}),
        if_match,
        full_url: None,
    }
}

fn job(ops: Vec<WriteOp>) -> Job {
    let (reply, _rx) = oneshot::channel();
    Job::new(ops, reply)
}

struct Db {
    dir: std::path::PathBuf,
    conn: Connection,
    policies: Policies,
}

impl Db {
    /// A migrated store file, and a write connection of the test's own.
    async fn new() -> Db {
        let dir = std::env::temp_dir().join(format!("handoff-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.db");
        let settings = StoreSettings::default();
        let store = super::super::SqliteStore::connect(&file.display().to_string(), &settings)
            .await
            .unwrap();
        drop(store);
        let conn = Connection::open(&file).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let policies = Policies {
            consent: settings.consent_policy.clone(),
            handoffs: settings.handoffs.clone(),
        };
        Db {
            dir,
            conn,
            policies,
        }
    }

    fn run(&mut self, jobs: Vec<Vec<WriteOp>>) -> Vec<bool> {
        self.run_jobs(jobs.into_iter().map(job).collect())
    }

    fn run_jobs(&mut self, mut batch: Vec<Job>) -> Vec<bool> {
        commit_batch(&mut self.conn, &mut batch, &self.policies)
            .into_iter()
            .map(|(r, _)| match r.as_ref().map_err(StoreError::root) {
                Ok(_) => true,
                // The failures these tests provoke; any other is a bug.
                Err(StoreError::PreconditionFailed(_) | StoreError::Lifecycle(_)) => false,
                Err(e) => panic!("unexpected {e}"),
            })
            .collect()
    }

    fn patients(&self) -> Vec<String> {
        let mut s = self
            .conn
            .prepare("SELECT id FROM resources WHERE rtype = 'Patient' ORDER BY id")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_failing_job_takes_only_its_own_writes_back() {
    let mut db = Db::new().await;
    // Without a failure: every job commits.
    assert_eq!(
        db.run(vec![vec![put("a", None)], vec![put("b", None)]]),
        [true, true]
    );
    // The second job writes `d`, then fails on `e` (no such version): `d` must go too,
    // and the jobs before and after it stay.
    let ok = db.run(vec![
        vec![put("c", None)],
        vec![put("d", None), put("e", Some(5))],
        vec![put("f", None), put("a", Some(1))],
    ]);
    assert_eq!(ok, [true, false, true]);
    assert_eq!(db.patients(), ["a", "b", "c", "f"]);
    // A batch of one that fails leaves nothing behind.
    assert_eq!(
        db.run(vec![vec![put("g", None), put("h", Some(2))]]),
        [false]
    );
    assert_eq!(db.patients(), ["a", "b", "c", "f"]);
    // Later batches commit as before (no transaction left open).
    assert_eq!(db.run(vec![vec![put("i", None)]]), [true]);
    assert_eq!(db.patients(), ["a", "b", "c", "f", "i"]);
}

fn encounter(id: &str, status: &str) -> WriteOp {
    WriteOp::Update {
        rtype: "Encounter".into(),
        id: id.into(),
        resource: json!({
            "resourceType": "Encounter", "id": id, "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/a"},
            "period": {"start": "2026-01-01T08:00:00Z", "end": "2026-01-02T08:00:00Z"}
        }),
        if_match: None,
        full_url: None,
    }
}

#[tokio::test]
async fn a_job_failing_after_it_changed_rows_is_taken_back_alone() {
    let mut db = Db::new().await;
    assert_eq!(
        db.run(vec![vec![put("a", None), encounter("x", "finished")]]),
        [true]
    );
    // `d` is written, then the finished Encounter may not become in-progress (409,
    // raised after the job changed rows): `d` goes, the jobs around it stay.
    let ok = db.run(vec![
        vec![put("c", None)],
        vec![put("d", None), encounter("x", "in-progress")],
        vec![put("f", None)],
    ]);
    assert_eq!(ok, [true, false, true]);
    assert_eq!(db.patients(), ["a", "c", "f"]);
}

#[tokio::test]
async fn a_job_failing_before_any_change_leaves_the_batch_running() {
    let mut db = Db::new().await;
    // Each job's spare copy (what a second, savepointed run would use) writes
    // something else than its first: which patients exist tells which run committed.
    let marked = |id: &str, spare: &str| {
        let (reply, _rx) = oneshot::channel();
        Job {
            ops: vec![put(id, None)],
            spare: vec![put(spare, None)],
            reply,
        }
    };
    let (reply, _rx) = oneshot::channel();
    // A stale If-Match fails at planning, before the job writes anything.
    let stale = Job::new(vec![put("q", Some(7))], reply);
    assert_eq!(
        db.run_jobs(vec![marked("p", "p2"), stale, marked("r", "r2")]),
        [true, false, true]
    );
    assert_eq!(db.patients(), ["p", "r"], "the batch was run a second time");
    // A job that did change rows still makes the batch run again, from the spares.
    assert_eq!(db.run(vec![vec![encounter("x", "finished")]]), [true]);
    let (reply, _rx) = oneshot::channel();
    let changed_then_failed = Job::new(vec![put("s", None), encounter("x", "in-progress")], reply);
    assert_eq!(
        db.run_jobs(vec![marked("t", "t2"), changed_then_failed]),
        [true, false]
    );
    assert_eq!(db.patients(), ["p", "r", "t2"]);
}
