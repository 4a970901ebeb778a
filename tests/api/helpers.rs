//! Spawning the real application on a random port, on SQLite or PostgreSQL.
//!
//! Every test gets its own store: a fresh SQLite file, or a fresh PostgreSQL schema
//! (dropped when the test ends). PostgreSQL comes from `HANDOFF_TEST_POSTGRES_URL`
//! (default postgres://postgres@127.0.0.1:5432/test). When it cannot be reached the
//! PostgreSQL half of each test is skipped with a plain notice on stderr, except under
//! `CI=true`, where that is a failure.

use std::io::Write;
use std::sync::OnceLock;

use handoff::config::Settings;
use handoff::startup::Application;
use handoff::store::StoreSettings;
use reqwest::{Client, Response};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT/fhir`
    pub base: String,
    pub client: Client,
    /// `127.0.0.1:PORT` of the MLLP listener (HL7 v2), when it runs.
    pub mllp: Option<String>,
    /// The running app's store, for what a request cannot reach (store-level checks).
    pub store: std::sync::Arc<dyn handoff::store::Store>,
    handle: actix_web::dev::ServerHandle,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Schema(String),
}

pub fn postgres_url() -> String {
    std::env::var("HANDOFF_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Is PostgreSQL reachable? Asked once per test binary.
async fn postgres_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    if let Some(a) = AVAILABLE.get() {
        return *a;
    }
    use sqlx::Connection;
    let ok = match sqlx::PgConnection::connect(&postgres_url()).await {
        Ok(c) => {
            let _ = c.close().await;
            true
        }
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but PostgreSQL at {} cannot be reached: {e}",
                    postgres_url()
                );
            }
            // Written straight to stderr so the test harness's capture cannot hide it.
            let _ = writeln!(
                std::io::stderr(),
                "\nNOTE: PostgreSQL at {} is not reachable ({e}); the PostgreSQL suite was NOT run. \
                 Only SQLite was tested.\n",
                postgres_url()
            );
            false
        }
    };
    *AVAILABLE.get_or_init(|| ok)
}

pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// SQLite configured as the gateway's `main` configures it (its page cache included),
/// before this test process's first use of SQLite: every test that touches SQLite
/// calls this (through `spawn_with`) before anything else.
pub fn configure_sqlite() {
    handoff::store::sqlite::configure_process();
}

pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    configure_sqlite();
    let mut settings = Settings {
        http_addr: "127.0.0.1:0".into(),
        http_workers: 1,
        db_pool_size: 4,
        // The repository's profiles, wherever the tests run from.
        profiles_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles").into()),
        // Subscribers in tests are local HTTP servers; retries come quickly.
        allow_private_subscribers: true,
        delivery_retry_ms: vec![100, 200, 400, 800, 1600],
        // Delivery tests subscribe without naming a recipient (docs/consent.md): the
        // no-consent policy permits here; the consent tests set `deny`.
        consent_default: "permit".into(),
        // Every test app has its own MLLP listener on a free port.
        mllp_addr: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let mut store_settings = StoreSettings::default();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let cleanup = match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("handoff-test-{tag}"));
            std::fs::create_dir_all(&dir).unwrap();
            settings.database_url = format!("sqlite:{}", dir.join("handoff.db").display());
            Cleanup::Dir(dir)
        }
        Backend::Postgres => {
            if !postgres_available().await {
                return None;
            }
            let schema = format!("handoff_t_{}", &tag[..16]);
            settings.database_url = postgres_url();
            store_settings.pg_schema = Some(schema.clone());
            Cleanup::Schema(schema)
        }
    };
    tweak(&mut settings);
    let app = Application::build_with(settings, store_settings)
        .await
        .expect("the application builds");
    let base = format!("http://127.0.0.1:{}/fhir", app.port());
    let handle = app.handle();
    let store = app.store();
    let mllp = app.mllp_port().map(|p| format!("127.0.0.1:{p}"));
    tokio::spawn(app.run_until_stopped());
    Some(TestApp {
        base,
        client: Client::new(),
        mllp,
        store,
        handle,
        cleanup: Some(cleanup),
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let cleanup = self.cleanup.take();
        // Runs on its own runtime: Drop cannot await, and it also runs while a failed
        // test unwinds.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                handle.stop(false).await;
                match cleanup {
                    Some(Cleanup::Dir(d)) => {
                        let _ = std::fs::remove_dir_all(d);
                    }
                    Some(Cleanup::Schema(s)) => {
                        use sqlx::Connection;
                        if let Ok(mut c) = sqlx::PgConnection::connect(&postgres_url()).await {
                            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
                                .execute(&mut c)
                                .await;
                        }
                    }
                    None => {}
                }
            })
        })
        .join();
    }
}

/// `test_both!(name)` turns `async fn name(app: TestApp)` into `name::sqlite` and
/// `name::postgres` tests.
#[macro_export]
macro_rules! test_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn($crate::helpers::Backend::Sqlite).await.expect("sqlite app");
                super::$name(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn($crate::helpers::Backend::Postgres).await {
                    super::$name(app).await;
                }
            }
        }
    )*};
}

/// As `test_both!`, on a gateway whose no-consent policy denies (the production
/// default; the other tests' gateways permit, see `spawn_with`).
#[macro_export]
macro_rules! test_both_denying {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            fn deny(s: &mut handoff::config::Settings) {
                s.consent_default = "deny".into();
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_with($crate::helpers::Backend::Sqlite, deny).await.expect("sqlite app");
                super::$name(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_with($crate::helpers::Backend::Postgres, deny).await {
                    super::$name(app).await;
                }
            }
        }
    )*};
}

pub const JSON: &str = "application/fhir+json";
pub const XML: &str = "application/fhir+xml";

impl TestApp {
    /// The PostgreSQL schema this app's store lives in (None on SQLite).
    pub fn pg_schema(&self) -> Option<&str> {
        match &self.cleanup {
            Some(Cleanup::Schema(s)) => Some(s),
            _ => None,
        }
    }

    /// The SQLite file of an SQLite app.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.cleanup {
            Some(Cleanup::Dir(d)) => Some(d.join("handoff.db")),
            _ => None,
        }
    }

    /// A connection of the test's own to this app's PostgreSQL schema.
    pub async fn pg_connection(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        let schema = self.pg_schema().expect("a PostgreSQL app");
        let mut c = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
        sqlx::query(&format!("SET search_path TO {schema}"))
            .execute(&mut c)
            .await
            .unwrap();
        c
    }

    /// The parameters of `rtype/id`'s rows in `search_ref`, sorted (read straight from
    /// the store: what the index holds, not what a search answers).
    pub async fn ref_rows(&self, rtype: &str, id: &str) -> Vec<String> {
        const SQL: &str =
            "SELECT param FROM search_ref WHERE rtype = $1 AND rid = $2 ORDER BY param";
        match self.sqlite_path() {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                let mut stmt = c.prepare(SQL).unwrap();
                let rows = stmt.query_map([rtype, id], |r| r.get(0)).unwrap();
                rows.map(Result::unwrap).collect()
            }
            None => sqlx::query_scalar(SQL)
                .bind(rtype)
                .bind(id)
                .fetch_all(&mut self.pg_connection().await)
                .await
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header("Content-Type", JSON)
            .body(body.to_string())
            .send()
            .await
            .expect("POST")
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .header("Content-Type", JSON)
            .body(body.to_string())
            .send()
            .await
            .expect("PUT")
    }

    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("send")
    }

    /// Create and return the stored resource (asserting 201).
    pub async fn create(&self, body: &Value) -> Value {
        let rtype = body["resourceType"].as_str().unwrap();
        let r = self.post_json(rtype, body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "create {rtype} failed: {v}");
        v
    }

    /// Search and return the Bundle (asserting 200).
    pub async fn search(&self, path: &str) -> Value {
        let r = self.get(path).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "search {path} failed: {v}");
        v
    }

    /// The system history's size without what the gateway writes itself (its
    /// SubscriptionTopics, Basic resources stored at start, and the disclosure
    /// ledger's AuditEvents): what clients have written.
    pub async fn client_history_total(&self) -> u64 {
        let all = self.search("_history?_count=0").await["total"]
            .as_u64()
            .unwrap();
        let topics = self.search("Basic/_history?_count=0").await["total"]
            .as_u64()
            .unwrap();
        let ledger = self.search("AuditEvent/_history?_count=0").await["total"]
            .as_u64()
            .unwrap();
        all - topics - ledger
    }

    /// A call to the internal API (`/api/v1/...`): status and JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let root = self.base.trim_end_matches("/fhir");
        let mut req = self.client.request(
            method,
            format!("{root}/api/v1/{}", path.trim_start_matches('/')),
        );
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("internal API call");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The coordination records' domain events recorded so far (oldest first), as
    /// `event` names; the handoffs' own events (record kind `handoff`, issue #6) are left
    /// out (tests/api/accountability.rs reads those).
    pub async fn event_names(&self) -> Vec<String> {
        let (status, v) = self
            .api(reqwest::Method::GET, "events?limit=500", None)
            .await;
        assert_eq!(status, 200, "{v}");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["record_kind"] != "handoff")
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    }

    /// How many handoff Tasks the gateway wrote itself (#6): those with a handoff kind.
    pub async fn handoff_tasks(&self) -> u64 {
        let mut n = 0;
        for kind in ["discharge", "transfer", "referral"] {
            let q = format!(
                "Task?_count=0&code=http://handoff.example.org/fhir/CodeSystem/handoff-kind|{kind}"
            );
            n += self.search(&q).await["total"].as_u64().unwrap();
        }
        n
    }

    pub async fn count(&self, rtype: &str) -> u64 {
        self.search(&format!("{rtype}?_count=0")).await["total"]
            .as_u64()
            .unwrap()
    }
}

/// The ids of a searchset's matches, in order.
pub fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Assert an OperationOutcome with this status, issue code and (optionally) expression.
pub async fn assert_outcome(
    r: Response,
    status: u16,
    code: &str,
    expression: Option<&str>,
) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({got}): {text}"));
    assert_eq!(got, status, "status: {v}");
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    let issues = v["issue"].as_array().unwrap();
    assert!(
        issues.iter().any(|i| i["code"] == code),
        "no issue with code {code}: {v}"
    );
    if let Some(expr) = expression {
        assert!(
            issues.iter().any(|i| i["expression"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x == expr))),
            "no issue at {expr}: {v}"
        );
    }
    v
}
