//! Every error leaves as an OperationOutcome with the right status. Store and database
//! failures are logged with their cause; the response says only what the client can act on.

use actix_web::http::StatusCode;

use crate::fhir::outcome::{Issue, IssueCode};
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub issues: Vec<Issue>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: IssueCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            issues: vec![Issue::error(code, message)],
        }
    }
    pub fn bad_request(code: IssueCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn invalid(issues: Vec<Issue>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            issues,
        }
    }
    /// Valid R4 that breaks a profile it claims (422, nothing stored).
    pub fn unprocessable(issues: Vec<Issue>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            issues,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, IssueCode::NotFound, message)
    }
    pub fn unsupported_type(rtype: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            IssueCode::NotSupported,
            format!("Resource type '{rtype}' is not supported here"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, expression) = status_of(&e);
        let code = e.issue_code();
        let issues = match e {
            StoreError::Invalid(issues) | StoreError::Unprocessable(issues) => issues,
            StoreError::Lifecycle(issue) => vec![issue],
            ref internal if internal.is_internal() => {
                tracing::error!(error = %internal, "store failure");
                vec![Issue::error(
                    code,
                    "Internal storage error; nothing was stored",
                )]
            }
            other => vec![Issue::error(code, other.to_string())],
        };
        let issues = issues
            .into_iter()
            .map(|i| match (&expression, &i.expression) {
                (Some(e), None) => i.at(e.clone()),
                _ => i,
            })
            .collect();
        ApiError { status, issues }
    }
}

fn status_of(e: &StoreError) -> (StatusCode, Option<String>) {
    match e {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, None),
        StoreError::Gone(_) => (StatusCode::GONE, None),
        StoreError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, None),
        StoreError::Conflict(_) => (StatusCode::CONFLICT, None),
        StoreError::Invalid(_) => (StatusCode::BAD_REQUEST, None),
        StoreError::Lifecycle(_) => (StatusCode::CONFLICT, None),
        StoreError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, None),
        StoreError::Entry { index, source } => {
            (status_of(source).0, Some(format!("Bundle.entry[{index}]")))
        }
        StoreError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
        StoreError::Database(_) | StoreError::Sqlite(_) | StoreError::Migrate(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    }
}
