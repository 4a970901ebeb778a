//! `POST /fhir` with a transaction Bundle (all or nothing, one store commit) or a batch
//! Bundle (each entry committed on its own).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::context::{parse_query, resource_body, Ctx, Return};
use super::error::ApiError;
use super::rest::{
    check_body_type, check_id, check_profiles, check_type, ctx_or_return, location, parse_etag,
    State,
};
use crate::fhir::outcome::{operation_outcome, rebase, IssueCode};
use crate::fhir::profiles::LocalRefs;
use crate::fhir::search::{dates, query};
use crate::store::{StoreError, StoredResource, WriteOp, WriteOutcome};

enum Action {
    Write(WriteOp),
    Read {
        rtype: String,
        id: String,
        version: Option<i64>,
    },
}

pub async fn post(req: HttpRequest, payload: web::Payload, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let bundle = resource_body(&req, payload, &state).await?;
        check_body_type(&bundle, "Bundle")?;
        let kind = bundle
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let entries = bundle
            .get("entry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match kind.as_str() {
            "transaction" => transaction(&ctx, &state, entries).await,
            "batch" => batch(&ctx, &state, entries).await,
            other => Err(ApiError::bad_request(
                IssueCode::NotSupported,
                format!("POST /fhir takes a transaction or batch Bundle, not '{other}'"),
            )),
        }
    }
    .await;
    ctx.finish(r)
}

/// An entry's error, its issues placed in the Bundle: those about the entry's resource
/// (`Encounter.period.end`) under `Bundle.entry[i].resource`.
fn entry_error(index: usize, entry: &Value, e: ApiError) -> ApiError {
    let mut e = e;
    if let Some(rtype) = entry["resource"]["resourceType"].as_str() {
        rebase(&mut e.issues, rtype, "resource");
    }
    for i in &mut e.issues {
        i.expression = Some(match &i.expression {
            Some(x) => format!("Bundle.entry[{index}].{x}"),
            None => format!("Bundle.entry[{index}]"),
        });
    }
    e
}

/// One entry's request as an action. `base` lets absolute URLs on this server through.
/// A resource to write must meet the profiles it claims; `local` gives the types of
/// the Bundle's other entries for references between them.
fn action(ctx: &Ctx, state: &State, entry: &Value, local: &LocalRefs) -> Result<Action, ApiError> {
    let bad = |code, msg: &str| ApiError::bad_request(code, msg.to_owned());
    let request = entry
        .get("request")
        .ok_or_else(|| bad(IssueCode::Required, "The entry has no request"))?;
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = request
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let url = raw.strip_prefix(&format!("{}/", ctx.base)).unwrap_or(raw);
    let (path, qs) = url.split_once('?').unwrap_or((url, ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rtype = segments.first().copied().unwrap_or_default().to_owned();
    check_type(&rtype)?;
    let resource = entry.get("resource").cloned();
    let full_url = entry
        .get("fullUrl")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let if_match = request
        .get("ifMatch")
        .and_then(Value::as_str)
        .map(parse_etag)
        .transpose()?;
    let need_resource = |r: Option<Value>| -> Result<Value, ApiError> {
        let r = r.ok_or_else(|| bad(IssueCode::Required, "The entry has no resource"))?;
        check_body_type(&r, &rtype)?;
        Ok(r)
    };
    let conditional = |what: &str| -> Result<_, ApiError> {
        let pairs = parse_query(qs);
        if pairs.is_empty() {
            return Err(bad(
                IssueCode::Required,
                &format!("{what} needs search criteria"),
            ));
        }
        query::parse(&rtype, &pairs, false).map_err(ApiError::invalid)
    };
    let action = match (method, segments.len(), qs.is_empty()) {
        ("POST", 1, true) => {
            let if_none_exist = request
                .get("ifNoneExist")
                .and_then(Value::as_str)
                .map(|q| {
                    query::parse(&rtype, &parse_query(q.trim_start_matches('?')), false)
                        .map_err(ApiError::invalid)
                })
                .transpose()?;
            Action::Write(WriteOp::Create {
                resource: need_resource(resource)?,
                if_none_exist,
                full_url,
            })
        }
        ("PUT", 2, true) => {
            let id = segments[1].to_owned();
            check_id(&id)?;
            let resource = need_resource(resource)?;
            if resource.get("id").and_then(Value::as_str) != Some(id.as_str()) {
                return Err(bad(
                    IssueCode::Invalid,
                    "The resource id must equal the id in request.url",
                ));
            }
            Action::Write(WriteOp::Update {
                rtype,
                id,
                resource,
                if_match,
                full_url,
            })
        }
        ("PUT", 1, false) => Action::Write(WriteOp::ConditionalUpdate {
            query: conditional("A conditional update")?,
            resource: need_resource(resource)?,
            full_url,
        }),
        ("DELETE", 2, true) => {
            let id = segments[1].to_owned();
            check_id(&id)?;
            Action::Write(WriteOp::Delete {
                rtype,
                id,
                if_match,
            })
        }
        ("DELETE", 1, false) => Action::Write(WriteOp::ConditionalDelete {
            query: conditional("A conditional delete")?,
        }),
        ("GET", 2, true) => {
            check_id(segments[1])?;
            Action::Read {
                rtype,
                id: segments[1].to_owned(),
                version: None,
            }
        }
        ("GET", 4, true) if segments[2] == "_history" => {
            check_id(segments[1])?;
            let v = segments[3]
                .parse()
                .map_err(|_| bad(IssueCode::Value, "Version ids are integers"))?;
            Action::Read {
                rtype,
                id: segments[1].to_owned(),
                version: Some(v),
            }
        }
        _ => {
            return Err(bad(
                IssueCode::NotSupported,
                "Unsupported entry request (method and url)",
            ))
        }
    };
    if let Action::Write(
        WriteOp::Create { resource, .. }
        | WriteOp::Update { resource, .. }
        | WriteOp::ConditionalUpdate { resource, .. },
    ) = &action
    {
        check_profiles(state, resource, local)?;
    }
    Ok(action)
}

async fn transaction(
    ctx: &Ctx,
    state: &State,
    entries: Vec<Value>,
) -> Result<HttpResponse, ApiError> {
    // fullUrl -> resource type, for references between entries (`urn:uuid:`).
    let local: LocalRefs = entries
        .iter()
        .filter_map(|e| {
            let url = e["fullUrl"].as_str()?;
            let rtype = e["resource"]["resourceType"].as_str()?;
            Some((url.to_owned(), rtype.to_owned()))
        })
        .collect();
    let mut actions = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        actions.push(action(ctx, state, e, &local).map_err(|err| entry_error(i, e, err))?);
    }
    // Writes commit together; reads run afterwards and see them.
    let write_ix: Vec<usize> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Action::Write(_)))
        .map(|(i, _)| i)
        .collect();
    let mut ops = Vec::with_capacity(write_ix.len());
    let mut reads = Vec::new();
    for (i, a) in actions.into_iter().enumerate() {
        match a {
            Action::Write(op) => ops.push(op),
            Action::Read { rtype, id, version } => reads.push((i, rtype, id, version)),
        }
    }
    let mut guards = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        match super::subscriptions::check_write(state, ctx.caller.as_deref(), op).await {
            Ok(g) => guards.extend(g),
            Err(mut e) => {
                let at = format!(
                    "Bundle.entry[{}].resource",
                    write_ix.get(k).copied().unwrap_or(k)
                );
                crate::fhir::outcome::rebase(&mut e.issues, "Subscription", &at);
                for issue in &mut e.issues {
                    issue.expression.get_or_insert_with(|| at.clone());
                }
                return Err(e);
            }
        }
    }
    // After the entries: the outcomes come back for the entries alone, in order.
    ops.extend(guards);
    let outcomes = if ops.is_empty() {
        Vec::new()
    } else {
        state.store.commit(ops).await.map_err(|e| match e {
            StoreError::Entry { index, source } => StoreError::Entry {
                index: write_ix.get(index).copied().unwrap_or(index),
                source,
            },
            other if write_ix.len() == 1 => StoreError::Entry {
                index: write_ix[0],
                source: Box::new(other),
            },
            other => other,
        })?
    };
    let mut out: Vec<Value> = vec![Value::Null; entries.len()];
    for (i, o) in write_ix.into_iter().zip(outcomes) {
        out[i] = outcome_entry(ctx, o);
    }
    for (i, rtype, id, version) in reads {
        out[i] = read_entry(ctx, state, &rtype, &id, version)
            .await
            .unwrap_or_else(|e| error_entry(ctx, e));
    }
    tracing::info!(entries = out.len(), "transaction committed");
    Ok(ctx.resource(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "transaction-response", "entry": out}),
    ))
}

async fn batch(ctx: &Ctx, state: &State, entries: Vec<Value>) -> Result<HttpResponse, ApiError> {
    let mut out = Vec::with_capacity(entries.len());
    for e in &entries {
        let entry = match action(ctx, state, e, &LocalRefs::new()) {
            Err(err) => error_entry(ctx, err),
            Ok(Action::Read { rtype, id, version }) => read_entry(ctx, state, &rtype, &id, version)
                .await
                .unwrap_or_else(|e| error_entry(ctx, e)),
            Ok(Action::Write(op)) => {
                match super::subscriptions::check_write(state, ctx.caller.as_deref(), &op).await {
                    Err(err) => error_entry(ctx, err),
                    Ok(guards) => match state.store.commit([vec![op], guards].concat()).await {
                        Ok(mut o) => o
                            .pop()
                            .map(|o| outcome_entry(ctx, o))
                            .unwrap_or(Value::Null),
                        Err(err) => error_entry(ctx, err.into()),
                    },
                }
            }
        };
        out.push(entry);
    }
    Ok(ctx.resource(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "batch-response", "entry": out}),
    ))
}

fn status_line(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
}

fn stored_entry(ctx: &Ctx, status: StatusCode, s: &StoredResource) -> Value {
    let mut e = json!({
        "fullUrl": format!("{}/{}/{}", ctx.base, s.rtype, s.id),
        "response": {
            "status": status_line(status),
            "location": location(ctx, s),
            "etag": format!("W/\"{}\"", s.version),
            "lastModified": dates::format_instant(s.last_updated),
        }
    });
    if ctx.ret == Return::Representation {
        if let Some(v) = s.json() {
            e["resource"] = v;
        }
    }
    e
}

fn outcome_entry(ctx: &Ctx, o: WriteOutcome) -> Value {
    match o {
        WriteOutcome::Created(s) => stored_entry(ctx, StatusCode::CREATED, &s),
        WriteOutcome::Updated(s) | WriteOutcome::Existing(s) => {
            stored_entry(ctx, StatusCode::OK, &s)
        }
        WriteOutcome::Deleted { version, .. } => {
            let mut r = json!({"status": status_line(StatusCode::NO_CONTENT)});
            if let Some(v) = version {
                r["etag"] = json!(format!("W/\"{v}\""));
            }
            json!({ "response": r })
        }
        WriteOutcome::Claimed(_)
        | WriteOutcome::Finished(_)
        | WriteOutcome::Queued(_)
        | WriteOutcome::Swept(_)
        | WriteOutcome::Pruned(_) => error_entry(ctx, super::rest::internal_outcome()),
    }
}

fn error_entry(_ctx: &Ctx, e: ApiError) -> Value {
    json!({"response": {"status": status_line(e.status), "outcome": operation_outcome(&e.issues)}})
}

async fn read_entry(
    ctx: &Ctx,
    state: &State,
    rtype: &str,
    id: &str,
    version: Option<i64>,
) -> Result<Value, ApiError> {
    let s = match version {
        Some(v) => state.store.vread(rtype, id, v).await?,
        None => state.store.read(rtype, id).await?,
    }
    .ok_or_else(|| ApiError::not_found(format!("{rtype}/{id} is not known")))?;
    let s = super::access::disclose_one(
        state,
        ctx.caller.as_deref(),
        super::access::Interaction::Batch,
        s,
    )
    .await?;
    if s.deleted {
        return Err(ApiError::new(
            StatusCode::GONE,
            IssueCode::Deleted,
            format!("{rtype}/{id} was deleted"),
        ));
    }
    let mut e = stored_entry(ctx, StatusCode::OK, &s);
    e["resource"] = s.json().unwrap_or(Value::Null);
    e["response"].as_object_mut().map(|r| r.remove("location"));
    Ok(e)
}
