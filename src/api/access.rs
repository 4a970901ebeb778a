//! Consent on reads (issue #5, docs/consent.md "Reads"). Every handler that answers
//! with stored resources passes them through [`disclose`] with the request's caller
//! (src/auth.rs). With no caller (an open API) they pass unchecked. For an
//! authenticated caller, the resources about each patient are decided together, as a
//! notification to that caller would be (a recipient client), or let through (a
//! full-access client); then one AuditEvent per patient is written, and only once it
//! is committed does the response go out: nothing is read that is not in the ledger.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use crate::auth::{Access, Caller};
use crate::consent::ledger::{self, ReadAccess};
use crate::consent::{Decision, Outcome};
use crate::fhir::outcome::IssueCode;
use crate::fhir::search::{dates, index_entries, IndexValue};
use crate::startup::AppState;
use crate::store::disclosure::{self, Item};
use crate::store::{Guard, StoredResource, WriteOp};
use crate::topics::subscription::{recipient, RecipientSpec};

/// The FHIR restful-interaction a read is, for the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Read,
    Vread,
    HistoryInstance,
    HistoryType,
    SearchType,
    Batch,
    Operation,
}

impl Interaction {
    fn code(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::HistoryInstance => "history-instance",
            Interaction::HistoryType => "history-type",
            Interaction::SearchType => "search-type",
            Interaction::Batch => "batch",
            Interaction::Operation => "operation",
        }
    }
}

/// The resources `caller` may see, in their order, after the ledger has recorded the
/// read; `withheld` counts those left out.
#[derive(Debug)]
pub struct Disclosed {
    pub items: Vec<StoredResource>,
    pub withheld: usize,
}

pub async fn disclose(
    state: &AppState,
    caller: Option<&Caller>,
    how: Interaction,
    items: Vec<StoredResource>,
) -> Result<Disclosed, ApiError> {
    let Some(caller) = caller else {
        return Ok(Disclosed { items, withheld: 0 });
    };
    let bodies: Vec<Option<Value>> = items.iter().map(StoredResource::json).collect();
    let mut keep = vec![true; items.len()];
    // Per patient: the indexes of its items.
    let mut by_patient: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (s, body)) in items.iter().zip(&bodies).enumerate() {
        let Some(body) = body else { continue };
        if let Access::Recipient(r) = &caller.access {
            match s.rtype.as_str() {
                // The ledger is the coordinators' (the routes refuse it too).
                "AuditEvent" => keep[i] = false,
                // Another party's subscription: its channel is not the caller's.
                "Subscription" => keep[i] = names_recipient(body, r),
                _ => {}
            }
        }
        if let Some(p) = patient_of(&s.rtype, body) {
            by_patient.entry(p).or_default().push(i);
        }
    }
    let at_micros = dates::now_micros();
    let at = dates::format_instant(at_micros);
    let policy = state.settings.consent_policy();
    let mut audit = Vec::with_capacity(by_patient.len());
    for (patient, idx) in by_patient {
        let refs: Vec<String> = idx.iter().map(|i| items[*i].reference()).collect();
        let decision = match &caller.access {
            Access::Full => None,
            Access::Recipient(r) => {
                let data: Vec<Item> = idx
                    .iter()
                    .map(|i| disclosure::item_of(&items[*i].reference(), bodies[*i].as_ref()))
                    .collect();
                let out =
                    disclosure::evaluate_items(&*state.store, &patient, r, data, &at, &policy)
                        .await?;
                for (i, reference) in idx.iter().zip(&refs) {
                    keep[*i] &= permits(&out, reference);
                }
                Some(out)
            }
        };
        let (recipient, purpose) = match &caller.access {
            Access::Full => (Vec::new(), crate::consent::TREATMENT.to_owned()),
            Access::Recipient(r) => (r.references.clone(), r.purpose.clone()),
        };
        tracing::info!(client = %caller.client, patient = %patient, interaction = how.code(),
            decision = ?decision.as_ref().map(|d| d.decision), "read ledger");
        let mut unique = refs;
        unique.dedup();
        audit.push(ledger::read_event(
            &ReadAccess {
                patient,
                client: caller.client.clone(),
                recipient,
                purpose,
                interaction: how.code(),
                items: unique,
                decision,
            },
            at_micros,
        ));
    }
    if !audit.is_empty() {
        let ops = audit
            .into_iter()
            .map(|resource| WriteOp::Create {
                resource,
                if_none_exist: None,
                full_url: None,
            })
            .collect();
        state.store.commit(ops).await?;
    }
    let before = items.len();
    let items: Vec<StoredResource> = items
        .into_iter()
        .zip(keep)
        .filter_map(|(s, k)| k.then_some(s))
        .collect();
    Ok(Disclosed {
        withheld: before - items.len(),
        items,
    })
}

/// A read of one resource: 403 when the caller may not see it.
pub async fn disclose_one(
    state: &AppState,
    caller: Option<&Caller>,
    how: Interaction,
    item: StoredResource,
) -> Result<StoredResource, ApiError> {
    let reference = item.reference();
    disclose(state, caller, how, vec![item])
        .await?
        .items
        .pop()
        .ok_or_else(|| forbidden(&reference))
}

pub fn forbidden(reference: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        IssueCode::Forbidden,
        format!("{reference} may not be disclosed to this client: the patient's consent does not permit it, or it is not the client's to see"),
    )
}

fn permits(out: &Outcome, reference: &str) -> bool {
    out.decision == Decision::Permit && !out.excluded.iter().any(|x| x == reference)
}

/// Whether a Subscription names (one of) `r`'s references as its recipient.
pub fn names_recipient(subscription: &Value, r: &RecipientSpec) -> bool {
    let Some(root) = subscription.as_object() else {
        return false;
    };
    recipient::read(root, &mut Vec::new())
        .is_some_and(|spec| spec.references.iter().any(|x| r.answers_to(x)))
}

/// The patient a resource is about: a Patient itself, a Provenance's target Patient,
/// otherwise the target of the type's `patient` search parameter.
pub fn patient_of(rtype: &str, v: &Value) -> Option<String> {
    match rtype {
        "Patient" => v["id"].as_str().map(|id| format!("Patient/{id}")),
        "AuditEvent" => None,
        "Provenance" => v["target"]
            .as_array()?
            .iter()
            .filter_map(|t| t["reference"].as_str())
            .find(|r| r.starts_with("Patient/"))
            .map(str::to_owned),
        _ => index_entries(rtype, v)
            .into_iter()
            .filter(|e| e.param == "patient")
            .find_map(|e| match e.value {
                IndexValue::Ref(r) if r.starts_with("Patient/") => Some(r),
                _ => None,
            }),
    }
}

/// A recipient client's update or delete of what is stored (docs/consent.md,
/// "Reads"): only what it could read (the patient's consent decides, as for a read;
/// nothing is disclosed, so nothing goes to the ledger), of Tasks only those it owns or
/// requested, of Subscriptions only its own. A create changes nothing stored: the
/// type and subscription checks (`auth::check_recipient_write`) are all it gets.
///
/// Returns the guards to commit with the change (`store::Guard`): what was judged here
/// must still be what is stored when the change commits, or the commit fails (409).
pub async fn check_recipient_change(
    state: &AppState,
    r: &RecipientSpec,
    op: &WriteOp,
) -> Result<Vec<WriteOp>, ApiError> {
    let mut guards = Vec::new();
    let stored: Vec<StoredResource> = match op {
        WriteOp::Update { rtype, id, .. } | WriteOp::Delete { rtype, id, .. } => {
            let s = state.store.read(rtype, id).await?.filter(|s| !s.deleted);
            guards.push(WriteOp::Guard(Guard::Version {
                rtype: rtype.clone(),
                id: id.clone(),
                version: s.as_ref().map(|s| s.version),
            }));
            s.into_iter().collect()
        }
        WriteOp::ConditionalUpdate { query, .. } | WriteOp::ConditionalDelete { query } => {
            // Two are enough: more than one match fails the write anyway (412).
            let mut q = query.clone();
            (q.count, q.offset) = (2, 0);
            q.include.clear();
            let found = state.store.search(&q).await?.items;
            guards.push(WriteOp::Guard(Guard::Matches {
                ids: found.iter().map(|s| s.id.clone()).collect(),
                query: q,
            }));
            guards.extend(found.iter().map(|s| {
                WriteOp::Guard(Guard::Version {
                    rtype: s.rtype.clone(),
                    id: s.id.clone(),
                    version: Some(s.version),
                })
            }));
            found
        }
        _ => Vec::new(),
    };
    let policy = state.settings.consent_policy();
    for s in &stored {
        let Some(body) = s.json() else { continue };
        let reference = s.reference();
        let names_it = |field: &str| {
            body[field]["reference"]
                .as_str()
                .is_some_and(|x| r.answers_to(x))
        };
        let theirs = match s.rtype.as_str() {
            "Task" => names_it("owner") || names_it("requester"),
            "Subscription" => names_recipient(&body, r),
            _ => true,
        };
        if !theirs {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                IssueCode::Forbidden,
                format!("{reference} is not this client's to change: a recipient client changes only the Tasks it owns or requested and its own Subscriptions"),
            ));
        }
        let Some(patient) = patient_of(&s.rtype, &body) else {
            continue;
        };
        let at = dates::format_instant(dates::now_micros());
        let item = disclosure::item_of(&reference, Some(&body));
        let out = disclosure::evaluate_items(&*state.store, &patient, r, vec![item], &at, &policy)
            .await?;
        if !permits(&out, &reference) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                IssueCode::Forbidden,
                format!("{reference} may not be changed by this client: the patient's consent does not let it see it"),
            ));
        }
    }
    Ok(guards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_patient_of_each_kind_of_resource() {
        let cases = [
            ("Patient", json!({"id": "p"}), Some("Patient/p")),
            (
                "Task",
                json!({"for": {"reference": "Patient/p"}}),
                Some("Patient/p"),
            ),
            (
                "Encounter",
                json!({"subject": {"reference": "Patient/p"}}),
                Some("Patient/p"),
            ),
            (
                "Consent",
                json!({"patient": {"reference": "Patient/p"}}),
                Some("Patient/p"),
            ),
            (
                "Provenance",
                json!({"target": [{"reference": "Encounter/e"}, {"reference": "Patient/p"}]}),
                Some("Patient/p"),
            ),
            (
                "Encounter",
                json!({"subject": {"reference": "Group/g"}}),
                None,
            ),
            ("Organization", json!({"id": "o"}), None),
            (
                "AuditEvent",
                json!({"entity": [{"what": {"reference": "Patient/p"}}]}),
                None,
            ),
        ];
        for (t, v, want) in cases {
            assert_eq!(patient_of(t, &v).as_deref(), want, "{t} {v}");
        }
    }

    #[test]
    fn a_subscription_is_the_callers_when_it_names_one_of_its_references() {
        let spec = RecipientSpec {
            references: vec!["Organization/o".into(), "Practitioner/p".into()],
            roles: Vec::new(),
            purpose: "TREAT".into(),
        };
        let sub = |who: &str| {
            json!({"resourceType": "Subscription", "extension": [{
                "url": recipient::MANAGING_ENTITY_URL, "valueReference": {"reference": who}}]})
        };
        assert!(names_recipient(&sub("Practitioner/p"), &spec));
        assert!(!names_recipient(&sub("Practitioner/other"), &spec));
        assert!(!names_recipient(
            &json!({"resourceType": "Subscription"}),
            &spec
        ));
    }
}
