//! A record written through the internal API becomes FHIR writes: the resources it is
//! rendered to, overlaid on the stored versions (so what the record does not model is
//! kept), committed in one transaction. The store then derives the record from those
//! resources, exactly as for a FHIR client's write: one path, one set of rules.

use actix_web::http::StatusCode;
use serde_json::Value;

use super::problem::Problem;
use crate::fhir::validate::validate;
use crate::records::Record;
use crate::startup::AppState;
use crate::store::{StoredResource, WriteOp};

/// Check a rendered resource against the R4 base definitions: the record must always
/// render to valid FHIR; anything else is the caller's data at fault.
fn checked(resource: Value) -> Result<Value, Problem> {
    let issues = validate(&resource);
    if issues.iter().any(|i| i.is_error()) {
        let rtype = resource["resourceType"].as_str().unwrap_or("resource");
        return Err(Problem::from_issues(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The record does not make a valid FHIR R4 {rtype}"),
            &issues,
        ));
    }
    Ok(resource)
}

async fn stored(state: &AppState, rtype: &str, id: &str) -> Result<StoredResource, Problem> {
    match state.store.read(rtype, id).await? {
        Some(s) if !s.deleted => Ok(s),
        _ => Err(Problem::not_found(format!("{rtype}/{id} is not stored"))),
    }
}

/// The writes creating `record` (which has no id yet).
pub fn create_ops(record: &Record) -> Result<Vec<WriteOp>, Problem> {
    let create = |resource: Value, full_url: Option<String>| -> Result<WriteOp, Problem> {
        Ok(WriteOp::Create {
            resource: checked(resource)?,
            if_none_exist: None,
            full_url,
        })
    };
    Ok(match record {
        Record::Referral(r) => {
            let url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
            let mut ops = vec![create(r.to_service_request(None), Some(url.clone()))?];
            if let Some(task) = r.to_task(None, &url) {
                ops.push(create(task, None)?);
            }
            ops
        }
        Record::Transition(t) => vec![create(t.to_encounter(None), None)?],
        Record::CarePlan(c) => vec![create(c.to_care_plan(None), None)?],
        Record::Consent(c) => vec![create(c.to_consent(None), None)?],
    })
}

/// The writes updating the stored resources of record `id` to say `record`. Each is
/// conditional on the version read, so a concurrent change fails rather than being lost.
pub async fn update_ops(
    state: &AppState,
    id: &str,
    record: &Record,
) -> Result<Vec<WriteOp>, Problem> {
    let rtype = record.kind().resource_type();
    let base = stored(state, rtype, id).await?;
    let update = |s: &StoredResource, resource: Value| -> Result<WriteOp, Problem> {
        Ok(WriteOp::Update {
            rtype: s.rtype.clone(),
            id: s.id.clone(),
            resource: checked(resource)?,
            if_match: Some(s.version),
            full_url: None,
        })
    };
    let mut ops = Vec::new();
    match record {
        Record::Referral(r) => {
            ops.push(update(&base, r.to_service_request(base.json()))?);
            let focus = format!("ServiceRequest/{id}");
            match &r.task {
                Some(link) => {
                    let task = stored(state, "Task", &link.id).await?;
                    if let Some(t) = r.to_task(task.json(), &focus) {
                        ops.push(update(&task, t)?);
                    }
                }
                None => {
                    if let Some(t) = r.to_task(None, &focus) {
                        ops.push(WriteOp::Create {
                            resource: checked(t)?,
                            if_none_exist: None,
                            full_url: None,
                        });
                    }
                }
            }
        }
        Record::Transition(t) => ops.push(update(&base, t.to_encounter(base.json()))?),
        Record::CarePlan(c) => ops.push(update(&base, c.to_care_plan(base.json()))?),
        Record::Consent(c) => ops.push(update(&base, c.to_consent(base.json()))?),
    }
    Ok(ops)
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge_patch(&mut t, &json!({"a": [3], "n": {"x": 1}}));
        assert_eq!(t, json!({"a": [3], "n": {"x": 1}}));
    }
}
