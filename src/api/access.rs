//! The read hook of consent enforcement (issue #5, docs/consent.md "Reads"). There is
//! no authentication yet, so no request carries a caller and nothing is enforced on
//! reads: read and search call [`check_read`] with `None`, which lets everything
//! through. Once authentication lands, the authenticated client's identity becomes a
//! [`Caller`] and the same call decides each resource about a patient as a
//! disclosure to that caller.

use actix_web::http::StatusCode;

use super::error::ApiError;
use crate::consent::Decision;
use crate::fhir::outcome::IssueCode;
use crate::fhir::search::dates;
use crate::startup::AppState;
use crate::store::disclosure::{self, Question};
use crate::store::StoredResource;
use crate::topics::subscription::RecipientSpec;

/// Who reads: every reference the caller answers to, the roles it reads in and the
/// purpose of use. Nothing builds one yet (no authentication).
#[derive(Debug, Clone)]
pub struct Caller {
    pub recipient: RecipientSpec,
}

/// The resources `caller` may see, in order. `None` (every request today): all of
/// them, unchecked.
pub async fn check_read(
    state: &AppState,
    caller: Option<&Caller>,
    items: Vec<StoredResource>,
) -> Result<Vec<StoredResource>, ApiError> {
    let Some(caller) = caller else {
        return Ok(items);
    };
    let policy = state.settings.consent_policy();
    let at = dates::format_instant(dates::now_micros());
    let mut allowed = Vec::with_capacity(items.len());
    for s in items {
        let Some(patient) = s.json().as_ref().and_then(patient_of) else {
            allowed.push(s);
            continue;
        };
        let q = Question {
            patient,
            recipient: caller.recipient.clone(),
            data: vec![s.reference()],
            at: at.clone(),
        };
        if disclosure::evaluate(&*state.store, &q, &policy)
            .await?
            .decision
            == Decision::Permit
        {
            allowed.push(s);
        }
    }
    Ok(allowed)
}

/// A read of one resource: 403 when the caller may not see it.
pub async fn check_one(
    state: &AppState,
    caller: Option<&Caller>,
    item: StoredResource,
) -> Result<StoredResource, ApiError> {
    let reference = item.reference();
    check_read(state, caller, vec![item])
        .await?
        .pop()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                IssueCode::Forbidden,
                format!(
                    "The patient's consent does not permit disclosing {reference} to the caller"
                ),
            )
        })
}

/// The patient a resource is about: itself, or its `patient` / `subject` reference to
/// a Patient.
fn patient_of(v: &serde_json::Value) -> Option<String> {
    if v["resourceType"] == "Patient" {
        return v["id"].as_str().map(|id| format!("Patient/{id}"));
    }
    ["patient", "subject"]
        .iter()
        .filter_map(|k| v[*k]["reference"].as_str())
        .find(|r| r.starts_with("Patient/"))
        .map(str::to_owned)
}
