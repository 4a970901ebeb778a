//! `POST /fhir/Task/{id}/$accept` and `$decline`: the receiver of a handoff takes or
//! refuses responsibility. Each is a plain update of the Task's status (the same rules
//! and effects as a PUT: see docs/accountability.md), conditional on the version read.
//!
//! Input (optional for `$accept`, required for `$decline`): a Parameters body with
//! `reason` (valueString, `$decline` only) and `owner` (valueReference: who accepts,
//! when not the Task's owner already).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::context::parameters_body;
use super::error::ApiError;
use super::rest::{check_id, ctx_or_return, outcome_response, State};
use crate::fhir::outcome::IssueCode;
use crate::store::WriteOp;

pub async fn accept(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    answer(req, path, payload, state, "accepted").await
}

pub async fn decline(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    answer(req, path, payload, state, "rejected").await
}

async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
    to: &'static str,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let id = path.into_inner();
        check_id(&id)?;
        let params = parameters_body(&req, payload, &state, "$accept / $decline").await?;
        let reason =
            param(&params, "reason", "valueString").and_then(|v| v.as_str().map(str::to_owned));
        let owner = param(&params, "owner", "valueReference").cloned();
        let op = if to == "accepted" {
            "$accept"
        } else {
            "$decline"
        };
        if to == "rejected" && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(ApiError::bad_request(
                IssueCode::Required,
                "$decline needs a Parameters body with a 'reason' (valueString)",
            ));
        }
        let current = match state.store.read("Task", &id).await? {
            Some(s) if !s.deleted => s,
            _ => return Err(ApiError::not_found(format!("Task/{id} is not stored"))),
        };
        let current = super::access::disclose_one(
            &state,
            ctx.caller.as_deref(),
            super::access::Interaction::Operation,
            current,
        )
        .await?;
        let mut task = current.json().unwrap_or(Value::Null);
        if let Some(r) = ctx.caller.as_deref().and_then(crate::auth::Caller::recipient) {
            let owner_now = task["owner"]["reference"].as_str();
            let owner_new = owner.as_ref().and_then(|o| o["reference"].as_str());
            let mine = |o: Option<&str>| o.is_none_or(|o| r.answers_to(o));
            if !mine(owner_now) || !mine(owner_new) || owner_now.or(owner_new).is_none() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    IssueCode::Forbidden,
                    format!("A recipient client answers only the handoffs it owns (Task.owner one of {})", r.references.join(", ")),
                ));
            }
        }
        let status = task["status"].as_str().unwrap_or("").to_owned();
        if !matches!(status.as_str(), "requested" | "received") {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                IssueCode::BusinessRule,
                format!("Task/{id} is {status}: only a requested or received Task can take {op}"),
            ));
        }
        task["status"] = json!(to);
        if let Some(o) = owner {
            task["owner"] = o;
        }
        if let Some(r) = reason {
            task["statusReason"] = json!({ "text": r });
        }
        let ops = vec![WriteOp::Update {
            rtype: "Task".into(),
            id: id.clone(),
            resource: task,
            if_match: Some(current.version),
            full_url: None,
        }];
        let outcome = state
            .store
            .commit(ops)
            .await?
            .pop()
            .ok_or_else(super::rest::internal_outcome)?;
        tracing::info!(task = %id, op, "handoff answered");
        Ok(outcome_response(&ctx, outcome))
    }
    .await;
    ctx.finish(r)
}

fn param<'a>(params: &'a Value, name: &str, key: &str) -> Option<&'a Value> {
    params["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p.get(key))
}
