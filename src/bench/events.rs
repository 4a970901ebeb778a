//! The events of `handoff bench deliveries`: discharges (a finished Encounter with its
//! end time, POSTed), offered open loop at a fixed rate or closed loop with a bounded
//! number of events not yet received everywhere. Every 201 is recorded with the time
//! it reached the load generator: the event's commit as the bench can see it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::subscriber::Subscriber;

/// What one phase's load generator did.
#[derive(Default)]
pub struct Phase {
    /// Encounter id -> when its 201 arrived.
    pub commits: Mutex<HashMap<String, Instant>>,
    /// POSTs started.
    pub issued: AtomicUsize,
    /// POSTs not answered 201 with a readable Location.
    pub errors: AtomicUsize,
    /// Microseconds from each POST to its 201.
    pub create_us: Mutex<Vec<u64>>,
}

impl Phase {
    pub fn committed(&self) -> usize {
        self.commits.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// A discharge: an inpatient Encounter created finished, with `period.end`.
pub fn discharge(seed: usize) -> Value {
    json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": format!("Patient/p{}", seed % 1000)},
        "period": {"start": "2026-11-20T08:00:00Z", "end": "2026-11-23T10:00:00Z"},
        "serviceProvider": {"reference": "Organization/general-hospital"},
        "location": [{"location": {"reference": "Location/ward-1"}}],
        "hospitalization": {"dischargeDisposition": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}]}},
        "participant": [
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
             "individual": {"reference": "Practitioner/hospitalist"}},
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0443", "code": "PP"}]}],
             "individual": {"reference": "Practitioner/pcp-1"}}]})
}

/// The id in a Location header `{base}/{rtype}/{id}/_history/{version}`.
pub fn id_from_location(location: &str, rtype: &str) -> Option<String> {
    let (_, rest) = location.rsplit_once(&format!("/{rtype}/"))?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// POST one discharge and record its commit (or an error).
async fn post(client: &reqwest::Client, url: &str, seed: usize, phase: &Phase) {
    phase.issued.fetch_add(1, Ordering::Relaxed);
    let t = Instant::now();
    let sent = client
        .post(url)
        .header("Content-Type", "application/fhir+json")
        .header("Prefer", "return=minimal")
        .body(discharge(seed).to_string())
        .send()
        .await;
    let at = Instant::now();
    let id = match sent {
        Ok(r) if r.status().as_u16() == 201 => r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| id_from_location(l, "Encounter")),
        _ => None,
    };
    match (id, phase.commits.lock()) {
        (Some(id), Ok(mut commits)) => {
            commits.insert(id, at);
            if let Ok(mut lat) = phase.create_us.lock() {
                lat.push((at - t).as_micros() as u64);
            }
        }
        _ => {
            phase.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Open loop: arrivals every `1/rate` s for `length`, each POSTed on its own task
/// without waiting for earlier ones (an arrival that falls behind the timer goes at
/// once). Returns when every POST has been answered; the arrival rate achieved.
pub async fn open_loop(
    client: &reqwest::Client,
    base: &str,
    rate: f64,
    length: Duration,
    seed: usize,
    phase: Arc<Phase>,
) -> f64 {
    let url = format!("{base}/fhir/Encounter");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0.. {
        let due = start + Duration::from_secs_f64(k as f64 / rate.max(0.1));
        if due >= start + length {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let (client, url, phase) = (client.clone(), url.clone(), phase.clone());
        tasks.push(tokio::spawn(async move {
            post(&client, &url, seed + k, &phase).await;
        }));
    }
    let issued = tasks.len() as f64 / start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    issued
}

/// Closed loop over the whole path: `clients` tasks POST as fast as they can while
/// fewer than `window` events are committed and not yet received by the slowest
/// subscriber; otherwise they wait. Runs for `length`.
pub async fn closed_loop(
    client: &reqwest::Client,
    base: &str,
    subs: &[Subscriber],
    window: usize,
    length: Duration,
    seed: usize,
    phase: Arc<Phase>,
) {
    let url = format!("{base}/fhir/Encounter");
    let deadline = Instant::now() + length;
    let clients = window.clamp(1, 8);
    let next = AtomicUsize::new(seed);
    let outstanding = || {
        let received = subs.iter().map(Subscriber::count).min().unwrap_or(0) as usize;
        let issued = phase.issued.load(Ordering::Relaxed);
        let live = issued.saturating_sub(phase.errors.load(Ordering::Relaxed));
        live.saturating_sub(received)
    };
    let (next, url, phase, outstanding) = (&next, &url, &phase, &outstanding);
    let task = move || async move {
        while Instant::now() < deadline {
            if outstanding() >= window {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            post(client, url, next.fetch_add(1, Ordering::Relaxed), phase).await;
        }
    };
    futures::future::join_all((0..clients).map(|_| task())).await;
}

/// Wait until every subscriber has received as many notifications as events were
/// committed, or none has arrived for `quiet` (the backlog is not moving), or a
/// minute has passed. Returns how long it took.
pub async fn drain(subs: &[Subscriber], phase: &Phase, quiet: Duration) -> Duration {
    let start = Instant::now();
    let want = phase.committed() as u64;
    let total = || subs.iter().map(Subscriber::count).sum::<u64>();
    let (mut seen, mut moved) = (total(), Instant::now());
    while subs.iter().any(|s| s.count() < want)
        && moved.elapsed() < quiet
        && start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if total() != seen {
            (seen, moved) = (total(), Instant::now());
        }
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_locations() {
        let l = "http://127.0.0.1:8080/fhir/Encounter/0190-ab/_history/1";
        assert_eq!(id_from_location(l, "Encounter").as_deref(), Some("0190-ab"));
        assert_eq!(id_from_location(l, "Subscription"), None);
        assert_eq!(
            id_from_location("http://x/fhir/Encounter/", "Encounter"),
            None
        );
    }
}
