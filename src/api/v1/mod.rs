//! The internal API, `/api/v1`: coordination records in plain JSON for in-house
//! systems that do not speak FHIR. Documented by `openapi.json` (served at
//! `/api/v1/openapi.json`); errors are problem details (`problem.rs`); writes go through
//! FHIR resources (`write.rs`).

pub mod audit;
pub mod problem;
pub mod worklist;
pub mod write;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::api::context::{parse_query, read_body};
use crate::fhir::search::params::normalize_reference;
use crate::records::{Record, RecordKind};
use crate::startup::AppState;
use crate::store::{EventCursor, EventQuery, OutboxOp, RecordQuery, WriteOp, WriteOutcome};
use problem::Problem;

type State = web::Data<AppState>;

pub const OPENAPI: &str = include_str!("openapi.json");
const MAX_LIMIT: usize = 500;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/openapi.json", web::get().to(openapi))
            .route("/events", web::get().to(events))
            .route("/worklist", web::get().to(worklist::worklist))
            .route("/sweep", web::post().to(worklist::sweep))
            .route("/subscriptions/{id}/deliveries", web::get().to(deliveries))
            .route("/subscriptions/{id}/replay", web::post().to(replay_one))
            .route("/subscriptions/replay", web::post().to(replay_all))
            .route("/{kind}", web::get().to(list))
            .route("/{kind}", web::post().to(create))
            .route("/{kind}/{id}", web::get().to(get))
            .route("/{kind}/{id}", web::patch().to(patch))
            .default_service(web::to(|req: HttpRequest| async move {
                Problem::not_found(format!("No endpoint for {} {}", req.method(), req.path()))
                    .response()
            })),
    );
}

fn finish(r: Result<HttpResponse, Problem>) -> HttpResponse {
    r.unwrap_or_else(|p| p.response())
}

fn kind_of(segment: &str) -> Result<RecordKind, Problem> {
    RecordKind::from_path(segment).ok_or_else(|| {
        Problem::not_found(format!(
            "No record kind '{segment}': use referrals, transitions, care-plans or consents"
        ))
    })
}

fn json_of(body: &[u8]) -> Result<Value, Problem> {
    if body.is_empty() {
        return Err(Problem::bad_request("The request has no body"));
    }
    serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request(format!("The body is not JSON: {e}")))
}

/// Parse the API's JSON as a record of `kind`, and check it.
fn record_of(kind: RecordKind, v: Value) -> Result<Record, Problem> {
    let record = Record::from_api(kind, v).map_err(|e| {
        Problem::bad_request(format!("The body is not a {} record: {e}", kind.as_str()))
    })?;
    let problems = record.check();
    if !problems.is_empty() {
        return Err(Problem::unprocessable(
            format!("The {} record is not acceptable", kind.as_str()),
            problems,
        ));
    }
    Ok(record)
}

fn usize_param(name: &str, v: &str, max: usize) -> Result<usize, Problem> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| Problem::bad_request(format!("{name} must be a whole number up to {max}")))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

async fn stored_record(state: &AppState, kind: RecordKind, id: &str) -> Result<Value, Problem> {
    let body = state
        .store
        .record(kind, id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("No {} record {id}", kind.as_str())))?;
    serde_json::from_str(&body).map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "A stored record is unreadable",
        )
    })
}

async fn list(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    finish(
        async {
            let kind = kind_of(&path)?;
            let mut q = RecordQuery {
                kind,
                patient: None,
                status: None,
                limit: 50,
                offset: 0,
            };
            for (k, v) in parse_query(req.query_string()) {
                match k.as_str() {
                    "patient" => q.patient = Some(v),
                    "status" if kind.statuses().contains(&v.as_str()) => q.status = Some(v),
                    "status" => {
                        return Err(Problem::bad_request(format!(
                            "status '{v}' is not a {} status ({})",
                            kind.as_str(),
                            kind.statuses().join(", ")
                        )))
                    }
                    "limit" => q.limit = usize_param("limit", &v, MAX_LIMIT)?,
                    "offset" => q.offset = usize_param("offset", &v, usize::MAX)?,
                    other => {
                        return Err(Problem::bad_request(format!(
                            "Unknown parameter '{other}': use patient, status, limit, offset"
                        )))
                    }
                }
            }
            let (bodies, total) = state.store.records(&q).await?;
            let items: Vec<Value> = bodies
                .iter()
                .filter_map(|b| serde_json::from_str(b).ok())
                .collect();
            let seen = items.iter().map(|r| audit::of_record(kind, r));
            audit::uses(&req, &state, "search-type", seen).await?;
            Ok(HttpResponse::Ok().json(json!({"total": total, "items": items})))
        }
        .await,
    )
}

async fn get(req: HttpRequest, path: web::Path<(String, String)>, state: State) -> HttpResponse {
    finish(
        async {
            let (kind, id) = path.into_inner();
            let kind = kind_of(&kind)?;
            let record = stored_record(&state, kind, &id).await?;
            audit::uses(&req, &state, "read", [audit::of_record(kind, &record)]).await?;
            Ok(HttpResponse::Ok().json(record))
        }
        .await,
    )
}

async fn create(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    finish(
        async {
            let kind = kind_of(&path)?;
            let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
            let v = json_of(&body)?;
            for server_field in ["id", "sources", "task"] {
                if v.get(server_field).is_some() {
                    return Err(Problem::bad_request(format!(
                        "'{server_field}' is set by the server; leave it out"
                    )));
                }
            }
            let record = record_of(kind, v)?;
            let ops = write::create_ops(&record)?;
            let outcomes = state.store.commit(ops).await?;
            let id = match outcomes.first() {
                Some(WriteOutcome::Created(s)) => s.id.clone(),
                _ => {
                    return Err(Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Nothing was created",
                    ))
                }
            };
            tracing::info!(kind = kind.as_str(), id = %id, "record created");
            let stored = stored_record(&state, kind, &id).await?;
            Ok(HttpResponse::Created()
                .insert_header(("Location", format!("/api/v1/{path}/{id}")))
                .json(stored))
        }
        .await,
    )
}

/// JSON merge patch (RFC 7396) of a record: typically `{"status": "accepted"}`.
async fn patch(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    finish(
        async {
            let (segment, id) = path.into_inner();
            let kind = kind_of(&segment)?;
            let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
            let patch = json_of(&body)?;
            if !patch.is_object() {
                return Err(Problem::bad_request(
                    "The body must be a JSON object (a merge patch)",
                ));
            }
            let current = stored_record(&state, kind, &id).await?;
            let mut merged = current.clone();
            write::merge_patch(&mut merged, &patch);
            for server_field in ["id", "sources", "task"] {
                if merged.get(server_field) != current.get(server_field) {
                    return Err(Problem::bad_request(format!(
                        "'{server_field}' is set by the server and cannot be changed"
                    )));
                }
            }
            let record = record_of(kind, merged)?;
            let ops = write::update_ops(&state, &id, &record).await?;
            state.store.commit(ops).await?;
            tracing::info!(kind = kind.as_str(), id = %id, "record updated");
            Ok(HttpResponse::Ok().json(stored_record(&state, kind, &id).await?))
        }
        .await,
    )
}

/// How long a read of the event log waits for PostgreSQL transactions still running
/// that hold later events back (see `store::events`): they take milliseconds, so a
/// client that wrote and then reads sees its event; past this the page ends early and
/// `next` stays before the held-back events.
const HELD_BACK_WAIT: Duration = Duration::from_secs(2);

async fn events(req: HttpRequest, state: State) -> HttpResponse {
    finish(
        async {
            let mut q = EventQuery {
                after: EventCursor::default(),
                record: None,
                limit: 100,
            };
            let (mut kind, mut id) = (None, None);
            for (k, v) in parse_query(req.query_string()) {
                match k.as_str() {
                    "since" => {
                        q.after = EventCursor::parse(&v).ok_or_else(|| {
                            Problem::bad_request(
                                "since must be the next of an earlier page, or an event seq",
                            )
                        })?
                    }
                    "limit" => q.limit = usize_param("limit", &v, MAX_LIMIT)?,
                    "kind" => kind = Some(kind_of(&v)?),
                    "id" => id = Some(v),
                    other => {
                        return Err(Problem::bad_request(format!(
                            "Unknown parameter '{other}': use since, limit, kind, id"
                        )))
                    }
                }
            }
            match (kind, id) {
                (Some(k), Some(i)) => q.record = Some((k, i)),
                (None, None) => {}
                _ => return Err(Problem::bad_request("kind and id go together")),
            }
            let deadline = Instant::now() + HELD_BACK_WAIT;
            let page = loop {
                let page = state.store.events(&q).await?;
                if !page.held_back || Instant::now() >= deadline {
                    break page;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let seen = page.items.iter().map(|e| {
                let what = normalize_reference(&e.resource).unwrap_or_else(|| e.resource.clone());
                (e.patient.clone(), what)
            });
            audit::uses(&req, &state, "search-type", seen).await?;
            let next = page.items.last().map_or(q.after, |e| e.cursor());
            Ok(HttpResponse::Ok().json(json!({
                "items": page.items,
                "next": next.to_string(),
            })))
        }
        .await,
    )
}

/// A subscription's notifications (state, attempts, last error) and its delivery
/// attempts, newest first.
async fn deliveries(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    finish(
        async {
            let id = path.into_inner();
            let mut limit = 100;
            for (k, v) in parse_query(req.query_string()) {
                match k.as_str() {
                    "limit" => limit = usize_param("limit", &v, MAX_LIMIT)?,
                    other => {
                        return Err(Problem::bad_request(format!(
                            "Unknown parameter '{other}': use limit"
                        )))
                    }
                }
            }
            if state.store.subscription_states(Some(&id)).await?.is_empty() {
                return Err(Problem::not_found(format!("No subscription {id}")));
            }
            let (notifications, attempts) = state.store.deliveries(&id, limit as i64).await?;
            Ok(HttpResponse::Ok()
                .json(json!({"notifications": notifications, "attempts": attempts})))
        }
        .await,
    )
}

/// Operator replay of dead-lettered notifications (see `store::outbox::replay`).
pub async fn replay(state: &AppState, subscription: Option<String>) -> Result<usize, Problem> {
    let op = OutboxOp::Replay {
        subscription,
        now: crate::fhir::search::dates::now_micros(),
    };
    match state.store.commit(vec![WriteOp::Outbox(op)]).await?.pop() {
        Some(WriteOutcome::Queued(n)) => Ok(n),
        _ => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Replay gave no count",
        )),
    }
}

async fn replay_one(path: web::Path<String>, state: State) -> HttpResponse {
    finish(
        async {
            let id = path.into_inner();
            if state.store.subscription_states(Some(&id)).await?.is_empty() {
                return Err(Problem::not_found(format!("No subscription {id}")));
            }
            let n = replay(&state, Some(id.clone())).await?;
            tracing::info!(subscription = %id, requeued = n, "replay");
            Ok(HttpResponse::Ok().json(json!({"requeued": n})))
        }
        .await,
    )
}

async fn replay_all(state: State) -> HttpResponse {
    finish(
        async {
            let n = replay(&state, None).await?;
            tracing::info!(requeued = n, "replay of every subscription");
            Ok(HttpResponse::Ok().json(json!({"requeued": n})))
        }
        .await,
    )
}
