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
use crate::store::{self, Store, StoreSettings};

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    /// The gateway's profiles, loaded once at start.
    pub profiles: Arc<Profiles>,
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
        let workers = if settings.http_workers == 0 {
            num_cpus()
        } else {
            settings.http_workers
        };
        let state = web::Data::new(AppState {
            store: store.clone(),
            settings,
            profiles,
        });
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(api::routes))
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
        })
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

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
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
