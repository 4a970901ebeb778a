//! RFC 9457 problem details for the internal API: `type`, `title`, `status`, `detail`,
//! and `errors` listing each problem with the field or FHIR element it is about.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use crate::api::error::ApiError;
use crate::fhir::outcome::Issue;
use crate::store::StoreError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub detail: String,
    /// (where, what)
    pub errors: Vec<(Option<String>, String)>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422 listing `problems` (messages naming their field).
    pub fn unprocessable(detail: impl Into<String>, problems: Vec<String>) -> Problem {
        Problem {
            errors: problems.into_iter().map(|p| (None, p)).collect(),
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
        }
    }

    pub fn from_issues(status: StatusCode, detail: impl Into<String>, issues: &[Issue]) -> Problem {
        Problem {
            errors: issues
                .iter()
                .filter(|i| i.is_error())
                .map(|i| (i.expression.clone(), i.message.clone()))
                .collect(),
            ..Problem::new(status, detail)
        }
    }

    pub fn response(&self) -> HttpResponse {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let errors: Vec<_> = self
            .errors
            .iter()
            .map(|(at, msg)| match at {
                Some(at) => json!({"at": at, "message": msg}),
                None => json!({"message": msg}),
            })
            .collect();
        let mut body = json!({
            "type": "about:blank",
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !errors.is_empty() {
            body["errors"] = json!(errors);
        }
        HttpResponse::build(self.status)
            .content_type("application/problem+json")
            .body(body.to_string())
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Problem {
        let detail = e
            .issues
            .first()
            .map(|i| i.message.clone())
            .unwrap_or_else(|| "The request failed".into());
        Problem::from_issues(e.status, detail, &e.issues)
    }
}

impl From<StoreError> for Problem {
    /// The API's writes are FHIR transactions underneath; their callers sent no
    /// Bundle, so the error is reported as the entry's own (its FHIR element path).
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Entry { source, .. } => Problem::from(*source),
            e => ApiError::from(e).into(),
        }
    }
}
