//! A small MLLP sender (`handoff hl7 send FILE --to HOST:PORT`), for demos and tests:
//! one connection (TLS when a CA is given), each message framed, its ACK awaited
//! before the next is sent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::codec::MllpCodec;
use super::message::decode_text;

/// The messages in a file: each starts at a line beginning with `MSH`; segments are
/// re-joined with CR whatever line ends the file uses. A leading BOM is dropped.
pub fn split_messages(bytes: &[u8]) -> Vec<String> {
    let text = decode_text(bytes);
    let mut out: Vec<Vec<&str>> = Vec::new();
    for line in text.split(['\r', '\n']).filter(|l| !l.trim().is_empty()) {
        if line.starts_with("MSH") || out.is_empty() {
            out.push(Vec::new());
        }
        out.last_mut().expect("pushed").push(line);
    }
    out.into_iter()
        .map(|segs| {
            let mut m = segs.join("\r");
            m.push('\r');
            m
        })
        .collect()
}

/// A connection, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TLS for the sender: the CA that signed the listener's certificate, and the
/// client certificate and key when the listener asks for one.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

pub struct Client {
    framed: Framed<Box<dyn Io>, MllpCodec>,
    timeout: Duration,
}

impl Client {
    pub async fn connect(addr: &str) -> anyhow::Result<Client> {
        Client::connect_with(addr, &TlsOptions::default()).await
    }

    /// Connect, over TLS when `tls.ca` is given.
    pub async fn connect_with(addr: &str, tls: &TlsOptions) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let io: Box<dyn Io> = match &tls.ca {
            None => Box::new(stream),
            Some(ca) => {
                let identity = match (&tls.cert, &tls.key) {
                    (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                    (None, None) => None,
                    _ => bail!("a client certificate needs both --tls-cert and --tls-key"),
                };
                let config = super::tls::client_config(ca, identity)?;
                let connector = tokio_rustls::TlsConnector::from(config);
                let name = super::tls::server_name(addr)?;
                Box::new(
                    connector
                        .connect(name, stream)
                        .await
                        .with_context(|| format!("TLS handshake with {addr}"))?,
                )
            }
        };
        Ok(Client {
            framed: Framed::new(io, MllpCodec::new(16 * 1024 * 1024)),
            timeout: Duration::from_secs(30),
        })
    }

    /// Send one message (bytes as given) and wait for its ACK.
    pub async fn send(&mut self, msg: &[u8]) -> anyhow::Result<String> {
        self.framed.send(msg).await?;
        match tokio::time::timeout(self.timeout, self.framed.next()).await {
            Err(_) => bail!("no ACK within {:?}", self.timeout),
            Ok(None) => bail!("the connection closed before the ACK"),
            Ok(Some(Err(e))) => Err(e.into()),
            Ok(Some(Ok(ack))) => Ok(decode_text(&ack)),
        }
    }
}

/// The MSA-1 code of an ACK (AA, AE, AR), if it has one.
pub fn ack_code(ack: &str) -> Option<&str> {
    ack.split(['\r', '\n'])
        .find(|s| s.starts_with("MSA"))
        .and_then(|s| s.get(4..6))
}

/// Send every message in `file` to `to`, printing each ACK; an error when any message
/// was not accepted (AE or AR).
pub async fn send_file(file: &std::path::Path, to: &str, tls: &TlsOptions) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let messages = split_messages(&bytes);
    if messages.is_empty() {
        bail!("{} holds no HL7 message", file.display());
    }
    let mut client = Client::connect_with(to, tls).await?;
    let mut refused = 0;
    for m in &messages {
        let ack = client.send(m.as_bytes()).await?;
        println!("{}", ack.replace('\r', "\n"));
        if ack_code(&ack) != Some("AA") {
            refused += 1;
        }
    }
    if refused > 0 {
        bail!("{refused} of {} messages were not accepted", messages.len());
    }
    Ok(())
}
