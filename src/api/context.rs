//! Per-request FHIR context: response format (`_format` beats Accept), `Prefer`, the
//! base URL, and bounded body reading.

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde_json::Value;

use super::error::ApiError;
use crate::fhir::format::{self, Format};
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::startup::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

#[derive(Debug, Clone)]
pub struct Ctx {
    pub format: Format,
    pub pretty: bool,
    pub ret: Return,
    pub lenient: bool,
    pub base: String,
    pub query: Vec<(String, String)>,
    /// The authenticated client (src/auth.rs); None when the API is open.
    pub caller: Option<std::sync::Arc<crate::auth::Caller>>,
}

impl Ctx {
    pub fn new(req: &HttpRequest, state: &AppState) -> Result<Ctx, (Ctx, ApiError)> {
        let query = parse_query(req.query_string());
        let prefer = header_str(req.headers(), "prefer")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let ret = if prefer.contains("return=minimal") {
            Return::Minimal
        } else if prefer.contains("return=operationoutcome") {
            Return::OperationOutcome
        } else {
            Return::Representation
        };
        let base = match &state.settings.public_base_url {
            Some(b) => format!("{}/fhir", b.trim_end_matches('/')),
            None => {
                let info = req.connection_info();
                format!("{}://{}/fhir", info.scheme(), info.host())
            }
        };
        let pretty = query.iter().any(|(k, v)| k == "_pretty" && v == "true");
        let mut ctx = Ctx {
            format: Format::Json,
            pretty,
            ret,
            lenient: prefer.contains("handling=lenient"),
            base,
            query,
            caller: super::auth::caller_of(req),
        };
        let requested = ctx
            .query
            .iter()
            .find(|(k, _)| k == "_format")
            .map(|(_, v)| v.clone());
        match requested {
            Some(f) => match Format::from_mime(&f) {
                Some(fmt) => ctx.format = fmt,
                None => {
                    let e = ApiError::new(
                        StatusCode::NOT_ACCEPTABLE,
                        IssueCode::NotSupported,
                        "_format must be json or xml (or a FHIR media type)",
                    );
                    return Err((ctx, e));
                }
            },
            None => ctx.format = accept_format(req.headers()),
        }
        Ok(ctx)
    }

    /// A response carrying a FHIR resource (or Bundle) in the negotiated format.
    pub fn resource(&self, status: StatusCode, value: &Value) -> HttpResponse {
        match format::render(value, self.format, self.pretty) {
            Ok(body) => HttpResponse::build(status)
                .content_type(self.format.mime())
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "rendering a response failed");
                let oo = operation_outcome(&[Issue::error(
                    IssueCode::Exception,
                    "The response could not be rendered",
                )]);
                HttpResponse::InternalServerError()
                    .content_type(Format::Json.mime())
                    .body(serde_json::to_vec(&oo).unwrap_or_default())
            }
        }
    }

    /// Stored JSON text sent as it is when the client wants JSON (no re-encoding).
    pub fn stored_body(&self, status: StatusCode, body: &str) -> HttpResponse {
        if self.format == Format::Json && !self.pretty {
            return HttpResponse::build(status)
                .content_type(Format::Json.mime())
                .body(body.to_owned());
        }
        match serde_json::from_str::<Value>(body) {
            Ok(v) => self.resource(status, &v),
            Err(_) => self.error(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                IssueCode::Exception,
                "Stored body unreadable",
            )),
        }
    }

    pub fn error(&self, e: ApiError) -> HttpResponse {
        self.resource(e.status, &operation_outcome(&e.issues))
    }

    pub fn finish(&self, r: Result<HttpResponse, ApiError>) -> HttpResponse {
        r.unwrap_or_else(|e| self.error(e))
    }
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn accept_format(h: &HeaderMap) -> Format {
    let accept = header_str(h, header::ACCEPT.as_str()).unwrap_or("");
    let xml = accept
        .split(',')
        .position(|a| Format::from_mime(a) == Some(Format::Xml));
    let json = accept
        .split(',')
        .position(|a| Format::from_mime(a) == Some(Format::Json));
    match (xml, json) {
        (Some(x), Some(j)) if x < j => Format::Xml,
        (Some(_), None) => Format::Xml,
        _ => Format::Json,
    }
}

pub fn parse_query(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The request body's format from Content-Type (JSON when absent).
pub fn body_format(req: &HttpRequest) -> Result<Format, ApiError> {
    match header_str(req.headers(), header::CONTENT_TYPE.as_str()) {
        None => Ok(Format::Json),
        Some(ct) => Format::from_mime(ct).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                IssueCode::NotSupported,
                "Content-Type must be application/fhir+json or application/fhir+xml",
            )
        }),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        IssueCode::TooLong,
        format!("The body exceeds the limit of {limit} bytes"),
    )
}

/// Read the whole body, refusing anything over `limit` bytes (413) as soon as it is known.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    if let Some(len) =
        header_str(req.headers(), "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large(limit));
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request(IssueCode::Structure, "The request body could not be read")
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The request's resource: Content-Type checked, body read within the size limit,
/// parsed and validated.
pub async fn resource_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Value, ApiError> {
    let fmt = body_format(req)?;
    let body = read_body(req, payload, state.settings.max_body_bytes).await?;
    parse_resource(state, body, fmt).await
}

/// An operation's Parameters body, or Null when the body is empty; `op` names the
/// operation in the error when the body is another resource.
pub async fn parameters_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    op: &str,
) -> Result<Value, ApiError> {
    let body = read_body(req, payload, state.settings.max_body_bytes).await?;
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let v = parse_resource(state, body, body_format(req)?).await?;
    if v["resourceType"] != "Parameters" {
        return Err(ApiError::bad_request(
            IssueCode::Invalid,
            format!("The body of {op} must be a Parameters resource"),
        ));
    }
    Ok(v)
}

/// Parse and validate a resource body; large bodies are parsed on the blocking pool.
pub async fn parse_resource(
    state: &AppState,
    body: web::Bytes,
    fmt: Format,
) -> Result<Value, ApiError> {
    match check_resource(state, body, fmt).await? {
        (Some(value), issues) if !issues.iter().any(Issue::is_error) => Ok(value),
        (_, issues) => Err(ApiError::invalid(issues)),
    }
}

/// Decode and validate a resource body, keeping the resource even when it has issues
/// (see [`format::check`]); large bodies are parsed on the blocking pool.
pub async fn check_resource(
    state: &AppState,
    body: web::Bytes,
    fmt: Format,
) -> Result<(Option<Value>, Vec<Issue>), ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            IssueCode::Required,
            "The request has no body",
        ));
    }
    if body.len() > state.settings.blocking_parse_bytes {
        web::block(move || format::check(&body, fmt))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueCode::Exception,
                    "Parsing was interrupted",
                )
            })
    } else {
        Ok(format::check(&body, fmt))
    }
}
