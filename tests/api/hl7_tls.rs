//! The MLLP listener over TLS (docs/hl7.md, "TLS"): a feed over TLS is ACKed and
//! stored; a plain-TCP sender gets nothing through; with a client CA configured only
//! an interface engine presenting a certificate it signed is served.

use std::path::PathBuf;
use std::time::Duration;

use handoff::hl7::send::{Client, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_with, Backend, TestApp};
use crate::hl7::{a01_as, assert_aa, visit};

fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls")).join(name)
}

async fn spawn_tls(backend: Backend, client_ca: bool) -> Option<TestApp> {
    spawn_with(backend, |s| {
        s.mllp_tls_cert_file = Some(tls_file("server.pem"));
        s.mllp_tls_key_file = Some(tls_file("server.key"));
        if client_ca {
            s.mllp_tls_client_ca_file = Some(tls_file("client-ca.pem"));
        }
    })
    .await
}

fn trusting(identity: bool) -> TlsOptions {
    TlsOptions {
        ca: Some(tls_file("ca.pem")),
        cert: identity.then(|| tls_file("client.pem")),
        key: identity.then(|| tls_file("client.key")),
    }
}

/// Send over TLS; the ACK, or why there was none.
async fn send_tls(app: &TestApp, tls: &TlsOptions, msg: &str) -> anyhow::Result<String> {
    let mut c = Client::connect_with(app.mllp.as_deref().unwrap(), tls).await?;
    c.send(msg.as_bytes()).await
}

/// A frame sent in the clear to the TLS listener: what comes back (if anything) is
/// no ACK, and the connection ends.
async fn plain_text_gets_no_ack(app: &TestApp, msg: &str) {
    let mut s = TcpStream::connect(app.mllp.as_deref().unwrap())
        .await
        .unwrap();
    let mut frame = vec![0x0b];
    frame.extend_from_slice(msg.as_bytes());
    frame.extend_from_slice(&[0x1c, 0x0d]);
    let _ = s.write_all(&frame).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the listener closes the connection");
    assert!(
        !String::from_utf8_lossy(&buf).contains("MSA|"),
        "no ACK in the clear"
    );
}

macro_rules! both {
    ($($name:ident: $mutual:expr),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = super::spawn_tls(super::Backend::Sqlite, $mutual).await {
                        super::$name(app).await;
                    }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = super::spawn_tls(super::Backend::Postgres, $mutual).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

both!(
    a_feed_over_tls_is_acked_and_stored: false,
    mutual_tls_serves_only_certified_engines: true,
);

async fn a_feed_over_tls_is_acked_and_stored(app: TestApp) {
    let ack = send_tls(&app, &trusting(false), &a01_as("A01", "TLS-1"))
        .await
        .unwrap();
    assert_aa(&ack, "TLS-1");
    assert_eq!(visit(&app).await["status"], "in-progress");
    // In the clear: nothing is applied.
    plain_text_gets_no_ack(&app, &a01_as("A03", "PLAIN-1")).await;
    assert_eq!(visit(&app).await["status"], "in-progress");
    // A sender that does not trust the listener's CA does not connect.
    let wrong = TlsOptions {
        ca: Some(tls_file("client-ca.pem")),
        ..Default::default()
    };
    assert!(send_tls(&app, &wrong, &a01_as("A03", "TLS-2"))
        .await
        .is_err());
    assert_eq!(app.count("Encounter").await, 1);
}

async fn mutual_tls_serves_only_certified_engines(app: TestApp) {
    // Without a client certificate the handshake (TLS 1.3: the first read) fails.
    let refused = send_tls(&app, &trusting(false), &a01_as("A01", "NOCERT-1")).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(app.count("Encounter").await, 0);
    let ack = send_tls(&app, &trusting(true), &a01_as("A01", "CERT-1"))
        .await
        .unwrap();
    assert_aa(&ack, "CERT-1");
    assert_eq!(app.count("Encounter").await, 1);
}
