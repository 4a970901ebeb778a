//! Subscription operations (Backport IG): `$status` (type and instance level) and
//! `$events` (a subscriber recovers what it missed), the endpoint check made before a
//! Subscription is stored, and the read-only topic catalogue.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::access;
use super::context::parameters_body;
use super::error::ApiError;
use super::rest::{ctx_or_return, State};
use crate::auth::Caller;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::params::is_read_only;
use crate::notify::bundle::{self, Content, NotificationType, SubscriptionStatus};
use crate::notify::davinci;
use crate::notify::ssrf;
use crate::notify::worker::item_of;
use crate::startup::AppState;
use crate::store::hl7::{Receipt, ALREADY_APPLIED};
use crate::store::{StoreError, WriteOp, WriteOutcome};

/// Most events one `$events` call returns.
const MAX_EVENTS: i64 = 1000;

fn statuses(states: &[crate::store::outbox::SubState]) -> Vec<SubscriptionStatus<'_>> {
    states
        .iter()
        .map(|s| SubscriptionStatus {
            subscription_id: &s.id,
            topic: &s.topic,
            status: &s.status,
            events_since_start: s.events_since_start,
            error: s.error.as_deref(),
        })
        .collect()
}

/// The statuses an R4 Subscription can have.
const STATUSES: [&str; 4] = ["requested", "active", "error", "off"];

/// An operation's input: the query's parameters, then those of a POSTed Parameters
/// body (each a name and a primitive `value[x]`), in that order.
fn operation_input(
    query: &[(String, String)],
    body: &Value,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut input = query.to_vec();
    for (i, p) in body["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = p["name"].as_str().unwrap_or_default();
        let value = p
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
            .map(|(_, v)| v);
        let text = match value {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => {
                return Err(ApiError::invalid(vec![Issue::error(
                    IssueCode::Invalid,
                    format!("the parameter '{name}' needs a primitive value[x]"),
                )
                .at(format!("Parameters.parameter[{i}]"))]))
            }
        };
        input.push((name.to_owned(), text));
    }
    Ok(input)
}

/// The error for a parameter `op` does not take.
fn unknown_parameter(op: &str, name: &str) -> ApiError {
    ApiError::bad_request(
        IssueCode::NotSupported,
        format!("Unknown {op} parameter '{name}'"),
    )
}

/// Values of a parameter given repeated or comma-separated (either means OR).
fn values(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `GET|POST /fhir/Subscription/$status` and `/fhir/Subscription/{id}/$status`. At
/// the type level `id` and `status` (each 0..*, values ORed) narrow the answer; at the
/// instance level the Backport IG has them ignored.
pub async fn status(req: HttpRequest, payload: web::Payload, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let id = req.match_info().get("id").map(str::to_owned);
    let r = async {
        let body = parameters_body(&req, payload, &state, "$status").await?;
        // The ids and statuses asked for (none: all).
        let (mut asked_ids, mut asked_statuses) = (Vec::new(), Vec::new());
        for (k, v) in operation_input(&ctx.query, &body)? {
            match k.as_str() {
                "id" => asked_ids.extend(values(&v).map(str::to_owned)),
                "status" => {
                    for s in values(&v) {
                        if !STATUSES.contains(&s) {
                            return Err(ApiError::bad_request(
                                IssueCode::Value,
                                format!("status must be one of {}", STATUSES.join(", ")),
                            ));
                        }
                        asked_statuses.push(s.to_owned());
                    }
                }
                "_format" | "_pretty" => {}
                other => return Err(unknown_parameter("$status", other)),
            }
        }
        let mut states = state.store.subscription_states(id.as_deref()).await?;
        if let (Some(id), true) = (&id, states.is_empty()) {
            return Err(ApiError::not_found(format!(
                "Subscription/{id} is not known"
            )));
        }
        if id.is_none() {
            states.retain(|s| {
                (asked_ids.is_empty() || asked_ids.contains(&s.id))
                    && (asked_statuses.is_empty() || asked_statuses.contains(&s.status))
            });
        }
        if let Some(r) = ctx.caller.as_deref().and_then(Caller::recipient) {
            let ids: Vec<String> = states
                .iter()
                .map(|s| format!("Subscription/{}", s.id))
                .collect();
            let subs = state.store.read_many(&ids).await?;
            let mine = |sid: &str| {
                subs.iter().any(|s| {
                    s.id == sid && s.json().is_some_and(|v| access::names_recipient(&v, r))
                })
            };
            states.retain(|s| mine(&s.id));
            if let (Some(id), true) = (&id, states.is_empty()) {
                return Err(access::forbidden(&format!("Subscription/{id}")));
            }
        }
        Ok(ctx.resource(
            StatusCode::OK,
            &bundle::status_bundle(&ctx.base, &statuses(&states)),
        ))
    }
    .await;
    ctx.finish(r)
}

/// `GET|POST /fhir/Subscription/{id}/$events?eventsSinceNumber=&eventsUntilNumber=&content=`
/// (the parameters in the query or a POSTed Parameters body).
pub async fn events(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let id = path.into_inner();
        let body = parameters_body(&req, payload, &state, "$events").await?;
        let mut since = 1i64;
        let mut until = i64::MAX;
        let mut content = None;
        for (k, v) in &operation_input(&ctx.query, &body)? {
            let number = || {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(IssueCode::Value, format!("{k} must be a whole number"))
                })
            };
            match k.as_str() {
                "eventsSinceNumber" => since = number()?,
                "eventsUntilNumber" => until = number()?,
                "content" => {
                    content = Some(Content::parse(v).ok_or_else(|| {
                        ApiError::bad_request(
                            IssueCode::Value,
                            "content must be empty, id-only or full-resource",
                        )
                    })?)
                }
                "_format" | "_pretty" => {}
                other => return Err(unknown_parameter("$events", other)),
            }
        }
        let states = state.store.subscription_states(Some(&id)).await?;
        let Some(sub) = states.first() else {
            return Err(ApiError::not_found(format!(
                "Subscription/{id} is not known"
            )));
        };
        if let Some(r) = ctx.caller.as_deref().and_then(Caller::recipient) {
            let sub = state
                .store
                .read("Subscription", &id)
                .await?
                .and_then(|s| s.json());
            if !sub.is_some_and(|v| access::names_recipient(&v, r)) {
                return Err(access::forbidden(&format!("Subscription/{id}")));
            }
        }
        let content = content.unwrap_or(Content::IdOnly);
        let rows = state
            .store
            .subscription_events(&id, since, until, MAX_EVENTS)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for (number, event) in &rows {
            items.push(item_of(&*state.store, event, *number, content).await?);
        }
        let withheld = recheck(&state, ctx.caller.as_deref(), &items).await?;
        let st = statuses(std::slice::from_ref(sub)).remove(0);
        let mut body = bundle::notification_bundle(
            &ctx.base,
            &st,
            NotificationType::QueryEvent,
            content,
            &items,
        );
        crate::notify::withhold::apply(
            &mut body,
            &withheld,
            "the patient's consent does not permit disclosing it to this client now",
        );
        tracing::info!(subscription = %id, events = items.len(), "$events");
        Ok(ctx.resource(StatusCode::OK, &body))
    }
    .await;
    ctx.finish(r)
}

/// `$events` answers an authenticated client with what it may see now: everything its
/// events name is decided again (and the read is in the ledger). The references
/// withheld.
async fn recheck(
    state: &AppState,
    caller: Option<&Caller>,
    items: &[bundle::EventItem],
) -> Result<Vec<String>, ApiError> {
    if caller.is_none() {
        return Ok(Vec::new());
    }
    let mut refs: Vec<String> = Vec::new();
    for item in items {
        for r in item.focus.iter().chain(&item.context) {
            if !refs.contains(r) {
                refs.push(r.clone());
            }
        }
    }
    let found = state.store.read_many(&refs).await?;
    let shown = access::disclose(state, caller, access::Interaction::Operation, found).await?;
    Ok(refs
        .into_iter()
        .filter(|r| !shown.items.iter().any(|s| s.reference() == *r))
        .collect())
}

/// Checks on a write before it reaches the store: topics (Basic) are read-only, a
/// recipient client writes only what [`super::auth::RECIPIENT_WRITES`] lists (and only
/// subscriptions naming it) and changes only what is its own and consent lets it see
/// ([`access::check_recipient_change`]), and a Subscription's endpoint must be allowed (no
/// loopback, private or link-local targets unless configured). The endpoint is
/// checked here, outside the store's transaction, because it resolves the host name.
/// Issue paths are relative to the resource (`Subscription.channel.endpoint`).
/// Returns the guards to commit with `op` (see [`access::check_recipient_change`]).
pub async fn check_write(
    state: &AppState,
    caller: Option<&Caller>,
    op: &WriteOp,
) -> Result<Vec<WriteOp>, ApiError> {
    let (rtype, resource) = match op {
        WriteOp::Create { resource, .. }
        | WriteOp::Update { resource, .. }
        | WriteOp::ConditionalUpdate { resource, .. } => (
            resource["resourceType"].as_str().unwrap_or(""),
            Some(resource),
        ),
        WriteOp::Delete { rtype, .. } => (rtype.as_str(), None),
        WriteOp::ConditionalDelete { query } => (query.rtype.as_str(), None),
        _ => return Ok(Vec::new()),
    };
    if is_read_only(rtype) {
        return Err(read_only(rtype));
    }
    let mut guards = Vec::new();
    if let Some(r) = caller.and_then(Caller::recipient) {
        super::auth::check_recipient_write(r, rtype, resource)?;
        guards = access::check_recipient_change(state, r, op).await?;
    }
    let Some(resource) = resource else {
        return Ok(guards);
    };
    if rtype != "Subscription" || resource["status"] == "off" {
        return Ok(guards);
    }
    let Some(endpoint) = resource["channel"]["endpoint"].as_str() else {
        return Ok(guards); // the subscription parser reports it
    };
    ssrf::check_endpoint(endpoint, &state.endpoint_policy)
        .await
        .map(|_| guards)
        .map_err(|e| ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            issues: vec![crate::fhir::outcome::Issue::error(
                IssueCode::Security,
                format!("The subscriber endpoint is refused: {e}"),
            )
            .at("Subscription.channel.endpoint")],
        })
}

fn read_only(rtype: &str) -> ApiError {
    let what = if rtype == "AuditEvent" {
        "AuditEvents here are the disclosure ledger, written by the gateway only: read-only"
    } else {
        "Basic resources here are the gateway's SubscriptionTopics: read-only"
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        IssueCode::NotSupported,
        what,
    )
}

/// Store every topic of the catalogue as its R4 Basic resource (at start), so that
/// `GET /fhir/Basic?code=SubscriptionTopic` finds them. Unchanged ones are left alone.
pub async fn seed_topics(store: &dyn crate::store::Store) -> Result<(), crate::store::StoreError> {
    for topic in crate::topics::catalog::all() {
        let basic = crate::topics::catalog::as_basic(topic);
        let id = basic["id"].as_str().unwrap_or_default().to_owned();
        let current = store.read("Basic", &id).await?.and_then(|s| s.json());
        let same = current.as_ref().is_some_and(|c| {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("meta");
            }
            let mut b = basic.clone();
            if let Some(o) = b.as_object_mut() {
                o.remove("meta");
            }
            c == b
        });
        if !same {
            let op = WriteOp::Update {
                rtype: "Basic".into(),
                id,
                resource: basic,
                if_match: None,
                full_url: None,
            };
            if let Some(WriteOutcome::Created(_) | WriteOutcome::Updated(_)) =
                store.commit(vec![op]).await?.pop()
            {
                tracing::info!(topic = topic.code, "topic stored");
            }
        }
    }
    Ok(())
}

/// `POST /fhir/$process-message`: a Da Vinci notification (or any FHIR message) from
/// another gateway or hospital. The resources it carries are stored as they are
/// (update-as-create with their ids) in one transaction, through the same write path
/// as any FHIR write, so the records, events and notifications follow. The answer is a
/// response message (`ok`); a message that cannot be taken is a 400/422
/// OperationOutcome with nothing stored.
pub async fn process_message(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let bundle = super::context::resource_body(&req, payload, &state).await?;
        if bundle["resourceType"] != "Bundle" {
            return Err(ApiError::bad_request(
                IssueCode::Invalid,
                "$process-message takes a message Bundle",
            ));
        }
        let message = davinci::parse_message(&bundle).map_err(|issues| ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            issues,
        })?;
        let mut ops = Vec::with_capacity(message.resources.len());
        for resource in &message.resources {
            let (Some(rtype), Some(id)) =
                (resource["resourceType"].as_str(), resource["id"].as_str())
            else {
                continue; // parse_message guarantees both
            };
            let op = WriteOp::Update {
                rtype: rtype.to_owned(),
                id: id.to_owned(),
                resource: resource.clone(),
                if_match: None,
                full_url: None,
            };
            let guards = check_write(&state, ctx.caller.as_deref(), &op).await?;
            ops.push(op);
            ops.extend(guards);
        }
        // A message processed before (a sender resending after a lost response) is
        // answered with the response it had, and not applied again.
        let (sender, message_id) = davinci::receipt_key(&message);
        if let Some(answer) = stored_response(&state, &sender, &message_id).await? {
            tracing::info!(message = %message.message_id, "message resent: the stored response answers it");
            return Ok(ctx.resource(StatusCode::OK, &answer));
        }
        let answer = davinci::response_bundle(&ctx.base, &message, davinci::ResponseCode::Ok, None);
        ops.push(WriteOp::Hl7(Receipt {
            sender: sender.clone(),
            control_id: message_id.clone(),
            ack_code: davinci::ResponseCode::Ok.as_str().into(),
            ack: answer.to_string(),
            encounter: None,
            correction: None,
            coalesce_micros: None,
        }));
        match state.store.commit(ops).await {
            Ok(_) => {}
            // A copy of the message sent at the same time committed first.
            Err(e) if matches!(e.root(), StoreError::Conflict(m) if m == ALREADY_APPLIED) => {
                if let Some(answer) = stored_response(&state, &sender, &message_id).await? {
                    return Ok(ctx.resource(StatusCode::OK, &answer));
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            message = %message.message_id, event = %message.event.1,
            stored = message.resources.len(), skipped = message.skipped.len(),
            "message processed"
        );
        Ok(ctx.resource(StatusCode::OK, &answer))
    }
    .await;
    ctx.finish(r)
}

/// The response kept for a message processed before, if any.
async fn stored_response(
    state: &AppState,
    sender: &str,
    message_id: &str,
) -> Result<Option<Value>, ApiError> {
    let stored = state.store.hl7_ack(sender, message_id).await?;
    Ok(stored.and_then(|text| serde_json::from_str(&text).ok()))
}
