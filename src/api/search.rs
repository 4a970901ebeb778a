//! Search (GET and POST `_search`), history at three levels, and `metadata`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::access::{self, Interaction};
use super::context::{parse_query, read_body, Ctx};
use super::error::ApiError;
use super::rest::{check_id, check_type, ctx_or_return, State};
use crate::fhir::capability::capability_statement;
use crate::fhir::outcome::{operation_outcome, IssueCode};
use crate::fhir::search::query::{self, DEFAULT_COUNT, MAX_COUNT};
use crate::fhir::search::{dates, index_entries, IndexValue, SearchQuery};
use crate::store::{HistoryQuery, StoredResource};

pub async fn metadata(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    ctx.resource(
        StatusCode::OK,
        &capability_statement(&ctx.base, &state.profiles),
    )
}

pub async fn search_get(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let pairs = ctx.query.clone();
    let r = search(&ctx, &state, &path.into_inner(), pairs).await;
    ctx.finish(r)
}

/// `POST [type]/_search`: parameters in a form body, plus any in the URL.
pub async fn search_post(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
        let form = std::str::from_utf8(&body).map_err(|_| {
            ApiError::bad_request(
                IssueCode::Structure,
                "The _search body must be form-encoded text",
            )
        })?;
        let mut pairs = ctx.query.clone();
        pairs.extend(parse_query(form));
        search(&ctx, &state, &path.into_inner(), pairs).await
    }
    .await;
    ctx.finish(r)
}

async fn search(
    ctx: &Ctx,
    state: &State,
    rtype: &str,
    pairs: Vec<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    check_type(rtype)?;
    let q = query::parse(rtype, &pairs, ctx.lenient).map_err(ApiError::invalid)?;
    let page = state.store.search(&q).await?;
    let matches = page.items.len();
    let mut found = page.items;
    if !q.include.is_empty() {
        let refs = include_refs(&q, &found);
        found.extend(state.store.read_many(&refs).await?);
    }
    // Consent on reads: each resource about a patient decided for the caller, and
    // the read in the ledger, before anything is answered (access.rs).
    let how = Interaction::SearchType;
    let shown = access::disclose(state, ctx.caller.as_deref(), how, found.clone()).await?;
    let mut entries: Vec<Value> = Vec::with_capacity(shown.items.len());
    let mut shown_iter = shown.items.iter().peekable();
    for (i, s) in found.iter().enumerate() {
        if shown_iter.peek().is_some_and(|k| same(k, s)) {
            shown_iter.next();
            entries.push(entry(ctx, s, if i < matches { "match" } else { "include" }));
        }
    }
    if !q.ignored.is_empty() {
        entries.push(
            json!({"resource": operation_outcome(&q.ignored), "search": {"mode": "outcome"}}),
        );
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links(ctx, &q, page.total),
    });
    // A total counting what the caller may not see would tell of it.
    if shown.withheld == 0 {
        bundle["total"] = json!(page.total);
    }
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(ctx.resource(StatusCode::OK, &bundle))
}

fn same(a: &StoredResource, b: &StoredResource) -> bool {
    a.rtype == b.rtype && a.id == b.id && a.version == b.version
}

fn entry(ctx: &Ctx, s: &StoredResource, mode: &str) -> Value {
    json!({
        "fullUrl": format!("{}/{}/{}", ctx.base, s.rtype, s.id),
        "resource": s.json().unwrap_or(Value::Null),
        "search": {"mode": mode},
    })
}

/// Targets of the `_include`d references of the matches, each once.
fn include_refs(q: &SearchQuery, items: &[StoredResource]) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    for s in items {
        let Some(v) = s.json() else { continue };
        for e in index_entries(&s.rtype, &v) {
            let IndexValue::Ref(target) = e.value else {
                continue;
            };
            let wanted = q.include.iter().any(|inc| {
                inc.param == e.param
                    && inc
                        .target
                        .as_deref()
                        .is_none_or(|t| target.starts_with(&format!("{t}/")))
            });
            if wanted && !refs.contains(&target) {
                refs.push(target);
            }
        }
    }
    refs
}

fn links(ctx: &Ctx, q: &SearchQuery, total: u64) -> Vec<Value> {
    let url = |offset: usize| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &q.canonical {
            ser.append_pair(k, v);
        }
        ser.append_pair("_count", &q.count.to_string());
        ser.append_pair("_offset", &offset.to_string());
        format!("{}/{}?{}", ctx.base, q.rtype, ser.finish())
    };
    let mut links = vec![
        json!({"relation": "self", "url": url(q.offset)}),
        json!({"relation": "first", "url": url(0)}),
    ];
    if q.count > 0 && ((q.offset + q.count) as u64) < total {
        links.push(json!({"relation": "next", "url": url(q.offset + q.count)}));
    }
    if q.offset > 0 {
        links.push(json!({"relation": "previous", "url": url(q.offset.saturating_sub(q.count))}));
    }
    links
}

pub async fn history_system(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = history(&ctx, &state, None, None).await;
    ctx.finish(r)
}

pub async fn history_type(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let rtype = path.into_inner();
    let r = async {
        check_type(&rtype)?;
        history(&ctx, &state, Some(rtype), None).await
    }
    .await;
    ctx.finish(r)
}

pub async fn history_instance(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let (rtype, id) = path.into_inner();
    let r = async {
        check_type(&rtype)?;
        check_id(&id)?;
        if state.store.read(&rtype, &id).await?.is_none() {
            return Err(ApiError::not_found(format!("{rtype}/{id} is not known")));
        }
        history(&ctx, &state, Some(rtype), Some(id)).await
    }
    .await;
    ctx.finish(r)
}

async fn history(
    ctx: &Ctx,
    state: &State,
    rtype: Option<String>,
    id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let mut hq = HistoryQuery {
        rtype,
        id,
        since: None,
        count: DEFAULT_COUNT,
        offset: 0,
    };
    for (k, v) in &ctx.query {
        let bad = |what: &str| {
            ApiError::bad_request(IssueCode::Value, format!("{what} has an invalid value"))
        };
        match k.as_str() {
            "_count" => {
                hq.count = v
                    .parse::<usize>()
                    .map_err(|_| bad("_count"))?
                    .min(MAX_COUNT)
            }
            "_offset" => hq.offset = v.parse().map_err(|_| bad("_offset"))?,
            "_since" => {
                hq.since = Some(
                    dates::range(&v.replace(' ', "+"))
                        .ok_or_else(|| bad("_since"))?
                        .0,
                )
            }
            "_format" | "_pretty" => {}
            other if !ctx.lenient => {
                return Err(ApiError::bad_request(
                    IssueCode::NotSupported,
                    format!(
                    "History parameter '{other}' is not supported (use _count, _since, _offset)"
                ),
                ))
            }
            _ => {}
        }
    }
    let page = state.store.history(&hq).await?;
    let how = match (&hq.rtype, &hq.id) {
        (_, Some(_)) => Interaction::HistoryInstance,
        _ => Interaction::HistoryType,
    };
    let shown = access::disclose(state, ctx.caller.as_deref(), how, page.items).await?;
    let entries: Vec<Value> = shown.items.iter().map(|s| history_entry(ctx, s)).collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "history"});
    if shown.withheld == 0 {
        bundle["total"] = json!(page.total);
    }
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    let base = match (&hq.rtype, &hq.id) {
        (Some(t), Some(i)) => format!("{}/{t}/{i}/_history", ctx.base),
        (Some(t), None) => format!("{}/{t}/_history", ctx.base),
        _ => format!("{}/_history", ctx.base),
    };
    let mut links = vec![
        json!({"relation": "self", "url": format!("{base}?_count={}&_offset={}", hq.count, hq.offset)}),
    ];
    if hq.count > 0 && ((hq.offset + hq.count) as u64) < page.total {
        links.push(json!({"relation": "next", "url": format!("{base}?_count={}&_offset={}", hq.count, hq.offset + hq.count)}));
    }
    bundle["link"] = Value::Array(links);
    Ok(ctx.resource(StatusCode::OK, &bundle))
}

fn history_entry(ctx: &Ctx, s: &StoredResource) -> Value {
    let (method, url, status) = if s.deleted {
        ("DELETE", format!("{}/{}", s.rtype, s.id), "204 No Content")
    } else if s.version == 1 {
        ("POST", s.rtype.clone(), "201 Created")
    } else {
        ("PUT", format!("{}/{}", s.rtype, s.id), "200 OK")
    };
    let mut e = json!({
        "fullUrl": format!("{}/{}/{}", ctx.base, s.rtype, s.id),
        "request": {"method": method, "url": url},
        "response": {"status": status, "etag": format!("W/\"{}\"", s.version), "lastModified": dates::format_instant(s.last_updated)},
    });
    if let Some(v) = s.json() {
        e["resource"] = v;
    }
    e
}
