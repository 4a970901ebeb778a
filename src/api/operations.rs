//! FHIR operations. `$validate` checks a resource without storing it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::context::{body_format, check_resource, read_body};
use super::rest::{check_body_type, check_type, ctx_or_return, State};
use crate::fhir::outcome::{rebase, Issue, IssueCode};

/// `POST /fhir/{type}/$validate`: the body is the resource, or a Parameters with a
/// `resource` parameter and optional `profile` parameters (also `?profile=`). The
/// answer is 200 with an OperationOutcome listing every issue found (or one
/// informational issue): a validation result, not a failed request. Validation is
/// against the R4 base definitions, the profiles asked for (one this server does not
/// know is an error issue) and the loaded profiles the resource claims in
/// meta.profile. Profiles are checked even when the base validation found errors, as
/// long as the body could be read as JSON.
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
        let fmt = body_format(&req)?;
        let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
        let (value, mut issues) = match check_resource(&state, body, fmt).await {
            Err(e) if e.status == StatusCode::BAD_REQUEST => (None, e.issues),
            Err(e) => return Err(e),
            Ok(checked) => checked,
        };
        let mut requested: Vec<String> = ctx
            .query
            .iter()
            .filter(|(k, _)| k == "profile")
            .map(|(_, v)| v.clone())
            .collect();
        let mut checked = Vec::new();
        if let Some(value) = &value {
            let (resource, at) = unwrap(value, &rtype, &mut issues, &mut requested);
            if let Some(resource) = resource {
                if let Err(e) = check_body_type(resource, &rtype) {
                    issues.extend(e.issues);
                }
                let (mut found, names) = state.profiles.report(resource, &requested);
                if let Some(at) = at {
                    let root = resource["resourceType"].as_str().unwrap_or_default();
                    rebase(&mut found, root, &at);
                }
                issues.extend(found);
                checked = names;
            }
        }
        let issues = crate::fhir::validation_report(issues, &checked);
        tracing::info!(rtype = %rtype, issues = issues.len(), profiles = checked.len(), "validated");
        Ok(ctx.resource(
            StatusCode::OK,
            &crate::fhir::outcome::operation_outcome(&issues),
        ))
    }
    .await;
    ctx.finish(r)
}

/// The resource to validate: the body itself, or a Parameters' `resource` (with where
/// it sits, and its `profile` parameters added to `requested`).
fn unwrap<'a>(
    value: &'a Value,
    rtype: &str,
    issues: &mut Vec<Issue>,
    requested: &mut Vec<String>,
) -> (Option<&'a Value>, Option<String>) {
    if rtype == "Parameters" || value["resourceType"] != "Parameters" {
        return (Some(value), None);
    }
    let params = value["parameter"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for p in params.iter().filter(|p| p["name"] == "profile") {
        let url = ["valueUri", "valueCanonical", "valueString"]
            .iter()
            .find_map(|k| p[*k].as_str());
        match url {
            Some(u) => requested.push(u.to_owned()),
            None => issues.push(
                Issue::error(IssueCode::Required, "The profile parameter has no valueUri")
                    .at("Parameters.parameter"),
            ),
        }
    }
    match params
        .iter()
        .position(|p| p["name"] == "resource" && p["resource"].is_object())
    {
        Some(i) => (
            Some(&params[i]["resource"]),
            Some(format!("Parameters.parameter[{i}].resource")),
        ),
        None => {
            issues.push(
                Issue::error(
                    IssueCode::Required,
                    "Parameters has no 'resource' parameter holding a resource",
                )
                .at("Parameters.parameter"),
            );
            (None, None)
        }
    }
}
