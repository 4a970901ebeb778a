//! Instance and type interactions: create, read, vread, update, delete, and their
//! conditional forms. Handlers only translate HTTP to store calls and back.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::access::{self, Interaction};
use super::context::{header_str, resource_body, Ctx, Return};
use super::error::ApiError;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::primitives::is_valid_id;
use crate::fhir::profiles::LocalRefs;
use crate::fhir::search::dates::http_date;
use crate::fhir::search::{params, query, SearchQuery};
use crate::startup::AppState;
use crate::store::{StoredResource, WriteOp, WriteOutcome};

pub type State = web::Data<AppState>;

macro_rules! ctx_or_return {
    ($req:expr, $state:expr) => {
        match $crate::api::context::Ctx::new(&$req, &$state) {
            Ok(c) => c,
            Err((c, e)) => return c.error(e),
        }
    };
}
pub(crate) use ctx_or_return;

pub fn check_type(rtype: &str) -> Result<(), ApiError> {
    if params::is_supported(rtype) {
        Ok(())
    } else {
        Err(ApiError::unsupported_type(rtype))
    }
}

pub fn check_id(id: &str) -> Result<(), ApiError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            IssueCode::Value,
            "The id breaks the FHIR id rule ([A-Za-z0-9-.]{1,64})",
        ))
    }
}

/// `W/"3"` or `"3"` or `3` -> 3.
pub fn parse_etag(v: &str) -> Result<i64, ApiError> {
    v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map_err(|_| {
            ApiError::bad_request(
                IssueCode::Value,
                "If-Match must be a version ETag such as W/\"3\"",
            )
        })
}

fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    header_str(req.headers(), "if-match")
        .map(parse_etag)
        .transpose()
}

pub fn check_body_type(resource: &Value, rtype: &str) -> Result<(), ApiError> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == rtype => Ok(()),
        Some(t) => Err(ApiError::bad_request(
            IssueCode::Invalid,
            format!("The body is a {t} but the URL names {rtype}"),
        )),
        None => Err(ApiError::bad_request(
            IssueCode::Required,
            "The body has no resourceType",
        )),
    }
}

/// A resource about to be written against the profiles it claims (meta.profile) that
/// the gateway knows: any error refuses the write with 422 and every issue found.
/// Claims of profiles the gateway does not know are accepted unchecked, as FHIR allows.
pub fn check_profiles(
    state: &AppState,
    resource: &Value,
    local: &LocalRefs,
) -> Result<(), ApiError> {
    let issues = state.profiles.check_claimed(resource, local);
    if issues.iter().any(Issue::is_error) {
        tracing::info!(issues = issues.len(), "write refused: profile not met");
        return Err(ApiError::unprocessable(issues));
    }
    Ok(())
}

pub fn location(ctx: &Ctx, s: &StoredResource) -> String {
    format!("{}/{}/{}/_history/{}", ctx.base, s.rtype, s.id, s.version)
}

/// Headers and body of a successful write, honouring `Prefer: return=`.
pub fn write_response(ctx: &Ctx, status: StatusCode, s: &StoredResource) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header(("Location", location(ctx, s)))
        .insert_header(("ETag", format!("W/\"{}\"", s.version)))
        .insert_header(("Last-Modified", http_date(s.last_updated)));
    let mut resp = match ctx.ret {
        Return::Minimal => return builder.finish(),
        Return::Representation => match &s.body {
            Some(b) => ctx.stored_body(status, b),
            None => return builder.finish(),
        },
        Return::OperationOutcome => ctx.resource(
            status,
            &operation_outcome(&[Issue::information(format!(
                "{} {}/{} version {}",
                status_word(status),
                s.rtype,
                s.id,
                s.version
            ))]),
        ),
    };
    for (k, v) in builder.finish().headers() {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

fn status_word(s: StatusCode) -> &'static str {
    if s == StatusCode::CREATED {
        "Created"
    } else {
        "Updated"
    }
}

pub fn outcome_response(ctx: &Ctx, outcome: WriteOutcome) -> HttpResponse {
    match outcome {
        WriteOutcome::Created(s) => write_response(ctx, StatusCode::CREATED, &s),
        WriteOutcome::Updated(s) | WriteOutcome::Existing(s) => {
            write_response(ctx, StatusCode::OK, &s)
        }
        WriteOutcome::Deleted { version, .. } => {
            let mut b = HttpResponse::NoContent();
            if let Some(v) = version {
                b.insert_header(("ETag", format!("W/\"{v}\"")));
            }
            b.finish()
        }
        WriteOutcome::Claimed(_)
        | WriteOutcome::Finished(_)
        | WriteOutcome::Queued(_)
        | WriteOutcome::Swept(_)
        | WriteOutcome::Pruned(_) => ctx.error(internal_outcome()),
    }
}

/// Outbox outcomes never answer a request; if one did, it is a bug, not the client's.
pub fn internal_outcome() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        IssueCode::Exception,
        "unexpected store outcome",
    )
}

/// A search query for a conditional interaction; strict (unknown parameters refused).
fn conditional_query(rtype: &str, q: &str, what: &str) -> Result<SearchQuery, ApiError> {
    let pairs = super::context::parse_query(q);
    let pairs: Vec<_> = pairs
        .into_iter()
        .filter(|(k, _)| k != "_format" && k != "_pretty")
        .collect();
    if pairs.is_empty() {
        return Err(ApiError::bad_request(
            IssueCode::Required,
            format!("{what} needs search criteria"),
        ));
    }
    query::parse(rtype, &pairs, false).map_err(ApiError::invalid)
}

async fn single(
    ctx: &Ctx,
    state: &AppState,
    mut ops: Vec<WriteOp>,
) -> Result<WriteOutcome, ApiError> {
    let mut guards = Vec::new();
    for op in &ops {
        guards.extend(super::subscriptions::check_write(state, ctx.caller.as_deref(), op).await?);
    }
    ops.extend(guards);
    let mut out = state.store.commit(ops).await?;
    match out.pop() {
        // A conditional create's match is a read of a stored resource.
        Some(WriteOutcome::Existing(s)) => {
            access::disclose_one(state, ctx.caller.as_deref(), Interaction::SearchType, s)
                .await
                .map(WriteOutcome::Existing)
        }
        Some(o) => Ok(o),
        None => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueCode::Exception,
            "no outcome",
        )),
    }
}

pub async fn create(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let rtype = path.into_inner();
        check_type(&rtype)?;
        let resource = resource_body(&req, payload, &state).await?;
        check_body_type(&resource, &rtype)?;
        check_profiles(&state, &resource, &LocalRefs::new())?;
        let if_none_exist = header_str(req.headers(), "if-none-exist")
            .map(|q| conditional_query(&rtype, q.trim_start_matches('?'), "If-None-Exist"))
            .transpose()?;
        let outcome = single(
            &ctx,
            &state,
            vec![WriteOp::Create {
                resource,
                if_none_exist,
                full_url: None,
            }],
        )
        .await?;
        if let WriteOutcome::Created(s) = &outcome {
            tracing::info!(rtype = %s.rtype, id = %s.id, "created");
        }
        Ok(outcome_response(&ctx, outcome))
    }
    .await;
    ctx.finish(r)
}

pub async fn read(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let (rtype, id) = path.into_inner();
        check_type(&rtype)?;
        check_id(&id)?;
        let s = state
            .store
            .read(&rtype, &id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{rtype}/{id} is not known")))?;
        let s = access::disclose_one(&state, ctx.caller.as_deref(), Interaction::Read, s).await?;
        stored_response(&ctx, s)
    }
    .await;
    ctx.finish(r)
}

pub async fn vread(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let (rtype, id, vid) = path.into_inner();
        check_type(&rtype)?;
        check_id(&id)?;
        let version: i64 = vid
            .parse()
            .map_err(|_| ApiError::not_found(format!("{rtype}/{id} has no version '{vid}'")))?;
        let s = state
            .store
            .vread(&rtype, &id, version)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{rtype}/{id} has no version {version}")))?;
        let s = access::disclose_one(&state, ctx.caller.as_deref(), Interaction::Vread, s).await?;
        stored_response(&ctx, s)
    }
    .await;
    ctx.finish(r)
}

fn stored_response(ctx: &Ctx, s: StoredResource) -> Result<HttpResponse, ApiError> {
    if s.deleted {
        let mut e = ApiError::new(
            StatusCode::GONE,
            IssueCode::Deleted,
            format!("{}/{} was deleted", s.rtype, s.id),
        );
        e.issues[0].expression = None;
        let mut resp = ctx.error(e);
        resp.headers_mut().insert(
            actix_web::http::header::ETAG,
            actix_web::http::header::HeaderValue::from_str(&format!("W/\"{}\"", s.version))
                .expect("ascii"),
        );
        return Ok(resp);
    }
    let body = s.body.as_deref().unwrap_or("{}");
    let mut resp = ctx.stored_body(StatusCode::OK, body);
    let h = resp.headers_mut();
    h.insert(
        actix_web::http::header::ETAG,
        format!("W/\"{}\"", s.version).parse().expect("ascii"),
    );
    h.insert(
        actix_web::http::header::LAST_MODIFIED,
        http_date(s.last_updated).parse().expect("ascii"),
    );
    Ok(resp)
}

pub async fn update(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let (rtype, id) = path.into_inner();
        check_type(&rtype)?;
        check_id(&id)?;
        let resource = resource_body(&req, payload, &state).await?;
        check_body_type(&resource, &rtype)?;
        match resource.get("id").and_then(Value::as_str) {
            Some(b) if b == id => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    IssueCode::Invalid,
                    "The id in the body differs from the id in the URL",
                ))
            }
            None => {
                return Err(ApiError::bad_request(
                    IssueCode::Required,
                    "An update body must carry the resource id",
                ))
            }
        }
        let if_match = if_match(&req)?;
        check_profiles(&state, &resource, &LocalRefs::new())?;
        let outcome = single(
            &ctx,
            &state,
            vec![WriteOp::Update {
                rtype,
                id,
                resource,
                if_match,
                full_url: None,
            }],
        )
        .await?;
        Ok(outcome_response(&ctx, outcome))
    }
    .await;
    ctx.finish(r)
}

pub async fn conditional_update(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let rtype = path.into_inner();
        check_type(&rtype)?;
        let query = conditional_query(&rtype, req.query_string(), "A conditional update")?;
        let resource = resource_body(&req, payload, &state).await?;
        check_body_type(&resource, &rtype)?;
        check_profiles(&state, &resource, &LocalRefs::new())?;
        let outcome = single(
            &ctx,
            &state,
            vec![WriteOp::ConditionalUpdate {
                query,
                resource,
                full_url: None,
            }],
        )
        .await?;
        Ok(outcome_response(&ctx, outcome))
    }
    .await;
    ctx.finish(r)
}

pub async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let (rtype, id) = path.into_inner();
        check_type(&rtype)?;
        check_id(&id)?;
        let if_match = if_match(&req)?;
        let outcome = single(
            &ctx,
            &state,
            vec![WriteOp::Delete {
                rtype,
                id,
                if_match,
            }],
        )
        .await?;
        Ok(outcome_response(&ctx, outcome))
    }
    .await;
    ctx.finish(r)
}

pub async fn conditional_delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let rtype = path.into_inner();
        check_type(&rtype)?;
        let query = conditional_query(&rtype, req.query_string(), "A conditional delete")?;
        let outcome = single(&ctx, &state, vec![WriteOp::ConditionalDelete { query }]).await?;
        Ok(outcome_response(&ctx, outcome))
    }
    .await;
    ctx.finish(r)
}
