//! A real local HTTP server standing in for a subscriber: it records every request
//! and answers with a status the test can flip mid-test (and an optional Retry-After).

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub json: Value,
    /// The status the receiver answered with.
    pub answered: u16,
    pub at: Instant,
    /// The HTTP version the request came over (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The notification's type: handshake, heartbeat, event-notification...
    pub fn kind(&self) -> String {
        param(&self.json["entry"][0]["resource"], "type")
    }
    /// The event numbers it carries.
    pub fn event_numbers(&self) -> Vec<i64> {
        event_numbers(&self.json)
    }
}

/// The event numbers a notification (or `$events`) Bundle carries, in its first
/// entry's status Parameters.
pub fn event_numbers(bundle: &Value) -> Vec<i64> {
    bundle["entry"][0]["resource"]["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "notification-event")
        .filter_map(|p| {
            p["part"]
                .as_array()?
                .iter()
                .find(|x| x["name"] == "event-number")?["valueString"]
                .as_str()?
                .parse()
                .ok()
        })
        .collect()
}

/// A status Parameters' value for `name` (valueCode / valueString / valueCanonical).
pub fn param(parameters: &Value, name: &str) -> String {
    parameters["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| {
            ["valueCode", "valueString", "valueCanonical", "valueUri"]
                .iter()
                .find_map(|k| p[*k].as_str())
        })
        .unwrap_or_default()
        .to_owned()
}

struct Shared {
    hits: Mutex<Vec<Hit>>,
    status: AtomicU16,
    /// Answers for the next requests, in order, before `status` applies again.
    script: Mutex<std::collections::VecDeque<u16>>,
    retry_after: Mutex<Option<String>>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicU16,
    max_in_flight: AtomicU16,
    /// Requests ever begun.
    started: std::sync::atomic::AtomicU64,
    /// How long to take over each answer (widens any overlap).
    delay_ms: AtomicU16,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    shared.started.fetch_add(1, Ordering::SeqCst);
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay.into())).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let scripted = shared.script.lock().unwrap().pop_front();
    let answered = scripted.unwrap_or_else(|| shared.status.load(Ordering::SeqCst));
    let hit = Hit {
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body: body.to_vec(),
        answered,
        at: Instant::now(),
        version: format!("{:?}", req.version()),
    };
    shared.hits.lock().unwrap().push(hit);
    let mut resp = HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap());
    if let Some(ra) = shared.retry_after.lock().unwrap().clone() {
        resp.insert_header(("Retry-After", ra));
    }
    resp.finish()
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::serve(None).await
    }

    /// The same over HTTPS with the certificate in fixtures/tls (for `localhost`, signed
    /// by fixtures/tls/ca.pem), offering HTTP/2 and HTTP/1.1 by ALPN.
    pub async fn start_tls() -> Receiver {
        Self::serve(Some(tls_config())).await
    }

    async fn serve(tls: Option<rustls::ServerConfig>) -> Receiver {
        let shared = Arc::new(Shared {
            hits: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
            script: Mutex::default(),
            retry_after: Mutex::new(None),
            in_flight: AtomicU16::new(0),
            max_in_flight: AtomicU16::new(0),
            started: Default::default(),
            delay_ms: AtomicU16::new(0),
        });
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(config) => server.bind_rustls_0_23("127.0.0.1:0", config),
            None => server.bind("127.0.0.1:0"),
        }
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        Receiver {
            url: format!("{scheme}://{host}:{port}/notify"),
            shared,
            handle,
        }
    }

    pub fn answer(&self, status: u16, retry_after: Option<&str>) {
        self.shared.status.store(status, Ordering::SeqCst);
        *self.shared.retry_after.lock().unwrap() = retry_after.map(str::to_owned);
    }

    /// Answer the next requests with `statuses`, one each, then as [`answer`] said.
    pub fn then_answer(&self, statuses: &[u16]) {
        self.shared.script.lock().unwrap().extend(statuses);
    }

    pub fn slow_down(&self, ms: u16) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> u16 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Requests begun so far (answered or not).
    pub fn started(&self) -> u64 {
        self.shared.started.load(Ordering::SeqCst)
    }

    /// The most requests that were ever being answered at once.
    pub fn max_in_flight(&self) -> u16 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Wait (up to 10 s) until `pred` holds for the hits so far; return them.
    pub async fn wait(&self, what: &str, pred: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        self.wait_long(what, Duration::from_secs(10), pred).await
    }

    pub async fn wait_long(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&[Hit]) -> bool,
    ) -> Vec<Hit> {
        let start = Instant::now();
        loop {
            let hits = self.hits();
            if pred(&hits) {
                return hits;
            }
            if start.elapsed() > limit {
                let summary: Vec<_> = hits
                    .iter()
                    .rev()
                    .take(20)
                    .map(|h| (h.kind(), h.answered))
                    .collect();
                panic!(
                    "timed out waiting for {what}; got {} requests, the last: {summary:?}",
                    hits.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Hits that were event notifications answered 2xx.
    pub fn delivered_events(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.kind() == "event-notification" && (200..300).contains(&h.answered))
            .collect()
    }
}

fn tls_config() -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
    let certs = CertificateDer::pem_file_iter(format!("{dir}/server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key")).unwrap();
    // ring, explicitly: the gateway's one crypto provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
