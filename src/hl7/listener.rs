//! The MLLP listener: accepts connections (at most `max_connections` at once; more
//! wait in the kernel's backlog), reads framed messages one at a time per connection,
//! answers each with its ACK after the commit, closes a connection idle for
//! `idle_timeout`, and on shutdown stops accepting, lets each connection finish the
//! message in hand, and waits for them (up to a grace period).

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::codec::Framed;

use super::ack::{self, err, Answering, Rejection};
use super::apply::{handle, Hl7Context};
use super::codec::{MllpCodec, MllpError};
use super::message::Delimiters;

#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub max_connections: usize,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    /// TLS on every connection (src/hl7/tls.rs); None: plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Listener {
    listener: TcpListener,
    settings: ListenerSettings,
    ctx: Hl7Context,
}

impl Listener {
    pub async fn bind(
        addr: &str,
        settings: ListenerSettings,
        ctx: Hl7Context,
    ) -> std::io::Result<Listener> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Listener {
            listener,
            settings,
            ctx,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serve until `stop` turns true; then wait (at most `grace`) for open connections.
    pub async fn run(self, mut stop: watch::Receiver<bool>, grace: Duration) {
        let permits = Arc::new(Semaphore::new(self.settings.max_connections));
        let mut backoff = Duration::from_millis(10);
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stop.changed() => break,
            };
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.changed() => break,
            };
            match accepted {
                Ok((stream, _peer)) => {
                    backoff = Duration::from_millis(10);
                    let _ = stream.set_nodelay(true);
                    let (ctx, settings, stop) =
                        (self.ctx.clone(), self.settings.clone(), stop.clone());
                    tokio::spawn(async move {
                        match settings.tls.clone() {
                            None => serve(stream, ctx, settings, stop).await,
                            Some(config) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                                let shake = tokio::time::timeout(
                                    HANDSHAKE_TIMEOUT,
                                    acceptor.accept(stream),
                                );
                                match shake.await {
                                    Ok(Ok(tls)) => serve(tls, ctx, settings, stop).await,
                                    Ok(Err(e)) => {
                                        tracing::info!(error = %e, "MLLP TLS handshake refused")
                                    }
                                    Err(_) => tracing::info!("MLLP TLS handshake timed out"),
                                }
                            }
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "MLLP accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        drop(self.listener);
        let all = self.settings.max_connections as u32;
        let _ = tokio::time::timeout(grace, permits.acquire_many(all)).await;
        tracing::info!("MLLP listener stopped");
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    ctx: Hl7Context,
    settings: ListenerSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut framed = Framed::new(stream, MllpCodec::new(settings.max_message_bytes));
    loop {
        if *stop.borrow() {
            break;
        }
        let next = tokio::select! {
            n = tokio::time::timeout(settings.idle_timeout, framed.next()) => n,
            _ = stop.changed() => break,
        };
        let frame = match next {
            Err(_) => {
                tracing::debug!("MLLP connection idle: closed");
                break;
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(MllpError::TooLong(max)))) => {
                tracing::info!(max, "MLLP frame too long: AR and close");
                let r = Rejection::ar(
                    err::APPLICATION_ERROR,
                    format!("the message is longer than {max} bytes"),
                );
                let text = ack::build(
                    &Answering::default(),
                    &Delimiters::default(),
                    Err(&r),
                    chrono::Utc::now(),
                );
                let _ = framed.send(text.as_bytes()).await;
                break;
            }
            Ok(Some(Err(MllpError::Io(e)))) => {
                tracing::debug!(error = %e, "MLLP connection error");
                break;
            }
        };
        if framed.codec().skipped > 0 {
            tracing::info!(
                bytes = framed.codec().skipped,
                "MLLP: bytes outside frames skipped"
            );
            framed.codec_mut().skipped = 0;
        }
        // The message in hand is finished even when a shutdown begins meanwhile.
        let ack_text = handle(&ctx, &frame).await;
        if framed.send(ack_text.as_bytes()).await.is_err() {
            break;
        }
    }
}
