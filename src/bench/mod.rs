//! `handoff bench`: load benchmarks against the real server, run as a child process
//! (so its peak RSS is its own) on a fresh store, each beside a raw ceiling measured
//! in the same run.
//!
//! - [`create`] (the default): durable create throughput and latency.
//! - [`deliveries`] (`handoff bench deliveries`): discharge notifications fanned out to
//!   local subscribers, open loop at fractions of the measured saturation rate.
//! - [`hl7`] (`handoff bench hl7`): A08s ACKed per second over MLLP, beside a bare
//!   MLLP echo.

use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::ConnectOptions;

mod analysis;
pub mod create;
pub mod deliveries;
mod events;
pub mod hl7;
mod subscriber;

pub use create::CreateArgs;
pub use deliveries::DeliveryArgs;

/// PostgreSQL measured unless `--postgres-url none`.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Option<Which>,
    /// Without a subcommand: the create benchmark.
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Which {
    /// Discharge notifications to 1, 5, 20 local subscribers at 25/50/80% of
    /// saturation, open loop, beside a bare HTTP POST loop's ceiling (see README).
    Deliveries(DeliveryArgs),
    /// HL7 v2 A08s ACKed per second over 1 and 8 MLLP connections, p50/p99 ACK
    /// latency, beside a bare MLLP echo's ceiling (see README).
    Hl7(hl7::Hl7Args),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which {
        Some(Which::Deliveries(d)) => deliveries::run(d).await,
        Some(Which::Hl7(h)) => hl7::run(h).await,
        None => create::run(args.create).await,
    }
}

/// The gateway under test, a child process of the bench.
pub(crate) struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT` of its MLLP listener.
    pub mllp: String,
}

impl Server {
    /// `handoff serve` on a free port with `db_url` and `extra` flags; waits for /health.
    pub async fn start(
        db_url: &str,
        extra: &[&str],
        client: &reqwest::Client,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let exe = std::env::current_exe()?;
        let addr = format!("127.0.0.1:{port}");
        let mllp = format!("127.0.0.1:{}", free_port()?);
        let child = tokio::process::Command::new(exe)
            .args(["serve", "--http-addr", &addr, "--database-url", db_url])
            .args(["--mllp-addr", &mllp])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("HANDOFF_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server")?;
        let pid = child.id().context("server pid")?;
        let server = Server {
            child,
            pid,
            base: format!("http://{addr}"),
            mllp,
        };
        wait_ready(client, &server.base).await?;
        Ok(server)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The schema travels as a connection option the server passes to PostgreSQL.
pub(crate) fn pg_url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// Drop `schema` and, when `create`, make it again empty (before the server migrates).
pub(crate) async fn pg_reset_schema(url: &str, schema: &str, create: bool) -> anyhow::Result<()> {
    let mut c = sqlx::postgres::PgConnectOptions::from_str(url)?
        .connect()
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut c)
        .await?;
    if create {
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut c)
            .await?;
    }
    Ok(())
}

/// The value at quantile `p` of sorted `values` (0 when empty).
pub(crate) fn pct(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or(0)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the server did not become ready")
}

/// VmHWM: the process's peak resident set, from /proc (Linux).
pub(crate) fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
