//! Building and running the application: store, then the HTTP server on its listener.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::api;
use crate::config::{redact_url, Settings};
use crate::fhir::profiles::Profiles;
use crate::notify::ssrf::EndpointPolicy;
use crate::notify::worker::{self, DeliverySettings};
use crate::store::{self, Store, StoreSettings};

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    /// The gateway's profiles, loaded once at start.
    pub profiles: Arc<Profiles>,
    /// Which subscriber endpoints may be notified.
    pub endpoint_policy: EndpointPolicy,
    /// This process's name as a holder of the store's leases (the deadline sweep).
    pub instance: String,
    /// The API clients (none: the API is open).
    pub clients: crate::auth::Clients,
}

fn endpoint_policy(settings: &Settings) -> EndpointPolicy {
    EndpointPolicy {
        allow_private: settings.allow_private_subscribers,
        allow_hosts: settings.subscriber_allow_hosts.clone(),
        // Plain http only where private targets are allowed (local demos and tests).
        require_https: !settings.allow_private_subscribers,
    }
}

/// The extra trust anchors for subscriber endpoints (`subscriber_ca_file`), if any.
fn subscriber_roots(settings: &Settings) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let Some(path) = &settings.subscriber_ca_file else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?;
    if roots.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", path.display());
    }
    tracing::info!(
        certificates = roots.len(),
        "extra subscriber trust anchors loaded"
    );
    Ok(roots)
}

/// The configured profiles, with what is worth knowing about them logged.
pub fn load_profiles(settings: &Settings) -> anyhow::Result<Profiles> {
    let profiles = Profiles::load_configured(settings.profiles_dir.as_deref())?;
    for note in profiles.notes() {
        tracing::warn!("{note}");
    }
    tracing::info!(
        profiles = profiles.len(),
        value_sets = profiles.valueset_count(),
        "profiles loaded"
    );
    Ok(profiles)
}

pub struct Application {
    port: u16,
    server: Server,
    store: Arc<dyn Store>,
    stop_worker: tokio::sync::watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    mllp: Option<Mllp>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

/// The running MLLP listener.
struct Mllp {
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_mllp(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Option<Mllp>> {
    if !settings.mllp_enabled {
        return Ok(None);
    }
    use crate::hl7::{apply::Hl7Context, listener};
    let ctx = Hl7Context::new(
        store,
        Duration::from_secs(settings.hl7_a08_window_secs),
        settings.hl7_remembered_resources,
    );
    let tls = match (&settings.mllp_tls_cert_file, &settings.mllp_tls_key_file) {
        (Some(cert), Some(key)) => Some(
            crate::hl7::tls::server_config(cert, key, settings.mllp_tls_client_ca_file.as_deref())
                .context("the MLLP listener's TLS")?,
        ),
        _ => None,
    };
    let ls = listener::ListenerSettings {
        max_connections: settings.mllp_max_connections,
        max_message_bytes: settings.mllp_max_message_bytes,
        idle_timeout: Duration::from_secs(settings.mllp_idle_timeout_secs),
        tls,
    };
    let l = listener::Listener::bind(&settings.mllp_addr, ls, ctx)
        .await
        .with_context(|| format!("binding the MLLP listener on {}", settings.mllp_addr))?;
    let port = l.port();
    tracing::info!(
        port,
        tls = settings.mllp_tls_cert_file.is_some(),
        client_certificates = settings.mllp_tls_client_ca_file.is_some(),
        "MLLP listening"
    );
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(l.run(rx, Duration::from_secs(10)));
    Ok(Some(Mllp { port, stop, task }))
}

impl Application {
    /// Connect (and migrate) the store, bind the listener. `http_addr` may use port 0.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, StoreSettings::default()).await
    }

    pub async fn build_with(
        settings: Settings,
        mut store_settings: StoreSettings,
    ) -> anyhow::Result<Self> {
        let profiles = Arc::new(load_profiles(&settings)?);
        store_settings.pool_size = settings.db_pool_size;
        store_settings.max_batch = settings.group_commit_max;
        store_settings.consent_policy = settings.consent_policy();
        store_settings.handoffs = Arc::new(
            crate::handoffs::Policy::from_settings(&settings.handoffs)
                .map_err(anyhow::Error::msg)?,
        );
        let store = store::connect(&settings.database_url, &store_settings)
            .await
            .with_context(|| {
                format!(
                    "opening the store at {}",
                    redact_url(&settings.database_url)
                )
            })?;
        let listener = TcpListener::bind(&settings.http_addr)
            .with_context(|| format!("binding {}", settings.http_addr))?;
        let port = listener.local_addr()?.port();
        tracing::info!(port, backend = store.backend(), "handoff listening");
        if store.backend() == "sqlite" {
            // One gateway serves an SQLite store: claims left in it were held by a
            // process that is gone, so its rows are sent now rather than after the lease.
            let op = store::WriteOp::Outbox(store::OutboxOp::ReleaseClaims);
            if let Some(store::WriteOutcome::Queued(n @ 1..)) = store.commit(vec![op]).await?.pop()
            {
                tracing::info!(
                    released = n,
                    "released delivery claims left by a stopped process"
                );
            }
        }
        api::subscriptions::seed_topics(&*store)
            .await
            .context("storing the subscription topics")?;
        let base_url = match &settings.public_base_url {
            Some(b) => format!("{}/fhir", b.trim_end_matches('/')),
            None => format!("http://{}/fhir", listener.local_addr()?),
        };
        let delivery = DeliverySettings {
            concurrency: settings.delivery_concurrency,
            retry_schedule: settings
                .delivery_retry_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            max_retry_after: Duration::from_secs(settings.delivery_max_retry_after_secs),
            // Longer than any request may take (timeouts are capped at MAX_TIMEOUT, and
            // the setting is checked against it), so a row is never sent by two workers
            // at once. After a crash on PostgreSQL the rows are taken over as soon as
            // the dead process's claimer lock is free (`postgres::claimer`), else when
            // the lease runs out.
            lease: Duration::from_secs(settings.delivery_lease_secs),
            default_timeout: Duration::from_secs(settings.delivery_timeout_secs),
            max_events: settings.delivery_max_events,
            policy: endpoint_policy(&settings),
            base_url,
        };
        let mllp = start_mllp(&settings, store.clone()).await?;
        let (stop_worker, stop_rx) = tokio::sync::watch::channel(false);
        let roots = subscriber_roots(&settings)?;
        let client = worker::client(&delivery.policy, &roots)
            .context("building the notification HTTP client")?;
        let worker = worker::spawn(
            store.clone(),
            store.signal(),
            client,
            delivery,
            stop_rx.clone(),
        );
        // Message receipts (HL7 v2 and FHIR messages) are pruned even with MLLP off.
        tokio::spawn(crate::retention::prune(
            store.clone(),
            Duration::from_secs(settings.hl7_receipt_retention_secs),
            "message receipts",
            |before, limit| store::WriteOp::PruneHl7 { before, limit },
            stop_rx.clone(),
        ));
        // Finished notifications, unless kept for ever (0).
        if settings.delivery_retention_secs > 0 {
            tokio::spawn(crate::retention::prune(
                store.clone(),
                Duration::from_secs(settings.delivery_retention_secs),
                "finished notifications",
                |before, limit| store::WriteOp::Outbox(store::OutboxOp::Prune { before, limit }),
                stop_rx.clone(),
            ));
        }
        let instance = uuid::Uuid::new_v4().to_string();
        let sweeper = match settings.handoffs.sweep_interval_secs {
            0 => None,
            secs => Some(crate::handoffs::job::spawn(
                store.clone(),
                instance.clone(),
                Duration::from_secs(secs),
                stop_rx,
            )),
        };
        let workers = if settings.http_workers == 0 {
            num_cpus()
        } else {
            settings.http_workers
        };
        let clients =
            crate::auth::Clients::from_config(&settings.clients).map_err(anyhow::Error::msg)?;
        if clients.is_open() {
            tracing::warn!("no API clients are configured: the API is open, reads are neither consent-checked nor audited (docs/consent.md)");
        }
        let state = web::Data::new(AppState {
            clients,
            store: store.clone(),
            endpoint_policy: endpoint_policy(&settings),
            instance,
            settings,
            profiles,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(api::auth::authenticate))
                .configure(api::routes)
        })
        .listen(listener)?
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(10)
        .keep_alive(Duration::from_secs(75))
        .run();
        Ok(Application {
            port,
            server,
            store,
            stop_worker,
            worker,
            mllp,
            sweeper,
        })
    }

    /// The MLLP listener's port, when it runs.
    pub fn mllp_port(&self) -> Option<u16> {
        self.mllp.as_ref().map(|m| m.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until stopped, then let the delivery worker finish what it has in flight
    /// (what it has not finished is delivered after the next start).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(m) = self.mllp {
            // Stop accepting; connections finish the message in hand (ACKed after its
            // commit) and close.
            let _ = m.stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(15), m.task).await;
        }
        let _ = self.stop_worker.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.worker).await;
        if let Some(s) = self.sweeper {
            let _ = tokio::time::timeout(Duration::from_secs(15), s).await;
        }
        served
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
