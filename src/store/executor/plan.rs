//! Resolving each op of a commit to what it will do (the executor's first phase):
//! conditional matches found, `If-Match` checked, current versions read (and on
//! PostgreSQL locked), before anything is written.

use super::{new_id, Plan, Tx};
use crate::fhir::search::SearchQuery;
use crate::store::{StoreError, WriteOp};
use serde_json::Value;

pub(super) async fn plan<T: Tx>(
    tx: &mut T,
    op: WriteOp,
) -> Result<(Plan, Option<String>), StoreError> {
    Ok(match op {
        WriteOp::Create {
            resource,
            if_none_exist,
            full_url,
        } => {
            let rtype = resource_type(&resource)?;
            if let Some(q) = if_none_exist {
                tx.lock_conditional(&rtype).await?;
                if let Some(id) = single_match(tx, &q).await? {
                    let existing = tx
                        .load(&rtype, &id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
                    return Ok((Plan::Existing(existing), full_url));
                }
            }
            let id = new_id();
            (
                Plan::Write {
                    rtype,
                    id,
                    resource,
                    prior: None,
                    created: true,
                },
                full_url,
            )
        }
        WriteOp::Update {
            rtype,
            id,
            resource,
            if_match,
            full_url,
        } => {
            let prior = tx.current(&rtype, &id).await?;
            check_if_match(&rtype, &id, if_match, prior)?;
            update(rtype, id, resource, prior, full_url)
        }
        WriteOp::ConditionalUpdate {
            query,
            resource,
            full_url,
        } => {
            let rtype = query.rtype.clone();
            tx.lock_conditional(&rtype).await?;
            let body_id = resource
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let id = match single_match(tx, &query).await? {
                Some(found) => {
                    if body_id.as_deref().is_some_and(|b| b != found) {
                        return Err(StoreError::Conflict(format!(
                            "The conditional update matched {rtype}/{found} but the body has another id"
                        )));
                    }
                    found
                }
                None => body_id.unwrap_or_else(new_id),
            };
            let prior = tx.current(&rtype, &id).await?;
            update(rtype, id, resource, prior, full_url)
        }
        WriteOp::Delete {
            rtype,
            id,
            if_match,
        } => {
            let prior = tx.current(&rtype, &id).await?;
            check_if_match(&rtype, &id, if_match, prior)?;
            (Plan::Delete { rtype, id, prior }, None)
        }
        WriteOp::Outbox(_) | WriteOp::Handoffs(_) | WriteOp::PruneHl7 { .. } => {
            return Err(StoreError::Conflict(
                "server-internal work cannot be part of a transaction".into(),
            ))
        }
        WriteOp::Hl7(r) => (Plan::Hl7(Box::new(r)), None),
        WriteOp::Guard(_) => {
            return Err(StoreError::Conflict("a guard is held, not planned".into()))
        }
        WriteOp::ConditionalDelete { query } => {
            tx.lock_conditional(&query.rtype).await?;
            match single_match(tx, &query).await? {
                Some(id) => {
                    let prior = tx.current(&query.rtype, &id).await?;
                    (
                        Plan::Delete {
                            rtype: query.rtype,
                            id,
                            prior,
                        },
                        None,
                    )
                }
                None => (
                    Plan::Delete {
                        rtype: query.rtype,
                        id: String::new(),
                        prior: None,
                    },
                    None,
                ),
            }
        }
    })
}

async fn single_match<T: Tx>(tx: &mut T, q: &SearchQuery) -> Result<Option<String>, StoreError> {
    let mut ids = tx.find(q, 2).await?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.pop()),
        _ => Err(StoreError::PreconditionFailed(format!(
            "The conditional request matched more than one {} resource",
            q.rtype
        ))),
    }
}

fn check_if_match(
    rtype: &str,
    id: &str,
    if_match: Option<i64>,
    prior: Option<(i64, bool)>,
) -> Result<(), StoreError> {
    match (if_match, prior) {
        (None, _) => Ok(()),
        (Some(want), Some((have, false))) if want == have => Ok(()),
        (Some(want), Some((have, _))) => Err(StoreError::PreconditionFailed(format!(
            "If-Match names version {want} of {rtype}/{id} but the current version is {have}"
        ))),
        (Some(_), None) => Err(StoreError::PreconditionFailed(format!(
            "{rtype}/{id} does not exist (If-Match given)"
        ))),
    }
}

pub(super) fn resource_type(resource: &Value) -> Result<String, StoreError> {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Conflict("resource has no resourceType".into()))
}

/// The plan of an update of `rtype/id` (which creates it when `prior` is None).
fn update(
    rtype: String,
    id: String,
    resource: Value,
    prior: Option<(i64, bool)>,
    full_url: Option<String>,
) -> (Plan, Option<String>) {
    let plan = Plan::Write {
        rtype,
        id,
        resource,
        prior,
        created: false,
    };
    (plan, full_url)
}
