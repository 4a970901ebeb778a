//! Authentication of API requests (src/auth.rs has the clients). When clients are
//! configured, every request but `/health` and `/fhir/metadata` carries
//! `Authorization: Bearer <token>` of a registered client (401 otherwise), and a
//! recipient client is kept to what it may use (403): the FHIR resources, whose reads
//! [`super::access`] decides one by one, and its own subscriptions' operations. The
//! caller goes into the request's extensions, where [`super::context::Ctx`] finds it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};

use super::context::Ctx;
use super::error::ApiError;
use super::v1::problem::Problem;
use crate::auth::{Access, Caller};
use crate::fhir::outcome::IssueCode;
use crate::startup::AppState;

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let path = req.path().to_owned();
    if state.clients.is_open() || is_public(req.method(), &path) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let token = bearer(&req);
    let caller = token
        .as_deref()
        .and_then(|t| state.clients.authenticate(t))
        .cloned();
    let Some(caller) = caller else {
        tracing::info!(method = %req.method(), path = %path, token = token.is_some(), "request refused: not authenticated");
        let e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            IssueCode::Login,
            match token {
                Some(_) => "The bearer token is not one of a registered client",
                None => "This gateway needs Authorization: Bearer <token> of a registered client",
            },
        );
        let mut resp = error_response(&req, &state, e);
        let challenge = match token {
            Some(_) => "Bearer realm=\"handoff\", error=\"invalid_token\"",
            None => "Bearer realm=\"handoff\"",
        };
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(challenge),
        );
        return Ok(req.into_response(resp));
    };
    if let Access::Recipient(_) = caller.access {
        if let Some(why) = refused_to_recipients(&path) {
            tracing::info!(client = %caller.client, path = %path, "request refused: not for recipient clients");
            let e = ApiError::new(StatusCode::FORBIDDEN, IssueCode::Forbidden, why);
            let resp = error_response(&req, &state, e);
            return Ok(req.into_response(resp));
        }
    }
    req.extensions_mut().insert(std::sync::Arc::new(caller));
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// What anyone may ask: liveness, and what the server can do.
fn is_public(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && matches!(path, "/health" | "/fhir/metadata")
}

fn bearer(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Why `path` is not for a recipient client, if it is not: what no per-resource
/// decision guards (the coordinators' API, the ledger, consent questions, system-wide
/// history, messages from other gateways).
pub fn refused_to_recipients(path: &str) -> Option<&'static str> {
    let p = path.trim_end_matches('/');
    if p.starts_with("/api/") || p == "/api" {
        return Some("The coordination API (/api) is for full-access clients");
    }
    if p == "/fhir/AuditEvent" || p.starts_with("/fhir/AuditEvent/") || p.ends_with("/$disclosures")
    {
        return Some("The disclosure ledger is for full-access clients");
    }
    match p {
        "/fhir/Consent/$evaluate" => Some("Consent questions are for full-access clients"),
        "/fhir/_history" => Some("System-wide history is for full-access clients"),
        "/fhir/$process-message" => {
            Some("Messages from other gateways come from full-access clients")
        }
        _ => None,
    }
}

fn error_response(req: &ServiceRequest, state: &AppState, e: ApiError) -> HttpResponse {
    if req.path().starts_with("/api") {
        return Problem::from(e).response();
    }
    match Ctx::new(req.request(), state) {
        Ok(ctx) => ctx.error(e),
        Err((ctx, _)) => ctx.error(e),
    }
}

/// The authenticated caller of a request, if any.
pub fn caller_of(req: &actix_web::HttpRequest) -> Option<std::sync::Arc<Caller>> {
    req.extensions().get::<std::sync::Arc<Caller>>().cloned()
}

/// What a recipient client (a receiving practice) writes: its answers to handoffs and
/// referrals, what it found, and its own subscriptions. Patients, consent
/// directives, encounters and the directory come from full-access clients: a
/// recipient that could write them could grant itself disclosures (a Consent, a
/// Patient naming it as PCP).
pub const RECIPIENT_WRITES: [&str; 5] = [
    "Task",
    "ServiceRequest",
    "CarePlan",
    "Condition",
    "Subscription",
];

/// A recipient client's write: a type it may write, and a subscription naming it
/// alone as the recipient.
pub fn check_recipient_write(
    r: &crate::topics::subscription::RecipientSpec,
    rtype: &str,
    resource: Option<&serde_json::Value>,
) -> Result<(), ApiError> {
    if !RECIPIENT_WRITES.contains(&rtype) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            IssueCode::Forbidden,
            format!(
                "A recipient client may not write {rtype} (it writes {})",
                RECIPIENT_WRITES.join(", ")
            ),
        ));
    }
    match resource {
        Some(sub) if rtype == "Subscription" => {
            let named = sub
                .as_object()
                .and_then(|root| {
                    crate::topics::subscription::recipient::read(root, &mut Vec::new())
                })
                .map(|spec| spec.references)
                .unwrap_or_default();
            if named.is_empty() || named.iter().any(|n| !r.answers_to(n)) {
                return Err(ApiError {
                    status: StatusCode::FORBIDDEN,
                    issues: vec![crate::fhir::outcome::Issue::error(
                        IssueCode::Forbidden,
                        format!(
                            "A recipient client's subscription names it as the recipient (one or more of {}), and nobody else",
                            r.references.join(", ")
                        ),
                    )
                    .at("Subscription.extension")],
                });
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_kept_to_the_fhir_resources() {
        for p in [
            "/api/v1/referrals",
            "/fhir/AuditEvent",
            "/fhir/AuditEvent/1/_history",
            "/fhir/Patient/p/$disclosures",
            "/fhir/Consent/$evaluate",
            "/fhir/_history",
            "/fhir/$process-message",
        ] {
            assert!(refused_to_recipients(p).is_some(), "{p}");
        }
        for p in [
            "/fhir/Encounter",
            "/fhir/Patient/p",
            "/fhir/Task/t/$accept",
            "/fhir/Subscription/s/$events",
            "/fhir",
        ] {
            assert!(refused_to_recipients(p).is_none(), "{p}");
        }
    }
}
