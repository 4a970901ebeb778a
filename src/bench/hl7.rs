//! `handoff bench hl7`: A08 messages ACKed per second over 1 and 8 MLLP connections,
//! with p50/p99 ACK latency, on SQLite and PostgreSQL, beside a ceiling measured in the
//! same run: the same client loop against a bare MLLP echo (an in-process listener
//! that answers every frame with a fixed ACK, nothing parsed or stored), i.e. what the
//! framing, loopback TCP and the client cost alone.
//!
//! Each connection first admits its own visits (A01, not timed), then sends A08s for
//! them in a closed loop (send, wait for the ACK, send the next), each with a new
//! control id and a changed attending, so every A08 is a real stored update. Control
//! ids never repeat within a run, not even across rows: a repeated one is a resend,
//! answered from the stored ACK without being applied (see [`seq`]).
//!
//! Two workloads, each on a fresh store: the attendings drawn in turn from a staff of
//! `--staff` per sending facility (as a hospital's feed names its own physicians), and
//! a never-seen attending in every A08 (each message adds a Practitioner at a random
//! place in every index it is in: the store grows by one per message, and the rate
//! falls as it does). Each row also prints its A08s per second of the run, second by
//! second, which shows that fall.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

use super::{pct, peak_rss_kb, pg_reset_schema, pg_url_with_schema, Server, DEFAULT_POSTGRES_URL};
use crate::hl7::codec::MllpCodec;
use crate::hl7::send::{ack_code, Client};

#[derive(clap::Args, Debug, Clone)]
pub struct Hl7Args {
    /// Seconds of load per row of the table.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Connections to try.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub connections: Vec<usize>,
    /// Visits each connection cycles through.
    #[arg(long, default_value_t = 50)]
    pub visits: usize,
    /// PostgreSQL to measure (a schema is created for the run); "none" to skip.
    #[arg(long, default_value = DEFAULT_POSTGRES_URL)]
    pub postgres_url: String,
    /// Attendings per sending facility that the first workload's A08s name in turn
    /// (the second names a new one in every message); 0 leaves the first out. A
    /// visit's A08s are `--visits` messages apart, so a staff that divides `--visits`
    /// would name the same attending again (an A08 that changes nothing).
    #[arg(long, default_value_t = 300)]
    pub staff: usize,
    /// The stores to measure, of sqlite and postgres (the echo ceiling always runs).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres", value_parser = ["sqlite", "postgres"])]
    pub stores: Vec<String>,
}

struct Row {
    what: String,
    connections: usize,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    refused: usize,
    rss_mb: Option<f64>,
}

/// Who attends in the A08s of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attending {
    /// One of a staff of this many, in turn.
    Staff(usize),
    /// A practitioner never named before, in every message.
    New,
}

impl Attending {
    fn label(self) -> String {
        match self {
            Attending::Staff(n) => format!("staff of {n}"),
            Attending::New => "a new attending each".into(),
        }
    }

    /// The attending's number in the `n`th message (`seq`: its unique sequence).
    fn of(self, n: usize, seq: usize) -> usize {
        match self {
            Attending::Staff(staff) => n % staff,
            Attending::New => seq,
        }
    }
}

/// An ADT message for connection `c`, visit `v`, control id sequence `n`, naming
/// attending `att`.
pub fn message(event: &str, c: usize, v: usize, n: usize, att: usize) -> String {
    format!(
        "MSH|^~\\&|BENCH|HOSP{c}|HANDOFF|HANDOFF|20261123083000||ADT^{event}|B{c}-{v}-{n}|P|2.5.1\r\
         EVN|{event}|20261123083000\r\
         PID|1||MRN{c}x{v}^^^HOSP^MR||DOE^JANE||19650412|F\r\
         PD1|||CLINIC|GP{c}^SMITH^ALICE^^^DR^^^NPI\r\
         PV1|1|I|4WEST^401^A^HOSP||||ATT{att}^JONES^ROBERT^^^DR||||||||||||V{c}x{v}^^^HOSP^VN|||||||||||||||||||||||||20261123080000\r"
    )
}

pub async fn run(args: Hl7Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("handoff-bench-hl7-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "handoff bench hl7: {} s per row, connections {:?}, {} visits per connection, A08 closed loop",
        args.seconds, args.connections, args.visits
    );
    let mut rows = Vec::new();
    for &c in &args.connections {
        rows.push(echo_ceiling(c, &args).await?);
    }
    let measured = |store: &str| args.stores.iter().any(|s| s == store);
    let mut workloads = vec![Attending::New];
    if args.staff > 0 {
        workloads.insert(0, Attending::Staff(args.staff));
    }
    for (w, &attending) in workloads.iter().enumerate() {
        if measured("sqlite") {
            let url = format!("sqlite:{}", dir.join(format!("bench-{w}.db")).display());
            rows.extend(measure_store("sqlite", &url, &args, attending).await?);
        }
        if measured("postgres") && args.postgres_url != "none" {
            let schema = format!("bench_hl7_{}", std::process::id());
            let url = pg_url_with_schema(&args.postgres_url, &schema);
            match measure_store("postgres", &url, &args, attending).await {
                Ok(r) => rows.extend(r),
                Err(e) => println!("postgres: not measured ({e:#})"),
            }
        }
    }
    println!();
    println!("| target | connections | A08 ACKed/s | x ceiling | p50 ms | p99 ms | not AA | server peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let ceiling = rows
            .iter()
            .find(|x| x.what.starts_with("ceiling") && x.connections == r.connections)
            .map(|x| x.rate)
            .unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.what,
            r.connections,
            r.rate,
            r.rate / ceiling,
            r.p50_ms,
            r.p99_ms,
            r.refused,
            r.rss_mb.map(|m| format!("{m:.0}")).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn measure_store(
    name: &str,
    db_url: &str,
    args: &Hl7Args,
    attending: Attending,
) -> anyhow::Result<Vec<Row>> {
    let schema = db_url.rsplit("%3D").next().unwrap_or("public").to_owned();
    if name == "postgres" {
        pg_reset_schema(&args.postgres_url, &schema, true).await?;
    }
    let http = reqwest::Client::new();
    let server = Server::start(db_url, &[], &http).await?;
    let mut rows = Vec::new();
    for (row, &c) in args.connections.iter().enumerate() {
        // Admit every visit first (not timed), then a short warm-up. Each of a row's
        // three phases has its own round, so no control id of an earlier row recurs.
        let round = 3 * row;
        admit(&server.mllp, c, args.visits, round).await?;
        let phase = |length, round| Load {
            addr: &server.mllp,
            connections: c,
            visits: args.visits,
            length,
            round,
            attending,
        };
        phase(Duration::from_secs(1), round + 1).run().await?;
        let done = phase(Duration::from_secs(args.seconds), round + 2)
            .run()
            .await?;
        let what = format!("{name}, {}", attending.label());
        println!(
            "{what} x{c}: {} A08 ACKed, {} not AA",
            done.ok, done.refused
        );
        println!("  A08s ACKed in each second: {:?}", done.per_second);
        let rss_mb = peak_rss_kb(server.pid).map(|k| k as f64 / 1024.0);
        rows.push(done.into_row(what, c, rss_mb));
    }
    server.stop().await;
    if name == "postgres" {
        pg_reset_schema(&args.postgres_url, &schema, false).await?;
    }
    Ok(rows)
}

/// The sequence number of the `n`th message of `round`: distinct for every (round, n)
/// with n below 10,000,000, so no control id (`B{c}-{v}-{seq}`) repeats in a run.
fn seq(round: usize, n: usize) -> usize {
    round * 10_000_000 + n
}

async fn admit(addr: &str, connections: usize, visits: usize, round: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addr.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await?;
            for v in 0..visits {
                let ack = client
                    .send(message("A01", c, v, seq(round, 0), 0).as_bytes())
                    .await?;
                if ack_code(&ack) != Some("AA") {
                    anyhow::bail!("the admission was not accepted: {ack}");
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// One closed-loop phase of a row.
struct Load<'a> {
    addr: &'a str,
    connections: usize,
    visits: usize,
    length: Duration,
    round: usize,
    attending: Attending,
}

/// What a phase did.
struct Done {
    ok: usize,
    refused: usize,
    /// ACK latencies in µs.
    latencies: Vec<u64>,
    elapsed: Duration,
    /// AAs in each whole second of the phase.
    per_second: Vec<usize>,
}

impl Done {
    /// The table's row for this phase.
    fn into_row(mut self, what: String, connections: usize, rss_mb: Option<f64>) -> Row {
        self.latencies.sort_unstable();
        Row {
            what,
            connections,
            rate: self.ok as f64 / self.elapsed.as_secs_f64(),
            p50_ms: pct(&self.latencies, 0.50) as f64 / 1000.0,
            p99_ms: pct(&self.latencies, 0.99) as f64 / 1000.0,
            refused: self.refused,
            rss_mb,
        }
    }
}

impl Load<'_> {
    /// Closed loop for `length`: each connection sends an A08, waits for the ACK,
    /// sends the next.
    async fn run(&self) -> anyhow::Result<Done> {
        let start = Instant::now();
        let acked = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for c in 0..self.connections {
            let (addr, visits, length) = (self.addr.to_owned(), self.visits, self.length);
            let (round, attending, acked) = (self.round, self.attending, acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(&addr).await?;
                let (mut ok, mut refused, mut lat) = (0usize, 0usize, Vec::new());
                let mut n = 0usize;
                while start.elapsed() < length {
                    n += 1;
                    let seq = seq(round, n);
                    let msg = message("A08", c, n % visits, seq, attending.of(n, seq));
                    let t = Instant::now();
                    let ack = client.send(msg.as_bytes()).await?;
                    lat.push(t.elapsed().as_micros() as u64);
                    if ack_code(&ack) == Some("AA") {
                        ok += 1;
                        acked.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused += 1;
                    }
                }
                anyhow::Ok((ok, refused, lat))
            }));
        }
        let mut per_second = Vec::new();
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::from_std(start) + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let mut before = 0;
        while per_second.len() < self.length.as_secs() as usize {
            tick.tick().await;
            let now = acked.load(Ordering::Relaxed);
            per_second.push(now - before);
            before = now;
        }
        let (mut ok, mut refused, mut latencies) = (0, 0, Vec::new());
        for t in tasks {
            let (o, r, l) = t.await??;
            ok += o;
            refused += r;
            latencies.extend(l);
        }
        Ok(Done {
            ok,
            refused,
            latencies,
            elapsed: start.elapsed(),
            per_second,
        })
    }
}

/// The same client loop against a bare MLLP echo in this process.
async fn echo_ceiling(connections: usize, args: &Hl7Args) -> anyhow::Result<Row> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, MllpCodec::new(1 << 20));
                let ack = "MSH|^~\\&|HANDOFF|HANDOFF|BENCH|HOSP|20260101||ACK^A08^ACK|1|P|2.5.1\rMSA|AA|1\r";
                while let Some(Ok(_)) = framed.next().await {
                    if framed.send(ack.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let phase = |length, round| Load {
        addr: &addr,
        connections,
        visits: args.visits,
        length,
        round,
        attending: Attending::New,
    };
    phase(Duration::from_secs(1), 0).run().await?;
    let done = phase(Duration::from_secs(args.seconds), 1).run().await?;
    server.abort();
    Ok(done.into_row("ceiling: bare MLLP echo".into(), connections, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control_id(msg: &str) -> &str {
        msg.split('\r').next().unwrap().split('|').nth(9).unwrap()
    }

    /// The rows of a run (1 then 8 connections) never send a control id twice: the
    /// 8-connection row's first connection once resent every id of the 1-connection
    /// row, and resends are answered without being applied.
    #[test]
    fn no_control_id_repeats_across_rows_or_phases() {
        let mut seen = std::collections::HashSet::new();
        for (row, connections) in [1usize, 8].into_iter().enumerate() {
            for c in 0..connections {
                for v in 0..3 {
                    let m = message("A01", c, v, seq(3 * row, 0), 0);
                    assert!(seen.insert(control_id(&m).to_owned()));
                }
                for phase in 1..3 {
                    for n in 1..20 {
                        let m = message("A08", c, n % 3, seq(3 * row + phase, n), 0);
                        assert!(seen.insert(control_id(&m).to_owned()), "{}", control_id(&m));
                    }
                }
            }
        }
    }
}
