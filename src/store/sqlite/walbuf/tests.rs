use rusqlite::{Connection, OpenFlags};

use super::{register, Gather, CALLS, NAME};

#[test]
fn consecutive_writes_gather_and_overwrites_land_in_place() {
    let mut g = Gather::default();
    assert!(g.absorb(32, b"abcd"));
    assert!(g.absorb(36, b"efgh"));
    assert!(g.absorb(34, b"XY"), "an overwrite inside the range");
    assert!(g.absorb(38, b"ZZZZ"), "an overwrite that extends it");
    assert_eq!(g.pending(), (32, &b"abXYefZZZZ"[..]));
    assert!(!g.absorb(50, b"gap"), "a gap is not gathered");
    assert!(!g.absorb(31, b"before"), "nor a write before the range");
    assert!(g.overlaps(41, 1) && g.overlaps(30, 3) && !g.overlaps(42, 8) && !g.overlaps(20, 12));
    g.clear();
    assert!(!g.overlaps(32, 10));
    assert!(
        g.absorb(50, b"new start"),
        "an empty gather starts anywhere"
    );
    assert_eq!(g.pending().0, 50);
}

#[test]
fn a_write_beyond_the_cap_is_not_gathered() {
    let mut g = Gather::default();
    let big = vec![1u8; super::CAP];
    assert!(g.absorb(0, &big));
    assert!(
        !g.absorb(super::CAP as i64, b"x"),
        "one byte more is refused"
    );
    g.clear();
    assert!(!g.absorb(0, &vec![0u8; super::CAP + 1]));
}

/// A fresh directory, removed when dropped.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("handoff-walbuf-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn writer(path: &std::path::Path, cache_pages: i64) -> Connection {
    register().expect("VFS registered");
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags_and_vfs(path, flags, NAME).expect("open");
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.pragma_update(None, "cache_size", cache_pages).unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    c
}

fn wal_bytes(db: &std::path::Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal"))
        .unwrap()
        .len()
}

fn calls() -> (u64, u64) {
    CALLS.with(|c| c.get())
}

/// A commit's frames go to the file in one write, at its sync; another connection
/// (the default VFS) then reads them from the WAL.
#[test]
fn a_commit_is_one_write_and_visible_to_other_connections() {
    let dir = Dir::new();
    let path = dir.path().join("w.db");
    let mut w = writer(&path, 2000);
    w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    let before = calls();
    let tx = w.transaction().unwrap();
    for i in 0..200 {
        tx.execute(
            "INSERT INTO t (id, body) VALUES (?1, ?2)",
            (i, "x".repeat(1000)),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let (asked, passed) = (calls().0 - before.0, calls().1 - before.1);
    assert!(
        asked > 100,
        "SQLite wrote {asked} times (a frame is two writes)"
    );
    let pieces = (wal_bytes(&path) as usize).div_ceil(super::CHUNK) as u64;
    assert!(
        passed <= pieces,
        "the commit's {asked} writes went out as {passed} (at most {pieces} pieces)"
    );

    let r = Connection::open(&path).unwrap();
    let n: i64 = r
        .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
        .unwrap();
    assert_eq!(n, 200);
    let wal = wal_bytes(&path);
    assert!(
        wal > 200 * 1000,
        "the frames are in the WAL file ({wal} bytes)"
    );
}

/// A transaction larger than the writer's cache spills frames to the WAL before its
/// commit, and SQLite reads and rewrites some of them: every read and rewrite must
/// find them, and the database must come out whole.
#[test]
fn spilled_frames_are_read_back_and_the_database_stays_whole() {
    let dir = Dir::new();
    let path = dir.path().join("s.db");
    let mut w = writer(&path, 20);
    w.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE INDEX t_v ON t (v);",
    )
    .unwrap();
    let tx = w.transaction().unwrap();
    for i in 0..3000 {
        tx.execute(
            "INSERT INTO t (id, v, body) VALUES (?1, ?2, ?3)",
            (i, i % 97, "y".repeat(300)),
        )
        .unwrap();
    }
    // Touch every page again, after most have been spilled.
    tx.execute("UPDATE t SET v = v + 1, body = body || 'z'", [])
        .unwrap();
    tx.commit().unwrap();
    let check: String = w
        .query_row("PRAGMA integrity_check", [], |x| x.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(w);

    let r = Connection::open(&path).unwrap();
    let (n, sum, len): (i64, i64, i64) = r
        .query_row(
            "SELECT count(*), sum(v), sum(length(body)) FROM t",
            [],
            |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)),
        )
        .unwrap();
    let expected: i64 = (0..3000).map(|i| i % 97 + 1).sum();
    assert_eq!((n, sum, len), (3000, expected, 3000 * 301));
    let check: String = r
        .query_row("PRAGMA integrity_check", [], |x| x.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// After a checkpoint restarts the log, the next commit writes the WAL from its
/// start again; that too must reach the file.
#[test]
fn commits_after_a_restarted_log_are_kept() {
    let dir = Dir::new();
    let path = dir.path().join("r.db");
    let w = writer(&path, 2000);
    w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        .unwrap();
    for round in 0..3 {
        for i in 0..50 {
            w.execute("INSERT INTO t (body) VALUES (?1)", [format!("{round}-{i}")])
                .unwrap();
        }
        let r = Connection::open(&path).unwrap();
        r.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
            .unwrap();
    }
    let r = Connection::open(&path).unwrap();
    let n: i64 = r
        .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
        .unwrap();
    assert_eq!(n, 150);
}
