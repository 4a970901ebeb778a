//! The delivery worker: claims due outbox rows, sends each as a signed notification
//! Bundle to its subscriber, and records what happened.
//!
//! It is woken by the store after every commit (rows are usually added by one), and
//! otherwise looks once a second (rows from another replica on the same PostgreSQL,
//! retries coming due). Claims are leases in the store (`outbox::claim`), so
//! several workers, in one process or many, never send one row at the same time;
//! each subscription's notifications go out one at a time, in order. A subscriber
//! with a backlog gets several events per notification (`outbox::claim`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{watch, Notify, Semaphore};

use super::bundle::{self, Content, EventItem, NotificationType, SubscriptionStatus};
use super::sign;
use super::ssrf::{self, EndpointPolicy};
use crate::fhir::format::{self, Format};
use crate::fhir::search::dates;
use crate::records::RecordKind;
use crate::store::outbox::{Attempt, Claimed, Next};
use crate::store::{OutboxOp, Store, WriteOp, WriteOutcome};
use crate::topics::subscription::{Channel, SubscriptionSpec};

/// The longest a notification request may take, whatever the subscription asks.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Deliveries in flight at once (across subscriptions).
    pub concurrency: usize,
    /// Waits before each retry; when they run out the row is dead-lettered.
    pub retry_schedule: Vec<Duration>,
    /// The most a subscriber's Retry-After may make us wait.
    pub max_retry_after: Duration,
    /// How long a claim lasts before another worker may take the row over.
    pub lease: Duration,
    /// Request timeout when the subscription names none.
    pub default_timeout: Duration,
    /// The most events one rest-hook notification carries (a backlog goes out in
    /// batches; the subscription's `max-count` lowers it).
    pub max_events: u32,
    pub policy: EndpointPolicy,
    /// `[base]` of this server as subscribers see it (`…/fhir`).
    pub base_url: String,
}

/// The HTTP client every notification goes out on: pooled keep-alive connections,
/// HTTP/2 where the subscriber offers it over TLS (ALPN), HTTP/1.1 otherwise; each
/// host name resolved through the endpoint policy; no redirects followed. `extra_roots`
/// are trusted beside the public web PKI (a hospital's own CA).
pub fn client(
    policy: &EndpointPolicy,
    extra_roots: &[reqwest::Certificate],
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
        .redirect(reqwest::redirect::Policy::none());
    for root in extra_roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder.build()
}

pub fn spawn(
    store: Arc<dyn Store>,
    signal: Arc<Notify>,
    client: reqwest::Client,
    settings: DeliverySettings,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let settings = Arc::new(settings);
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let mut last_heartbeat_check = Instant::now() - Duration::from_secs(1);
        loop {
            if *stop.borrow() {
                break;
            }
            if last_heartbeat_check.elapsed() >= Duration::from_secs(1) {
                last_heartbeat_check = Instant::now();
                queue_heartbeats(&*store).await;
            }
            let free = slots.available_permits() as i64;
            let claimed = if free == 0 {
                Vec::new()
            } else {
                claim(&*store, &settings, free).await
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = signal.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for c in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (store, client, settings) = (store.clone(), client.clone(), settings.clone());
                tokio::spawn(async move {
                    deliver(&*store, &client, &settings, c).await;
                    drop(permit);
                });
            }
        }
        // Let deliveries in flight finish (their leases would expire anyway).
        let _ = slots.acquire_many(settings.concurrency.max(1) as u32).await;
    })
}

/// Every host name the client connects to is resolved here and checked against the
/// endpoint policy, so a name that passed the check before the request cannot be
/// re-pointed at a private address for the connection itself (DNS rebinding). IP
/// literals are not resolved; `ssrf::check_endpoint` has judged those already.
struct PolicyResolver(EndpointPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let trusted = policy.allow_private
                || policy
                    .allow_hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&host));
            let allowed: Vec<_> = found
                .into_iter()
                .filter(|a| trusted || !ssrf::is_forbidden_ip(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err("the subscriber's host resolves only to forbidden addresses".into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

async fn queue_heartbeats(store: &dyn Store) {
    let op = OutboxOp::Heartbeats {
        now: dates::now_micros(),
    };
    match store.commit(vec![WriteOp::Outbox(op)]).await {
        Ok(mut out) => {
            if let Some(WriteOutcome::Queued(n)) = out.pop() {
                if n > 0 {
                    tracing::debug!(heartbeats = n, "heartbeats queued");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "queueing heartbeats failed"),
    }
}

async fn claim(store: &dyn Store, s: &DeliverySettings, limit: i64) -> Vec<Claimed> {
    let now = dates::now_micros();
    let op = OutboxOp::Claim {
        now,
        lease_until: now + s.lease.as_micros() as i64,
        limit,
        max_events: s.max_events,
    };
    match store.commit(vec![WriteOp::Outbox(op)]).await {
        Ok(mut out) => match out.pop() {
            Some(WriteOutcome::Claimed(rows)) => rows,
            _ => Vec::new(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "claiming deliveries failed");
            tokio::time::sleep(Duration::from_millis(200)).await;
            Vec::new()
        }
    }
}

async fn deliver(store: &dyn Store, client: &reqwest::Client, s: &DeliverySettings, c: Claimed) {
    let started = Instant::now();
    let at = dates::now_micros();
    let (result, http_status) = match attempt(store, client, s, &c).await {
        Ok(status) => (
            classify(&c, s, status.0, status.1.as_deref(), at),
            Some(status.0 as i64),
        ),
        Err(Failure::Retryable(e)) => (retry_or_dead(&c, s, at, None, e), None),
        Err(Failure::Final(e)) => ((Next::Dead(e.clone()), Some(e)), None),
    };
    let (next, error) = result;
    let attempt = Attempt {
        at,
        http_status,
        latency_us: started.elapsed().as_micros() as i64,
        error,
    };
    tracing::info!(
        subscription = %c.subscription_id, outbox = c.outbox_id, kind = %c.kind,
        events = 1 + c.more.len(), status = ?http_status, next = ?next, "delivery attempt"
    );
    let ledger = match crate::store::outbox::ledger(&c, &attempt, &next) {
        Ok(entries) => entries,
        Err(e) => {
            // Not recorded: the lease runs out and the row is tried again.
            tracing::error!(error = %e, outbox = c.outbox_id, "building the ledger entries failed");
            return;
        }
    };
    let op = OutboxOp::Finish {
        claimed: Box::new(c),
        attempt,
        next,
        ledger,
    };
    if let Err(e) = store.commit(vec![WriteOp::Outbox(op)]).await {
        // The lease runs out and the row is tried again: a duplicate, same webhook id.
        tracing::error!(error = %e, "recording a delivery failed");
    }
}

enum Failure {
    Retryable(String),
    Final(String),
}

/// Build, sign and send; the HTTP status and Retry-After when there was an answer.
async fn attempt(
    store: &dyn Store,
    client: &reqwest::Client,
    s: &DeliverySettings,
    c: &Claimed,
) -> Result<(u16, Option<String>), Failure> {
    let spec: SubscriptionSpec = serde_json::from_str(&c.spec)
        .map_err(|_| Failure::Final("the stored subscription is unreadable".into()))?;
    ssrf::check_endpoint(&spec.endpoint, &s.policy)
        .await
        .map_err(|e| Failure::Final(format!("endpoint refused: {e}")))?;
    let mut body = match spec.channel {
        Channel::RestHook => notification(store, s, c, &spec).await?,
        Channel::DaVinciMessage => davinci_message(store, s, c, &spec).await?,
    };
    // Minimum necessary: what consent withholds does not travel (decided at the claim,
    // event by event; in a notification of several events, what any of them withholds
    // is left out of the whole Bundle).
    for d in c.rows().into_iter().filter_map(|(_, d)| d) {
        super::withhold::apply(&mut body, &d.decision.excluded, &d.decision.reason);
    }
    // The payload type the subscriber asked for. XML rendering goes through the FHIR
    // model (large Bundles are rendered on the blocking pool).
    let format = if spec.wants_xml() {
        Format::Xml
    } else {
        Format::Json
    };
    let body = tokio::task::spawn_blocking(move || format::render(&body, format, false))
        .await
        .map_err(|_| Failure::Retryable("rendering was interrupted".into()))?
        .map_err(|e| Failure::Final(format!("the notification could not be rendered: {e}")))?;
    let secret = sign::decode_secret(&c.secret).unwrap_or_else(|| c.secret.as_bytes().to_vec());
    let signed = sign::sign(
        &secret,
        &c.webhook_id,
        dates::now_micros() / 1_000_000,
        &body,
    );
    let timeout = spec
        .timeout_secs
        .map(|t| Duration::from_secs(t.into()))
        .unwrap_or(s.default_timeout)
        .min(MAX_TIMEOUT);
    let mut req = client
        .post(spec.delivery_url())
        .timeout(timeout)
        .header("Content-Type", format.mime())
        .header(sign::HEADER_ID, &signed.id)
        .header(sign::HEADER_TIMESTAMP, signed.timestamp.to_string())
        .header(sign::HEADER_SIGNATURE, &signed.signature);
    for (name, value) in &spec.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    match req.body(body).send().await {
        Ok(resp) => {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((resp.status().as_u16(), retry_after))
        }
        Err(e) if e.is_timeout() => Err(Failure::Retryable("timed out".into())),
        Err(e) if e.is_connect() => Err(Failure::Retryable("could not connect".into())),
        Err(_) => Err(Failure::Retryable("the request failed".into())),
    }
}

/// What to do after an answer.
fn classify(
    c: &Claimed,
    s: &DeliverySettings,
    status: u16,
    retry_after: Option<&str>,
    at: i64,
) -> (Next, Option<String>) {
    match status {
        200..=299 => (Next::Delivered, None),
        408 | 429 | 500..=599 => {
            let wait = retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|secs| Duration::from_secs(secs).min(s.max_retry_after));
            retry_or_dead(c, s, at, wait, format!("HTTP {status}"))
        }
        other => {
            let e = format!("HTTP {other}: not retried");
            (Next::Dead(e.clone()), Some(e))
        }
    }
}

fn retry_or_dead(
    c: &Claimed,
    s: &DeliverySettings,
    at: i64,
    wait: Option<Duration>,
    error: String,
) -> (Next, Option<String>) {
    // A handshake is not retried: its failure puts the subscription in error.
    let n = c.attempts as usize;
    if c.kind == "handshake" || n >= s.retry_schedule.len() {
        let why = if c.kind == "handshake" {
            format!("handshake failed: {error}")
        } else {
            format!("gave up after {} attempts: {error}", n + 1)
        };
        return (Next::Dead(why), Some(error));
    }
    let base = wait.unwrap_or(s.retry_schedule[n]);
    (
        Next::RetryAt(at + with_jitter(base).as_micros() as i64),
        Some(error),
    )
}

/// ±20%, so that retries to a subscriber that came back do not arrive in one burst.
fn with_jitter(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 4001) as f64 / 10_000.0; // 0..0.4
    d.mul_f64(0.8 + r)
}

/// The notification Bundle for a claimed row.
async fn notification(
    store: &dyn Store,
    s: &DeliverySettings,
    c: &Claimed,
    spec: &SubscriptionSpec,
) -> Result<Value, Failure> {
    let content = Content::parse(&spec.content).unwrap_or(Content::IdOnly);
    let (kind, status, since, events) = match c.kind.as_str() {
        "handshake" => (
            NotificationType::Handshake,
            "requested",
            c.events_since_start,
            Vec::new(),
        ),
        "heartbeat" => (
            NotificationType::Heartbeat,
            c.status.as_str(),
            c.events_since_start,
            Vec::new(),
        ),
        _ => {
            let items = batch_items(store, c, content).await?;
            // The number of the last event it carries.
            let last = items.last().map_or(0, |i| i.number);
            (NotificationType::EventNotification, "active", last, items)
        }
    };
    let st = SubscriptionStatus {
        subscription_id: &c.subscription_id,
        topic: &c.topic,
        status,
        events_since_start: since,
        error: None,
    };
    Ok(bundle::notification_bundle(
        &s.base_url,
        &st,
        kind,
        content,
        &events,
    ))
}

/// A Da Vinci Unsolicited Notification message for an event row: the focus and its
/// context travel in full; the sender is the focus's serviceProvider or requester.
async fn davinci_message(
    store: &dyn Store,
    s: &DeliverySettings,
    c: &Claimed,
    spec: &SubscriptionSpec,
) -> Result<Value, Failure> {
    let code = spec
        .topic_def()
        .and_then(|t| t.davinci_event)
        .ok_or_else(|| Failure::Final("the topic has no Da Vinci event code".into()))?;
    if c.kind != "event-notification" {
        return Err(Failure::Final(format!(
            "no Da Vinci message for a {}",
            c.kind
        )));
    }
    let mut item = event_item(store, c.event_seq, c.event_number, Content::FullResource).await?;
    let focus = item.focus.as_deref().unwrap_or_default();
    let focus_body = item.resources.iter().find(|r| {
        format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        ) == focus
    });
    let sender = focus_body.and_then(|f| {
        f["serviceProvider"]["reference"]
            .as_str()
            .or_else(|| f["requester"]["reference"].as_str())
            .map(str::to_owned)
    });
    // The sender travels in the message when it is stored here.
    if let Some(sender) = &sender {
        let found = store
            .read_many(std::slice::from_ref(sender))
            .await
            .map_err(|e| Failure::Retryable(format!("reading the sender: {e}")))?;
        item.resources
            .extend(found.into_iter().filter_map(|r| r.json()));
    }
    let endpoint = spec.delivery_url();
    let ctx = super::davinci::MessageContext {
        base: &s.base_url,
        event_code: code,
        sender: sender.as_deref(),
        responsible: None,
        destination_endpoint: &endpoint,
        destination_receiver: None,
    };
    super::davinci::message_bundle(&ctx, &item)
        .map_err(|e| Failure::Final(format!("message not built: {e}")))
}

/// The events of an event notification, in order, read in one query: a batch's event
/// numbers lie in one range of its subscription's.
async fn batch_items(
    store: &dyn Store,
    c: &Claimed,
    content: Content,
) -> Result<Vec<EventItem>, Failure> {
    let head = c
        .event_seq
        .zip(c.event_number)
        .ok_or_else(|| Failure::Final("the row names no event".into()))?;
    let mut wanted = vec![head];
    for m in &c.more {
        let number = m
            .event_number
            .ok_or_else(|| Failure::Final("a row of the batch has no event number".into()))?;
        wanted.push((m.event_seq, number));
    }
    let numbers = wanted.iter().map(|w| w.1);
    let (from, to) = (
        numbers.clone().min().unwrap_or(0),
        numbers.max().unwrap_or(0),
    );
    let found = store
        .subscription_events(&c.subscription_id, from, to, to - from + 1)
        .await
        .map_err(|e| Failure::Retryable(format!("reading the events: {e}")))?;
    let mut items = Vec::with_capacity(wanted.len());
    for (seq, number) in wanted {
        let (_, event) = found
            .iter()
            .find(|(_, e)| e.seq == seq)
            .ok_or_else(|| Failure::Final("the event is gone".into()))?;
        let item = item_of(store, event, number, content)
            .await
            .map_err(|e| Failure::Retryable(format!("reading resources: {e}")))?;
        items.push(item);
    }
    Ok(items)
}

/// The event a row notifies of, with its focus, context and (for full-resource)
/// their current bodies.
async fn event_item(
    store: &dyn Store,
    seq: Option<i64>,
    number: Option<i64>,
    content: Content,
) -> Result<EventItem, Failure> {
    let seq = seq.ok_or_else(|| Failure::Final("the row names no event".into()))?;
    let number = number.unwrap_or(0);
    let event = store
        .event(seq)
        .await
        .map_err(|e| Failure::Retryable(format!("reading the event: {e}")))?
        .ok_or_else(|| Failure::Final("the event is gone".into()))?;
    item_of(store, &event, number, content)
        .await
        .map_err(|e| Failure::Retryable(format!("reading resources: {e}")))
}

/// Focus: the record's own resource; context: the patient and the resource version
/// that raised the event when it is another (a referral's Task).
pub async fn item_of(
    store: &dyn Store,
    event: &crate::store::EventRow,
    number: i64,
    content: Content,
) -> Result<EventItem, crate::store::StoreError> {
    let rtype = RecordKind::ALL
        .into_iter()
        .find(|k| k.as_str() == event.record_kind)
        .map(|k| k.resource_type())
        .or((event.record_kind == "handoff").then_some("Task"))
        .unwrap_or("Basic");
    let focus = format!("{rtype}/{}", event.record_id);
    let mut context = Vec::new();
    if let Some(p) = &event.patient {
        context.push(p.clone());
    }
    let raised_by = event
        .resource
        .split("/_history/")
        .next()
        .unwrap_or("")
        .to_owned();
    if !raised_by.is_empty() && raised_by != focus {
        context.push(raised_by);
    }
    let resources = if matches!(content, Content::FullResource) {
        let mut refs = vec![focus.clone()];
        refs.extend(context.iter().cloned());
        store
            .read_many(&refs)
            .await?
            .into_iter()
            .filter_map(|r| r.json())
            .collect()
    } else {
        Vec::new()
    };
    Ok(EventItem {
        number,
        timestamp: dates::format_instant(event.at),
        focus: Some(focus),
        context,
        resources,
    })
}
