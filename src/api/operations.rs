//! FHIR operations. `$validate` checks a resource without storing it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::context::resource_body;
use super::error::ApiError;
use super::rest::{check_body_type, check_type, ctx_or_return, State};
use crate::fhir::outcome::{Issue, IssueCode};

/// `POST /fhir/{type}/$validate`: the body is the resource, or a Parameters with a
/// `resource` parameter. The answer is 200 with an OperationOutcome listing every
/// issue found (or one informational issue): a validation result, not a failed
/// request. Validation is against the R4 base definitions; a `profile` parameter is
/// reported as not checked (profiles arrive with issue #3).
pub async fn validate(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let rtype = path.into_inner();
        check_type(&rtype)?;
        let issues = match resource_body(&req, payload, &state).await {
            Err(e) if e.status == StatusCode::BAD_REQUEST => e.issues,
            Err(e) => return Err(e),
            Ok(value) => check_parsed(&value, &rtype),
        };
        let issues = crate::fhir::validation_report(issues);
        tracing::info!(rtype = %rtype, issues = issues.len(), "validated");
        Ok(ctx.resource(
            StatusCode::OK,
            &crate::fhir::outcome::operation_outcome(&issues),
        ))
    }
    .await;
    ctx.finish(r)
}

/// Issues for a body that parsed: the right type, and Parameters unwrapped.
fn check_parsed(value: &Value, rtype: &str) -> Vec<Issue> {
    if rtype != "Parameters" && value["resourceType"] == "Parameters" {
        let params = value["parameter"].as_array().cloned().unwrap_or_default();
        let mut issues = Vec::new();
        if params.iter().any(|p| p["name"] == "profile") {
            issues.push(Issue::warning(
                IssueCode::NotSupported,
                "The profile parameter was not checked: only the R4 base definitions are enforced so far",
            ));
        }
        match params
            .iter()
            .find(|p| p["name"] == "resource")
            .map(|p| &p["resource"])
        {
            Some(resource @ Value::Object(_)) => {
                if let Err(e) = check_body_type(resource, rtype) {
                    issues.extend(e.issues);
                }
            }
            _ => issues.push(
                Issue::error(
                    IssueCode::Required,
                    "Parameters has no 'resource' parameter holding a resource",
                )
                .at("Parameters.parameter"),
            ),
        }
        return issues;
    }
    check_body_type(value, rtype)
        .err()
        .map(|e: ApiError| e.issues)
        .unwrap_or_default()
}
