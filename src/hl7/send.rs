//! A small MLLP sender (`handoff hl7 send FILE --to HOST:PORT`), for demos and tests:
//! one connection, each message framed, its ACK awaited before the next is sent.

use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
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

pub struct Client {
    framed: Framed<TcpStream, MllpCodec>,
    timeout: Duration,
}

impl Client {
    pub async fn connect(addr: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            framed: Framed::new(stream, MllpCodec::new(16 * 1024 * 1024)),
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
pub async fn send_file(file: &std::path::Path, to: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let messages = split_messages(&bytes);
    if messages.is_empty() {
        bail!("{} holds no HL7 message", file.display());
    }
    let mut client = Client::connect(to).await?;
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
