//! Fault tests against the real binary: `kill -9` while notifications are in flight,
//! then a restart on the same store. Every committed event must reach the subscriber,
//! in order; a notification may arrive twice only with the same webhook id.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::postgres_url;
use crate::receiver::Receiver;
use crate::records::encounter;
use crate::subscriptions::subscription;

const EVENTS: usize = 1000;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Gateway {
    pub child: Child,
    pub base: String,
}

/// A test that fails part-way must not leave its gateway running (it would go on
/// polling its database and load the machine for every later test and benchmark).
impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, waited for at most `limit`.
    pub fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < limit, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `{base}{path}` as JSON.
    pub async fn get_json(&self, client: &reqwest::Client, path: &str) -> Value {
        let r = client.get(format!("{}{path}", self.base)).send().await;
        r.unwrap().json().await.unwrap()
    }
}

pub fn start(config: &std::path::Path, port: u16) -> Gateway {
    let child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("serve")
        .env("HANDOFF_CONFIG", config)
        .env("HANDOFF_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}/fhir"),
    }
}

pub async fn wait_up(client: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while client.get(format!("{base}/metadata")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn config(
    dir: &std::path::Path,
    name: &str,
    port: u16,
    database_url: &str,
) -> std::path::PathBuf {
    let config = dir.join(name);
    // A lease of an hour: within these tests a claimed row goes out again only when
    // it is taken over because the process that claimed it is gone.
    std::fs::write(
        &config,
        format!(
            "http_addr = \"127.0.0.1:{port}\"\ndatabase_url = \"{database_url}\"\nmllp_addr = \"127.0.0.1:0\"\n\
             allow_private_subscribers = true\nconsent_default = \"permit\"\ndelivery_retry_ms = [100, 200, 400, 800, 1600, 3200]\n\
             delivery_lease_secs = 3600\n\
             profiles_dir = \"{}/profiles\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    config
}

async fn subscribe(client: &reqwest::Client, base: &str, rx: &Receiver) {
    let sub = subscription("encounter-start", &[], &rx.url, "id-only");
    let r = client
        .post(format!("{base}/Subscription"))
        .header("Content-Type", "application/fhir+json")
        .body(sub.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    rx.wait("the handshake", |h| {
        h.iter().any(|h| h.kind() == "handshake")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the handshake's result is recorded
}

/// `n` admissions, committed in transactions of up to 100.
async fn admit(client: &reqwest::Client, base: &str, n: usize) {
    for chunk in 0..n.div_ceil(100) {
        let size = (n - chunk * 100).min(100);
        let entries: Vec<Value> = (0..size)
            .map(|_| {
                json!({"resource": encounter("in-progress", "Location/ward-1"),
                            "request": {"method": "POST", "url": "Encounter"}})
            })
            .collect();
        let r = client
            .post(base)
            .header("Content-Type", "application/fhir+json")
            .body(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// Every number 1..=n exactly; a repeat only with the same webhook id; in order.
fn assert_all_once_in_order(rx: &Receiver, n: usize) {
    let delivered = rx.delivered_events();
    let mut ids: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut first_seen = Vec::new();
    for h in &delivered {
        for e in h.event_numbers() {
            ids.entry(e)
                .or_default()
                .insert(h.header("webhook-id").unwrap().to_owned());
            if !first_seen.contains(&e) {
                first_seen.push(e);
            }
        }
    }
    let all: Vec<i64> = (1..=n as i64).collect();
    assert_eq!(ids.keys().copied().collect::<Vec<_>>(), all);
    assert!(
        ids.values().all(|w| w.len() == 1),
        "a repeat came with another webhook id"
    );
    assert_eq!(first_seen, all, "delivered out of order");
}

fn distinct_events(h: &[crate::receiver::Hit]) -> usize {
    h.iter()
        .filter(|h| h.kind() == "event-notification")
        .flat_map(|h| h.event_numbers())
        .collect::<BTreeSet<_>>()
        .len()
}

async fn kill_9_loses_nothing(database_url: String, dir: &std::path::Path) {
    let port = free_port();
    let config = config(dir, "handoff.toml", port, &database_url);
    let client = reqwest::Client::new();
    let rx = Receiver::start().await;
    // Notifications carry up to 20 events: a slower receiver keeps most of the
    // thousand owed when the first hundred have arrived.
    rx.slow_down(5);
    let mut gw = start(&config, port);
    wait_up(&client, &gw.base).await;
    subscribe(&client, &gw.base, &rx).await;
    admit(&client, &gw.base, EVENTS).await;
    // Some delivered, most still owed: kill -9 while a notification is in flight, so
    // that its rows are claimed (under a lease of an hour, see `config`). The receiver
    // holds every request begun from now on for a minute, longer than the wait below.
    // One subscription has one request in flight at most: once one has begun since,
    // the one in flight is held.
    rx.wait("a first hundred events", |h| distinct_events(h) >= 100)
        .await;
    let begun = rx.started();
    rx.slow_down(60_000);
    rx.wait("a request held", |_| {
        rx.started() > begun && rx.in_flight() > 0
    })
    .await;
    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();
    let before_restart = distinct_events(&rx.delivered_events());
    assert!(
        before_restart < EVENTS,
        "all delivered before the kill: the test proves nothing"
    );

    // The rows the dead process claimed are taken over by the new one at once (SQLite:
    // released at its start; PostgreSQL: the dead process's claimer lock is free), not
    // when their lease of an hour runs out.
    rx.slow_down(5);
    let mut gw = start(&config, port);
    rx.wait_long(
        "every event after the restart",
        Duration::from_secs(50),
        |h| distinct_events(h) >= EVENTS,
    )
    .await;
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    assert_all_once_in_order(&rx, EVENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_sqlite() {
    let dir = std::env::temp_dir().join(format!("handoff-fault-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("f.db").display());
    kill_9_loses_nothing(url, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A PostgreSQL database of its own (the binary takes a URL, not a schema), and a
/// directory for its config files; None when PostgreSQL is unreachable outside CI.
pub struct FreshDatabase {
    admin: sqlx::PgConnection,
    name: String,
    pub url: url::Url,
    pub dir: std::path::PathBuf,
}

impl FreshDatabase {
    pub async fn create() -> Option<FreshDatabase> {
        use sqlx::Connection;
        let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_url()).await else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "PostgreSQL is required under CI"
            );
            return None;
        };
        let name = format!(
            "handoff_fault_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&postgres_url()).unwrap();
        url.set_path(&name);
        let dir = std::env::temp_dir().join(format!("handoff-fault-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        Some(FreshDatabase {
            admin,
            name,
            url,
            dir,
        })
    }

    pub async fn drop(mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        let _ = sqlx::query(&drop).execute(&mut self.admin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_postgres() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let (url, dir) = (db.url.clone(), db.dir.clone());
    kill_9_loses_nothing(url.to_string(), &dir).await;
    db.drop().await;
}

/// Two gateways on one PostgreSQL share the outbox: no row is sent by both at once
/// (the subscriber never sees two requests in flight), each event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_postgres() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let (url, dir) = (db.url.clone(), db.dir.clone());

    let client = reqwest::Client::new();
    let rx = Receiver::start().await;
    rx.slow_down(3);
    let (p1, p2) = (free_port(), free_port());
    let mut a = start(&config(&dir, "a.toml", p1, url.as_str()), p1);
    wait_up(&client, &a.base).await;
    let mut b = start(&config(&dir, "b.toml", p2, url.as_str()), p2);
    wait_up(&client, &b.base).await;
    subscribe(&client, &a.base, &rx).await;
    // Events written through both gateways.
    admit(&client, &a.base, 150).await;
    admit(&client, &b.base, 150).await;
    rx.wait_long("all 300", Duration::from_secs(60), |h| {
        distinct_events(h) >= 300
    })
    .await;
    for g in [&mut a, &mut b] {
        g.child.kill().unwrap();
        g.child.wait().unwrap();
    }
    assert_eq!(
        rx.max_in_flight(),
        1,
        "two requests for one subscription were in flight at once"
    );
    assert_all_once_in_order(&rx, 300);
    let sent: usize = rx
        .delivered_events()
        .iter()
        .map(|h| h.event_numbers().len())
        .sum();
    assert_eq!(sent, 300, "an event was delivered twice");
    db.drop().await;
}

/// `handoff replay` requeues what was dead-lettered; the gateway delivers it at its
/// next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_the_command_line() {
    let dir =
        std::env::temp_dir().join(format!("handoff-replay-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("r.db").display());
    let port = free_port();
    let config = config(&dir, "handoff.toml", port, &url);
    let client = reqwest::Client::new();
    let rx = Receiver::start().await;
    let mut gw = start(&config, port);
    wait_up(&client, &gw.base).await;
    subscribe(&client, &gw.base, &rx).await;
    rx.answer(400, None);
    admit(&client, &gw.base, 1).await;
    rx.wait("the refused notification", |h| {
        h.iter().any(|h| h.answered == 400)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // recorded as dead
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["replay"])
        .env("HANDOFF_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 notifications requeued"
    );

    rx.answer(200, None);
    let mut gw = start(&config, port);
    rx.wait("the replayed notification", |h| {
        h.iter()
            .any(|h| h.kind() == "event-notification" && h.answered == 200)
    })
    .await;
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
