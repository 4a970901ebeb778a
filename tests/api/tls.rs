//! Notifications to an HTTPS subscriber: its CA trusted through `subscriber_ca_file`,
//! carried over HTTP/2 when the subscriber offers it (ALPN); an endpoint whose
//! certificate nobody vouches for is never sent anything.

use crate::helpers::{spawn_with, Backend};
use crate::receiver::Receiver;
use crate::subscriptions::{discharged, subscribe, subscription, wait_status};

const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/ca.pem");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_an_https_subscriber_over_http2() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_with(backend, |s| s.subscriber_ca_file = Some(CA.into())).await
        else {
            continue; // PostgreSQL unreachable outside CI (helpers says so)
        };
        let rx = Receiver::start_tls().await;
        assert!(rx.url.starts_with("https://localhost:"), "{}", rx.url);
        let filter = ["Encounter?patient=Patient/p1"];
        subscribe(
            &app,
            &subscription("encounter-end", &filter, &rx.url, "id-only"),
        )
        .await;
        app.create(&discharged("Patient/p1")).await;
        let hits = rx
            .wait("the discharge over TLS", |h| {
                h.iter().any(|h| h.kind() == "event-notification")
            })
            .await;
        let versions: Vec<_> = hits.iter().map(|h| h.version.as_str()).collect();
        assert!(
            versions.iter().all(|v| *v == "HTTP/2.0"),
            "{backend:?}: every request over HTTP/2: {versions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_errors_the_subscription() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        // No subscriber_ca_file: the test CA is trusted by nobody.
        let Some(app) = spawn_with(backend, |_| {}).await else {
            continue;
        };
        let rx = Receiver::start_tls().await;
        let created = app
            .create(&subscription("encounter-end", &[], &rx.url, "id-only"))
            .await;
        let id = created["id"].as_str().unwrap();
        wait_status(&app, id, "error").await;
        assert!(rx.hits().is_empty(), "{backend:?}: nothing reached it");
    }
}

#[tokio::test]
async fn a_bad_ca_file_stops_the_gateway_at_start() {
    let dir = std::env::temp_dir().join(format!("handoff-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("not-a-cert.pem");
    std::fs::write(&bad, "hello").unwrap();
    let mut settings = handoff::config::Settings {
        http_addr: "127.0.0.1:0".into(),
        database_url: format!("sqlite:{}", dir.join("h.db").display()),
        subscriber_ca_file: Some(bad),
        ..Default::default()
    };
    let err = match handoff::startup::Application::build(settings.clone()).await {
        Ok(_) => panic!("a CA file with no certificate must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("not-a-cert.pem"),
        "the error names the file: {err}"
    );
    settings.subscriber_ca_file = Some(dir.join("missing.pem"));
    let err = match handoff::startup::Application::build(settings).await {
        Ok(_) => panic!("a missing CA file must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("missing.pem"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
