//! What one phase of `handoff bench deliveries` measured, read from the load
//! generator's commits and the subscribers' recordings.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::web::Bytes;

use super::events::Phase;
use super::pct;
use super::subscriber::{self, Parsed};

/// One phase, read from the recordings.
#[derive(Default)]
pub struct Measured {
    /// Events received, all subscribers together, per second.
    pub deliveries_per_s: f64,
    /// Notification requests received (each carries one or more events) per second.
    pub notifications_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// POST to 201 of the events, p99.
    pub create_p99_ms: f64,
    pub lost: usize,
    pub duplicates: usize,
    pub errors: usize,
    /// Receipts before the 201 reached the generator (latency counted as 0).
    pub early: usize,
    /// Receipts of events this phase did not commit (left over from an earlier one).
    pub stray: usize,
}

/// Latencies, losses and duplicates of one phase; deliveries/s over `window`.
pub fn analyse(
    phase: &Phase,
    hits: Vec<Vec<(Instant, Bytes)>>,
    window: (Instant, Instant),
) -> Measured {
    let commits = phase.commits.lock().map(|c| c.clone()).unwrap_or_default();
    let mut m = Measured {
        errors: phase.errors.load(Ordering::Relaxed),
        ..Measured::default()
    };
    let (mut latencies, mut in_window, mut requests) = (Vec::new(), 0usize, 0usize);
    let mut missing: HashSet<&String> = HashSet::new();
    for sub in &hits {
        let (mut numbers, mut got) = (HashSet::new(), HashSet::new());
        for (at, body) in sub {
            let events = match subscriber::parse(body) {
                Parsed::Events(events) => events,
                Parsed::Other => continue,
                Parsed::Unreadable => {
                    m.errors += 1;
                    continue;
                }
            };
            if (window.0..=window.1).contains(at) {
                requests += 1;
            }
            for (number, encounter) in events {
                if !numbers.insert(number) {
                    m.duplicates += 1;
                    continue;
                }
                if (window.0..=window.1).contains(at) {
                    in_window += 1;
                }
                let Some(committed) = commits.get(&encounter) else {
                    m.stray += 1;
                    continue;
                };
                if at < committed {
                    m.early += 1;
                }
                latencies.push(at.saturating_duration_since(*committed).as_micros() as u64);
                got.insert(encounter);
            }
        }
        missing.extend(commits.keys().filter(|id| !got.contains(*id)));
    }
    latencies.sort_unstable();
    let mut creates = phase
        .create_us
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    creates.sort_unstable();
    m.create_p99_ms = pct(&creates, 0.99) as f64 / 1000.0;
    m.lost = missing.len();
    m.p50_ms = pct(&latencies, 0.50) as f64 / 1000.0;
    m.p99_ms = pct(&latencies, 0.99) as f64 / 1000.0;
    let seconds = (window.1 - window.0).as_secs_f64();
    m.deliveries_per_s = in_window as f64 / seconds;
    m.notifications_per_s = requests as f64 / seconds;
    m
}
