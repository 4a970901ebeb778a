//! A batch's jobs fail alone: with or without a job that fails, each other job's
//! writes commit and the failing job's writes (all of them) do not.

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
        let mut batch: Vec<Job> = jobs.into_iter().map(job).collect();
        commit_batch(&mut self.conn, &mut batch, &self.policies)
            .into_iter()
            .map(|(r, _)| match r {
                Ok(_) => true,
                Err(StoreError::Entry { source, .. }) => {
                    assert!(matches!(*source, StoreError::PreconditionFailed(_)));
                    false
                }
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
