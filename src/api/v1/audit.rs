//! Reads through the internal API in the ledger. Only full-access clients reach
//! `/api` (recipients get 403), so each read is a use, as their FHIR reads are
//! (docs/consent.md, "Reads"): one AuditEvent per patient the response holds data
//! about, type rest, naming the client and what was read, committed before the
//! response goes out. With no clients configured (an open API) nothing is audited,
//! as on the FHIR side.

use std::collections::BTreeMap;

use actix_web::HttpRequest;

use super::problem::Problem;
use crate::auth::Access;
use crate::consent::ledger::{self, ReadAccess};
use crate::fhir::search::dates;
use crate::startup::AppState;
use crate::store::WriteOp;

/// Record the read of `seen`: `(patient, what)` pairs, `what` the FHIR reference the
/// data comes from (a record's resource, a handoff's Task, an event's resource).
/// Pairs with no patient are about nobody and are not recorded.
pub async fn uses(
    req: &HttpRequest,
    state: &AppState,
    interaction: &'static str,
    seen: impl IntoIterator<Item = (Option<String>, String)>,
) -> Result<(), Problem> {
    let Some(caller) = crate::api::auth::caller_of(req) else {
        return Ok(());
    };
    if !matches!(caller.access, Access::Full) {
        return Ok(()); // never reached: recipients are refused /api
    }
    let mut by_patient: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (patient, what) in seen {
        if let Some(p) = patient.filter(|p| p.starts_with("Patient/")) {
            let items = by_patient.entry(p).or_default();
            if !items.contains(&what) {
                items.push(what);
            }
        }
    }
    if by_patient.is_empty() {
        return Ok(());
    }
    let at = dates::now_micros();
    let ops = by_patient
        .into_iter()
        .map(|(patient, items)| {
            tracing::info!(client = %caller.client, patient = %patient, interaction, "internal API read ledger");
            let access = ReadAccess {
                patient,
                client: caller.client.clone(),
                recipient: Vec::new(),
                purpose: crate::consent::TREATMENT.to_owned(),
                interaction,
                items,
                decision: None,
            };
            WriteOp::Create {
                resource: ledger::read_event(&access, at),
                if_none_exist: None,
                full_url: None,
            }
        })
        .collect();
    state.store.commit(ops).await?;
    Ok(())
}

/// A record's JSON as a `(patient, what)` pair: its patient and the resource it is
/// kept from (`Type/id`, the record's id).
pub fn of_record(
    kind: crate::records::RecordKind,
    record: &serde_json::Value,
) -> (Option<String>, String) {
    let p = &record["patient"];
    let patient = p["reference"].as_str().or(p.as_str()).map(str::to_owned);
    let id = record["id"].as_str().unwrap_or_default();
    (patient, format!("{}/{id}", kind.resource_type()))
}
