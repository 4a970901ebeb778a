//! WAL checkpoints, mostly off the writer thread.
//!
//! By default SQLite checkpoints inside the COMMIT that pushes the WAL past 1,000
//! frames: the writer thread itself copies every changed page back into the database
//! file and fsyncs it, and every request waiting on that batch waits too. Here the
//! writer turns automatic checkpoints off and tells this thread when it commits; the
//! thread runs a PASSIVE checkpoint (which never blocks the writer) at most every
//! `interval`, so the copying happens on the other core.
//!
//! That alone lets the WAL grow without end (measured: past 2 GB in ten seconds of
//! the HL7 benchmark). SQLite writes the WAL from its start again only when a write
//! transaction begins with every frame copied, and this thread can never copy the
//! frames of a writer that is always appending; nor can it take the write lock for a
//! RESTART, since the writer re-takes it the moment it commits. So when this thread
//! finds the WAL longer than `restart_frames`, it asks the writer, and the writer
//! runs a PASSIVE checkpoint itself between two batches: it copies only what this
//! thread has not, and its next batch starts the WAL over unless a reader still uses
//! the old frames (then the next request tries again). It never waits for readers:
//! a RESTART did, in steps of SQLite's busy handler, and doubled the p99.
//! SQLite syncs the database file only in a checkpoint that copies the whole WAL, so
//! this thread flushes the pages its passes copy itself: the writer's catch-up then
//! syncs only its own few.
//! Durability is unchanged: a commit returns once its WAL frames are fsynced, before
//! any checkpoint.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// When to checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The shortest time between two checkpoints.
    pub interval: Duration,
    /// A WAL at least this long (in frames) is caught up by the writer, so that it
    /// starts over.
    pub restart_frames: i64,
}

impl Default for Schedule {
    fn default() -> Self {
        // 16,384 frames of 4 KiB: the WAL stays near 64 MiB. Since this thread
        // flushes its own copies, a catch-up costs the same at any length, so a
        // longer WAL means fewer of them (README "Checkpoints flushed on their own
        // thread").
        Schedule {
            interval: Duration::from_millis(100),
            restart_frames: 16_384,
        }
    }
}

#[derive(Default)]
struct State {
    commits: u64,
    closed: bool,
    /// The WAL is long: the writer should restart it.
    restart_due: bool,
}

/// The writer's handle: `committed` after each COMMIT; dropping it stops the thread
/// after a last checkpoint.
pub struct Checkpointer {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Checkpointer {
    /// Start the thread on its own connection to the database at `path`.
    pub fn spawn(path: &Path, schedule: Schedule) -> rusqlite::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Only the last checkpoint (TRUNCATE, at shutdown) waits for anyone.
        conn.busy_timeout(Duration::from_secs(5))?;
        let shared: Arc<(Mutex<State>, Condvar)> = Default::default();
        let theirs = shared.clone();
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &path, &theirs, schedule))
            .map_err(|e| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(format!("cannot start the checkpoint thread: {e}")),
                )
            })?;
        Ok(Checkpointer { shared })
    }

    /// The writer committed on `conn` and holds no transaction: there are frames to
    /// copy, and if the WAL has grown long, the writer copies the rest now so that
    /// its next batch starts the WAL over.
    pub fn committed(&self, conn: &Connection) {
        let (lock, wake) = &*self.shared;
        let restart = match lock.lock() {
            Ok(mut s) => {
                s.commits += 1;
                wake.notify_one();
                std::mem::take(&mut s.restart_due)
            }
            Err(_) => false,
        };
        if restart {
            match checkpoint(conn, "PASSIVE") {
                Ok((_, frames, copied)) => tracing::debug!(frames, copied, "WAL caught up"),
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        if let Ok(mut s) = lock.lock() {
            s.closed = true;
            wake.notify_one();
        }
    }
}

fn run(conn: &Connection, path: &Path, shared: &(Mutex<State>, Condvar), schedule: Schedule) {
    let (lock, wake) = shared;
    // The database file, to flush the pages each pass copied (see [`flush`]).
    let db = std::fs::File::open(path)
        .map_err(|e| tracing::warn!(error = %e, "cannot open the database file to flush it"))
        .ok();
    let mut seen = 0;
    let mut last = Instant::now() - schedule.interval;
    // Frames copied so far, as the last pass reported it (SQLite's count since the
    // WAL started over, not this pass's).
    let mut backfilled = 0;
    loop {
        let closed = {
            let Ok(mut s) = lock.lock() else { return };
            while s.commits == seen && !s.closed {
                s = match wake.wait(s) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            seen = s.commits;
            s.closed
        };
        if closed {
            // The writer is gone: copy what is left, so the file alone is current.
            let _ = checkpoint(conn, "TRUNCATE");
            return;
        }
        let since = last.elapsed();
        if since < schedule.interval {
            std::thread::sleep(schedule.interval - since);
        }
        last = Instant::now();
        match checkpoint(conn, "PASSIVE") {
            Ok((_, log, copied)) => {
                if copied > 0 && copied != backfilled {
                    flush(db.as_ref());
                }
                backfilled = copied;
                if log >= schedule.restart_frames {
                    if let Ok(mut s) = lock.lock() {
                        s.restart_due = true;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Flush the database pages a partial checkpoint copied (fdatasync(2), on this thread).
/// SQLite syncs the database file only in a checkpoint that copies the whole WAL: the
/// writer's catch-up (see the module's notes). Without this, that one sync wrote out
/// every page this thread had copied since the last one (16 MiB then), and took
/// 12-17 ms while every request waited on the writer (README "Checkpoints flushed on
/// their own thread"). Durability does not depend on it: SQLite restarts the WAL only
/// after its own sync.
fn flush(db: Option<&std::fs::File>) {
    if let Some(Err(e)) = db.map(std::fs::File::sync_data) {
        tracing::warn!(error = %e, "flushing the database file failed");
    }
}

/// `PRAGMA wal_checkpoint(MODE)`: (busy, frames in the WAL, frames copied).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096 + 24;

    /// A fresh directory for one test's database.
    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("handoff-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A fresh directory for one test, its database path and the writer's connection.
    fn setup(name: &str) -> (std::path::PathBuf, std::path::PathBuf, Connection) {
        let dir = dir(name);
        let path = dir.join("w.db");
        let c = writer(&path);
        (dir, path, c)
    }

    fn writer(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .unwrap();
        c
    }

    fn insert(c: &Connection, n: usize) {
        let body = vec![7u8; 8 * 1024];
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..n {
            c.execute("INSERT INTO t (body) VALUES (?1)", [&body])
                .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }

    fn wal_len(path: &Path) -> u64 {
        std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    /// The WAL header's checkpoint sequence number: SQLite adds one each time it
    /// starts the WAL over (written with the first frame after).
    fn wal_restarts(path: &Path) -> u32 {
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap();
        u32::from_be_bytes(wal[12..16].try_into().unwrap())
    }

    #[test]
    fn the_wal_is_restarted_under_sustained_writes() {
        let (dir, path, c) = setup("restart");
        let schedule = Schedule {
            interval: Duration::from_millis(1),
            restart_frames: 64,
        };
        let ck = Checkpointer::spawn(&path, schedule).unwrap();
        insert(&c, 2);
        ck.committed(&c);
        let first = wal_restarts(&path);
        // Commits of about 6 frames each, back to back, until the WAL starts over
        // (the control below: never, without the thread). Not a bound on the WAL's
        // length: how far it grows first depends on how fast the disk is (a slow one
        // ran the thread late and failed such a bound). Whether the thread's passes
        // or the writer's catch-up start it over is not told apart here: between
        // this loop's commits the thread's passes can copy every frame.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut commits = 1;
        while wal_restarts(&path) == first {
            assert!(
                Instant::now() < deadline,
                "the WAL was never started over ({commits} commits, {} bytes)",
                wal_len(&path)
            );
            insert(&c, 2);
            ck.committed(&c);
            commits += 1;
        }
        let rows: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2 * commits);
        drop(ck);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_the_thread_the_wal_only_grows() {
        // The control for the test above: the writer's settings alone do not bound
        // it, nor start it over.
        let (dir, path, c) = setup("grows");
        insert(&c, 2);
        let first = wal_restarts(&path);
        for _ in 0..400 {
            insert(&c, 2);
        }
        assert!(wal_len(&path) > 2000 * PAGE, "{}", wal_len(&path));
        assert_eq!(wal_restarts(&path), first);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_database_file_alone_is_current_once_the_writer_stops() {
        let (dir, path, c) = setup("current");
        let ck = Checkpointer::spawn(&path, Schedule::default()).unwrap();
        insert(&c, 5);
        ck.committed(&c);
        drop(ck);
        // The thread's last checkpoint truncates the WAL to nothing.
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal_len(&path) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(wal_len(&path), 0);
        // A copy of the main file without its WAL holds every committed row.
        let copy = dir.join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let rows: i64 = Connection::open(&copy)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
