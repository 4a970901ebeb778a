//! `handoff bench deliveries`: discharge notifications from the real server (a child
//! process, `--allow-private-subscribers`) to N local subscribers, each subscribed to
//! `encounter-end` (no filter, id-only, with a webhook secret).
//!
//! For each store and N: a closed-loop phase finds the saturation rate (events/s fully
//! delivered while at most `--window` events are outstanding); then open-loop phases
//! offer 25/50/80% of it. End-to-end latency per (subscriber, event) is the
//! subscriber's receipt minus the arrival of the create's 201 at the load generator.
//! Beside it, the ceiling: a bare reqwest keep-alive POST loop per subscriber, with a
//! notification-sized body, from this process to the same local servers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::analysis::{analyse, Measured};
use super::events::{self, Phase};
use super::subscriber::{self, Subscriber};
use super::{pg_reset_schema, pg_url_with_schema, Server, DEFAULT_POSTGRES_URL};

#[derive(clap::Args, Debug, Clone)]
pub struct DeliveryArgs {
    /// Seconds of open-loop load per row (and of each ceiling loop).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Numbers of subscribers to try.
    #[arg(long, value_delimiter = ',', default_value = "1,5,20")]
    pub subscribers: Vec<usize>,
    /// Offered loads, in percent of the saturation rate measured for each N.
    #[arg(long, value_delimiter = ',', default_value = "25,50,80")]
    pub loads: Vec<u32>,
    /// Seconds of the closed-loop saturation phase (after 1 s of warm-up).
    #[arg(long, default_value_t = 5)]
    pub saturation_seconds: u64,
    /// Events outstanding (POSTed, not yet received by every subscriber) in the closed loop.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// After a phase, wait for notifications still on their way until none has come
    /// for this many seconds (at most a minute); what has not come then is lost.
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u64,
    /// PostgreSQL to measure (a schema is created per N); "none" to skip.
    #[arg(long, default_value = DEFAULT_POSTGRES_URL)]
    pub postgres_url: String,
    /// The subscriptions' `backport-max-count` (most events per notification); unset:
    /// the server's `delivery_max_events`. 1 measures one event per notification.
    #[arg(long)]
    pub max_count: Option<u32>,
}

struct Row {
    store: String,
    n: usize,
    load: String,
    offered: f64,
    m: Measured,
}

pub async fn run(args: DeliveryArgs) -> anyhow::Result<()> {
    if args.subscribers.contains(&0)
        || args.loads.contains(&0)
        || args.seconds == 0
        || args.window == 0
    {
        bail!("--subscribers, --loads, --seconds and --window must be positive");
    }
    let dir = std::env::temp_dir().join(format!("handoff-dbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let max_n = args.subscribers.iter().copied().max().unwrap_or(1);
    let mut subs = Vec::with_capacity(max_n);
    for _ in 0..max_n {
        subs.push(Subscriber::start().await?);
    }
    let body = subscriber::sample_notification("http://127.0.0.1:40000/fhir");
    println!(
        "handoff bench deliveries: subscribers {:?}, loads {:?}% of saturation, {} s open loop per row, \
         notification body {} bytes (id-only)",
        args.subscribers, args.loads, args.seconds, body.len()
    );
    let mut ceilings = HashMap::new();
    for &n in &args.subscribers {
        let (rps, failed) =
            subscriber::ceiling(&subs[..n], body.clone(), Duration::from_secs(args.seconds)).await;
        println!("ceiling, {n} concurrent bare reqwest keep-alive POST loops: {rps:.0} requests/s ({failed} failed)");
        ceilings.insert(n, rps);
    }

    let mut rows = Vec::new();
    for &n in &args.subscribers {
        let url = format!(
            "sqlite:{}",
            dir.join(format!("deliveries-{n}.db")).display()
        );
        rows.extend(measure("sqlite", &url, &subs[..n], &args).await?);
    }
    if args.postgres_url != "none" {
        for &n in &args.subscribers {
            let schema = format!("dbench_{}_{n}", std::process::id());
            let url = pg_url_with_schema(&args.postgres_url, &schema);
            let measured = match pg_reset_schema(&args.postgres_url, &schema, true).await {
                Ok(()) => measure("postgres", &url, &subs[..n], &args).await,
                Err(e) => Err(e),
            };
            let _ = pg_reset_schema(&args.postgres_url, &schema, false).await;
            match measured {
                Ok(r) => rows.extend(r),
                Err(e) => {
                    println!("postgres: not measured ({e:#})");
                    break;
                }
            }
        }
    }
    for s in &subs {
        s.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    print_table(&rows, &ceilings, &args);
    Ok(())
}

/// A fresh server on `db_url`, `subs` subscribed; saturation, then each load.
async fn measure(
    store: &str,
    db_url: &str,
    subs: &[Subscriber],
    args: &DeliveryArgs,
) -> anyhow::Result<Vec<Row>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    // The benchmark measures delivery, not consent: its subscriptions name no
    // recipient, so the no-consent policy must permit (docs/consent.md).
    let server = Server::start(
        db_url,
        &["--allow-private-subscribers", "--consent-default", "permit"],
        &client,
    )
    .await?;
    let result = phases(store, &server.base, subs, args, &client).await;
    server.stop().await;
    result
}

async fn phases(
    store: &str,
    base: &str,
    subs: &[Subscriber],
    args: &DeliveryArgs,
    client: &reqwest::Client,
) -> anyhow::Result<Vec<Row>> {
    let n = subs.len();
    for s in subs {
        subscribe(client, base, &s.url, args.max_count).await?;
    }
    let drain = Duration::from_secs(args.drain_seconds);
    let row = |load: String, offered: f64, m: Measured| Row {
        store: store.to_owned(),
        n,
        load,
        offered,
        m,
    };

    // Saturation: closed loop; deliveries counted over the last `saturation_seconds`.
    take_all(subs);
    let phase = Arc::new(Phase::default());
    let length = Duration::from_secs(1 + args.saturation_seconds);
    let counting = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (t0, c0) = (Instant::now(), total(subs));
        tokio::time::sleep(Duration::from_secs(args.saturation_seconds)).await;
        (t0, Instant::now(), total(subs) - c0)
    };
    let ((t0, t1, delivered), ()) = tokio::join!(
        counting,
        events::closed_loop(client, base, subs, args.window, length, 0, phase.clone())
    );
    let drained = events::drain(subs, &phase, drain).await;
    let saturation = delivered as f64 / (t1 - t0).as_secs_f64() / n as f64;
    let m = analyse(&phase, take_all(subs), (t0, t1));
    println!(
        "{store} x{n} saturation: {saturation:.0} events/s, {} lost, drained in {:.1} s ({} early, {} stray)",
        m.lost,
        drained.as_secs_f64(),
        m.early,
        m.stray
    );
    if saturation < 1.0 {
        bail!("deliveries did not keep up at all ({delivered} in the saturation phase)");
    }
    let mut rows = vec![row(
        format!("saturation (closed loop, ≤{} outstanding)", args.window),
        saturation,
        m,
    )];

    for (i, &load) in args.loads.iter().enumerate() {
        let rate = saturation * f64::from(load) / 100.0;
        let phase = Arc::new(Phase::default());
        let length = Duration::from_secs(args.seconds);
        let start = Instant::now();
        let seed = (i + 1) * 10_000_000;
        let offered = events::open_loop(client, base, rate, length, seed, phase.clone()).await;
        let drained = events::drain(subs, &phase, drain).await;
        let m = analyse(&phase, take_all(subs), (start, start + length));
        println!(
            "{store} x{n} {load}%: {} events committed, {} lost, drained in {:.1} s ({} early, {} stray)",
            phase.committed(),
            m.lost,
            drained.as_secs_f64(),
            m.early,
            m.stray
        );
        rows.push(row(format!("{load}%"), offered, m));
    }
    Ok(rows)
}

fn take_all(subs: &[Subscriber]) -> Vec<Vec<(Instant, actix_web::web::Bytes)>> {
    subs.iter().map(Subscriber::take).collect()
}

fn total(subs: &[Subscriber]) -> u64 {
    subs.iter().map(Subscriber::count).sum()
}

/// Create the Subscription and wait (up to 15 s) for its handshake to make it active.
async fn subscribe(
    client: &reqwest::Client,
    base: &str,
    endpoint: &str,
    max_count: Option<u32>,
) -> anyhow::Result<()> {
    let mut body = json!({"resourceType": "Subscription", "status": "requested",
        "reason": "handoff bench deliveries", "criteria": "http://handoff.example.org/fhir/SubscriptionTopic/encounter-end",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
            "extension": [{"url": crate::store::outbox::SECRET_URL, "valueString": "bench-secret-0123456789abcdef"}],
            "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                "valueCode": "id-only"}]}}});
    if let Some(n) = max_count {
        let ext = json!({"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count",
            "valuePositiveInt": n});
        if let Some(list) = body["channel"]["extension"].as_array_mut() {
            list.push(ext);
        }
    }
    let resp = client
        .post(format!("{base}/fhir/Subscription"))
        .header("Content-Type", "application/fhir+json")
        .header("Prefer", "return=minimal")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let id = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| events::id_from_location(l, "Subscription"));
    let Some(id) = id.filter(|_| status.as_u16() == 201) else {
        bail!(
            "creating a Subscription: HTTP {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        let r = client
            .get(format!("{base}/fhir/Subscription/{id}"))
            .send()
            .await?;
        let s: serde_json::Value = r.json().await.context("reading a Subscription")?;
        match s["status"].as_str() {
            Some("active") => return Ok(()),
            Some("error") => bail!("Subscription/{id} went to error: {}", s["error"]),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    bail!("Subscription/{id} did not become active in 15 s")
}

fn print_table(rows: &[Row], ceilings: &HashMap<usize, f64>, args: &DeliveryArgs) {
    println!();
    println!("| store | subscribers | load | offered events/s | deliveries/s | x ceiling | notifications/s | events per notification | e2e p50 ms | e2e p99 ms | create p99 ms | lost events | duplicates | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ceiling = ceilings.get(&r.n).copied().unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            r.store,
            r.n,
            r.load,
            r.offered,
            r.m.deliveries_per_s,
            r.m.deliveries_per_s / ceiling,
            r.m.notifications_per_s,
            r.m.deliveries_per_s / r.m.notifications_per_s.max(f64::MIN_POSITIVE),
            r.m.p50_ms,
            r.m.p99_ms,
            r.m.create_p99_ms,
            r.m.lost,
            r.m.duplicates,
            r.m.errors
        );
    }
    let mut ns: Vec<_> = ceilings.keys().copied().collect();
    ns.sort_unstable();
    for n in ns {
        println!(
            "| ceiling: bare reqwest POST loops | {n} | | | {:.0} | 1.00 | {:.0} | | | | | | | |",
            ceilings[&n], ceilings[&n]
        );
    }
    println!();
    println!("offered events/s: discharges POSTed per second. Open loop (the % rows): arrivals on a timer at that");
    println!("  share of the saturation rate, not waiting for answers. Saturation row: a closed loop keeping at most");
    println!("  {} events POSTed but not yet received by every subscriber; its figure is the rate fully delivered.", args.window);
    println!("deliveries/s: events received by all subscribers together, per second of the phase; a notification");
    println!("  carries several when a subscriber has a backlog (notifications/s: the requests that carried them).");
    println!("x ceiling: deliveries/s / requests/s of N bare reqwest keep-alive POST loops (one per subscriber, the");
    println!(
        "  worker's in-flight limit), same body size, from this process to the same local servers."
    );
    println!("e2e: subscriber receipt - arrival of the event's 201 at the load generator, per (subscriber, event);");
    println!("  a receipt before its 201 counts as 0 ms. create p99: POST to 201 of the events (e2e starts at the 201).");
    println!("lost: events answered 201 but not received by every subscriber once the backlog stopped moving");
    println!("  ({} s without a notification, at most 60 s after the phase). duplicates: an event number received", args.drain_seconds);
    println!("  twice by one subscriber.");
    println!("errors: creates not answered 201, and notifications the bench could not read.");
}
