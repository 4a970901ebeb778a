//! The cache can only be installed before SQLite starts, and the other tests in this
//! process start it: the test here runs its body in a fresh process (this test binary
//! again, asked for `fresh_process_body` alone).

use rusqlite::Connection;

const CHILD: &str = "HANDOFF_PCACHE_CHILD";

#[test]
fn swaps_rollbacks_and_spills_keep_the_database_whole() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::sqlite::pcache::tests::fresh_process_body",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the test binary runs again");
    // A cache that loses track of a page can leave SQLite looping: bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the body did not finish in 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "the body ran: {text}");
}

/// The body of the test above; on its own (without the variable) it has nothing to
/// check, because SQLite may already be running on its own cache.
#[test]
#[ignore = "run by swaps_rollbacks_and_spills_keep_the_database_whole in a fresh process"]
fn fresh_process_body() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    super::super::configure_process();
    assert!(super::installed(), "installed before SQLite started");

    let dir = std::env::temp_dir().join(format!("handoff-pcache-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db");
    let mut db = Connection::open(&path).unwrap();
    // Small pages and a small cache: many balances, and pages recycled mid-transaction.
    db.execute_batch(
        "PRAGMA page_size = 512; PRAGMA journal_mode = WAL; PRAGMA cache_size = 40;
         CREATE TABLE t (k INTEGER PRIMARY KEY, tag TEXT NOT NULL, v BLOB NOT NULL);
         CREATE INDEX t_tag ON t (tag);",
    )
    .unwrap();

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut rows, mut bytes) = (0i64, 0i64);
    for round in 0..40 {
        let tx = db.transaction().unwrap();
        let mut added = (0, 0);
        for _ in 0..300 {
            let k = (next() >> 20) as i64;
            let len = 20 + (next() % 300) as i64;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO t (k, tag, v) VALUES (?1, ?2, zeroblob(?3))",
                    rusqlite::params![k, format!("{:016x}", next()), len],
                )
                .unwrap() as i64;
            added = (added.0 + n, added.1 + n * len);
        }
        if round % 4 == 3 {
            // Rolled back: the cache is cut back to the size before it.
            tx.rollback().unwrap();
        } else {
            tx.commit().unwrap();
            rows += added.0;
            bytes += added.1;
        }
        check(&db, rows, bytes);
    }
    assert!(super::moved() > 0, "the workload made B-tree swaps");

    // What reached the file, read by a connection with a cold cache.
    let other = Connection::open(&path).unwrap();
    check(&other, rows, bytes);
    drop((db, other));
    let _ = std::fs::remove_dir_all(&dir);
}

fn check(db: &Connection, rows: i64, bytes: i64) {
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let (n, sum): (i64, i64) = db
        .query_row(
            "SELECT count(*), coalesce(sum(length(v)), 0) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, sum), (rows, bytes));
    let by_tag: i64 = db
        .query_row(
            "SELECT count(*) FROM t INDEXED BY t_tag WHERE tag >= ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by_tag, rows);
}
