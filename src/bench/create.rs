//! `handoff bench` (the default): durable create throughput of the real server, beside
//! the raw ceiling of the disk measured in the same run.
//!
//! The server runs as a child process (so its peak RSS is its own), on a fresh SQLite
//! file and, when reachable, a fresh PostgreSQL schema. Closed-loop clients POST
//! 4-8 KB ServiceRequests for a fixed time at each concurrency. The ceiling is the
//! same rows inserted straight into SQLite (WAL, synchronous=FULL) one transaction
//! each: what the disk allows without group commit.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{pct, peak_rss_kb, pg_reset_schema, pg_url_with_schema, Server, DEFAULT_POSTGRES_URL};

#[derive(clap::Args, Debug, Clone)]
pub struct CreateArgs {
    /// Seconds of load per row of the table.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent clients to try.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub clients: Vec<usize>,
    /// PostgreSQL to measure (a schema is created for the run); "none" to skip.
    #[arg(long, default_value = DEFAULT_POSTGRES_URL)]
    pub postgres_url: String,
}

struct Row {
    store: String,
    clients: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    rss_mb: f64,
}

pub async fn run(args: CreateArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("handoff-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "handoff bench: {} s per row, clients {:?}, bodies 4-8 KB ServiceRequests",
        args.seconds, args.clients
    );

    let ceiling =
        raw_sqlite_ceiling(&dir.join("ceiling.db"), Duration::from_secs(args.seconds)).await?;
    println!(
        "ceiling (raw SQLite insert, one transaction each, synchronous=FULL): {ceiling:.0} rows/s"
    );

    let mut rows = Vec::new();
    let sqlite_url = format!("sqlite:{}", dir.join("bench.db").display());
    rows.extend(measure_store("sqlite", &sqlite_url, &[], &args).await?);
    if args.postgres_url != "none" {
        let schema = format!("bench_{}", std::process::id());
        match measure_store(
            "postgres",
            &pg_url_with_schema(&args.postgres_url, &schema),
            &[],
            &args,
        )
        .await
        {
            Ok(r) => rows.extend(r),
            Err(e) => println!("postgres: not measured ({e:#})"),
        }
    }
    println!();
    println!("| store | clients | creates/s | x ceiling | p50 ms | p99 ms | errors | server peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {} | {:.0} |",
            r.store,
            r.clients,
            r.rps,
            r.rps / ceiling,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.rss_mb
        );
    }
    println!("| raw SQLite ceiling | 1 | {ceiling:.0} | 1.00 | | | | |");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn measure_store(
    name: &str,
    db_url: &str,
    extra: &[&str],
    args: &CreateArgs,
) -> anyhow::Result<Vec<Row>> {
    let schema = db_url.rsplit("%3D").next().unwrap_or("public").to_owned();
    if name == "postgres" {
        // Create the schema named in the URL's search_path before the server migrates.
        pg_reset_schema(&args.postgres_url, &schema, true).await?;
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let server = Server::start(db_url, extra, &client).await?;
    let (base, pid) = (server.base.clone(), server.pid);

    let mut rows = Vec::new();
    for &clients in &args.clients {
        // Warm up the connections and caches, then measure.
        load(&client, &base, clients, Duration::from_secs(1)).await;
        let (n, errors, mut lat, elapsed) =
            load(&client, &base, clients, Duration::from_secs(args.seconds)).await;
        lat.sort_unstable();
        rows.push(Row {
            store: name.to_owned(),
            clients,
            rps: n as f64 / elapsed.as_secs_f64(),
            p50_ms: pct(&lat, 0.50) as f64 / 1000.0,
            p99_ms: pct(&lat, 0.99) as f64 / 1000.0,
            errors,
            rss_mb: peak_rss_kb(pid).unwrap_or(0) as f64 / 1024.0,
        });
        println!("{name} x{clients}: {} creates, {errors} errors", n);
    }
    server.stop().await;
    if name == "postgres" {
        pg_reset_schema(&args.postgres_url, &schema, false).await?;
    }
    Ok(rows)
}

/// Closed loop: `clients` tasks each POST, wait for the answer, POST again.
async fn load(
    client: &reqwest::Client,
    base: &str,
    clients: usize,
    length: Duration,
) -> (usize, usize, Vec<u64>, Duration) {
    let start = Instant::now();
    let deadline = start + length;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let url = format!("{base}/fhir/ServiceRequest");
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut lat) = (0usize, 0usize, Vec::with_capacity(4096));
            let mut i = 0usize;
            while Instant::now() < deadline {
                let body = service_request(c * 1_000_000 + i).to_string();
                i += 1;
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/fhir+json")
                    .header("Prefer", "return=minimal")
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().as_u16() == 201 => {
                        ok += 1;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (ok, errors, lat)
        }));
    }
    let (mut n, mut errors, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        if let Ok((o, e, l)) = t.await {
            n += o;
            errors += e;
            lat.extend(l);
        }
    }
    (n, errors, lat, start.elapsed())
}

async fn raw_sqlite_ceiling(path: &std::path::Path, length: Duration) -> anyhow::Result<f64> {
    // The most direct path there is: rusqlite in-process, prepared statement, bodies
    // made in advance, one durable transaction per row. Nothing but SQLite and fsync.
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS r (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
        )?;
        let bodies: Vec<String> = (0..64).map(|n| service_request(n).to_string()).collect();
        let mut insert = conn.prepare("INSERT INTO r (id, body) VALUES (?1, ?2)")?;
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed() < length {
            conn.execute_batch("BEGIN")?;
            insert.execute(rusqlite::params![
                format!("sr-{n}"),
                bodies[n % bodies.len()]
            ])?;
            conn.execute_batch("COMMIT")?;
            n += 1;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    })
    .await?
}

/// A referral ServiceRequest of 4-8 KB: structured fields plus clinical notes.
pub fn service_request(seed: usize) -> Value {
    let note_len = 3000 + (seed * 7919) % 4000;
    let text: String = "Patient reports exertional chest pain; prior ECG and troponin attached. "
        .chars()
        .cycle()
        .take(note_len)
        .collect();
    json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.72.5.9.1", "value": format!("REF-{seed}")}],
        "status": "active",
        "intent": "order",
        "priority": "routine",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "183519002", "display": "Referral to cardiology service"}]},
        "subject": {"reference": format!("Patient/p{}", seed % 1000)},
        "authoredOn": "2026-11-20T10:15:00Z",
        "requester": {"reference": "Practitioner/pcp-1"},
        "performer": [{"reference": "Organization/cardiology"}],
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "29857009", "display": "Chest pain"}]}],
        "supportingInfo": [{"reference": "DiagnosticReport/ecg-1"}, {"reference": "Observation/troponin-1"}],
        "note": [{"text": text}]
    })
}
