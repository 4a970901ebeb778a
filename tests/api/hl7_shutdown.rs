//! SIGTERM while an HL7 message is being applied, against the real binary on both
//! stores. The test holds the store's write lock so that the message is provably in the
//! middle of its apply (the SQLite writer thread is in its busy wait; a PostgreSQL
//! backend waits on the test's table lock), then stops the gateway. The gateway must
//! close its MLLP port at once, finish the message in hand, send its AA only after the
//! commit, and exit cleanly; after a restart the message is there once and a resend gets
//! the same ACK.

use std::time::{Duration, Instant};

use handoff::hl7::send::Client;

use crate::faults::{free_port, start, wait_up, FreshDatabase, Gateway};
use crate::hl7::{a01_as, assert_aa, segment};

/// What holds the store's write lock for the test.
enum Hold {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection),
}

impl Hold {
    async fn take(database_url: &str) -> Hold {
        match database_url.strip_prefix("sqlite:") {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(10)).unwrap();
                c.execute_batch("BEGIN EXCLUSIVE").unwrap();
                Hold::Sqlite(c)
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(database_url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut c).await.unwrap();
                sqlx::query("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                Hold::Postgres(c)
            }
        }
    }

    /// Is the gateway waiting for the lock (that is: in the middle of the apply)?
    async fn waited_on(&mut self, gateway_pid: u32) -> bool {
        match self {
            Hold::Sqlite(_) => sqlite_writer_sleeps(gateway_pid),
            Hold::Postgres(c) => {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted \
                     AND relation = 'resources'::regclass",
                )
                .fetch_one(c)
                .await
                .unwrap();
                waiting > 0
            }
        }
    }

    async fn release(self) {
        match self {
            Hold::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            Hold::Postgres(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            }
        }
    }
}

/// The gateway's SQLite writer thread is asleep in SQLite's busy handler (it sleeps in
/// nanosleep between tries; idle, it waits on a futex for work).
fn sqlite_writer_sleeps(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
        read("comm").trim() == "sqlite-writer" && read("wchan").contains("nanosleep")
    })
}

async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ok().await {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn config(dir: &std::path::Path, port: u16, mllp: u16, database_url: &str) -> std::path::PathBuf {
    let config = dir.join("handoff.toml");
    std::fs::write(
        &config,
        format!(
            "http_addr = \"127.0.0.1:{port}\"\ndatabase_url = \"{database_url}\"\n\
             mllp_addr = \"127.0.0.1:{mllp}\"\nprofiles_dir = \"{}/profiles\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    config
}

async fn stopped_mid_apply(database_url: &str, dir: &std::path::Path) {
    let (port, mllp) = (free_port(), free_port());
    let config = config(dir, port, mllp, database_url);
    let mllp = format!("127.0.0.1:{mllp}");
    let mut gw: Gateway = start(&config, port);
    wait_up(&reqwest::Client::new(), &gw.base).await;

    let mut hold = Hold::take(database_url).await;
    let msg = a01_as("A01", "SHUT-0001");
    let mut client = Client::connect(&mllp).await.unwrap();
    let in_flight = tokio::spawn(async move { client.send(msg.as_bytes()).await });
    let pid = gw.child.id();
    until("the message never reached the store's lock", async || {
        hold.waited_on(pid).await
    })
    .await;

    gw.sigterm();
    // The port closes while the message is still held up: nothing new is taken in.
    until("the MLLP port stayed open after SIGTERM", async || {
        tokio::net::TcpStream::connect(&mllp).await.is_err()
    })
    .await;
    assert!(!in_flight.is_finished(), "answered before its commit");
    assert!(gw.child.try_wait().unwrap().is_none(), "exited mid-apply");

    hold.release().await;
    let ack = in_flight
        .await
        .unwrap()
        .expect("the ACK of the message in hand");
    assert_aa(&ack, "SHUT-0001");
    let exit = gw.exit_within(Duration::from_secs(30));
    assert!(exit.success(), "exit status {exit:?}");
    drop(gw);

    // Committed once: the restarted gateway has the visit, and a resend (as an engine
    // that missed the ACK would send) is answered with the same ACK, not applied again.
    let gw = start(&config, port);
    let http = reqwest::Client::new();
    wait_up(&http, &gw.base).await;
    let visits = gw.get_json(&http, "/Encounter?identifier=V1001").await;
    assert_eq!(visits["total"], 1, "{visits}");
    let mut client = Client::connect(&mllp).await.unwrap();
    let again = client
        .send(a01_as("A01", "SHUT-0001").as_bytes())
        .await
        .unwrap();
    assert_eq!(segment(&again, "MSA"), segment(&ack, "MSA"));
    assert_eq!(
        segment(&again, "MSH"),
        segment(&ack, "MSH"),
        "the stored ACK"
    );
    let history = gw.get_json(&http, "/Encounter/_history").await;
    assert_eq!(history["total"], 1, "the resend wrote a version: {history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_apply_sqlite() {
    let dir = std::env::temp_dir().join(format!("handoff-shut-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("s.db").display());
    stopped_mid_apply(&url, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_apply_postgres() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let (url, dir) = (db.url.to_string(), db.dir.clone());
    stopped_mid_apply(&url, &dir).await;
    db.drop().await;
}
