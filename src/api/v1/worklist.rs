//! `GET /api/v1/worklist?party=…`: a party's handoffs (as receiver, sender, escalation
//! recipient or accountable party), and `POST /api/v1/sweep`: run the deadline sweep
//! now. Both take `now=…` only when `handoffs.test_clock` is on (tests and demos).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::problem::Problem;
use super::{finish, usize_param, State};
use crate::api::context::parse_query;
use crate::fhir::search::dates::{self, format_instant};
use crate::handoffs::{self, job, Handoff};
use crate::startup::AppState;
use crate::store::executor::Cell;
use crate::store::handoffs::{from_row, worklist_sql, WorklistQuery};

const DAY: i64 = 86_400_000_000;

/// `now`: the real clock, or the caller's when the test clock is on.
fn clock(state: &AppState, given: Option<&str>) -> Result<i64, Problem> {
    match given {
        None => Ok(dates::now_micros()),
        Some(_) if !state.settings.handoffs.test_clock => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "now is accepted only when handoffs.test_clock is on (tests and demos)",
        )),
        Some(v) => dates::range(v)
            .map(|r| r.0)
            .ok_or_else(|| Problem::bad_request(format!("now '{v}' is not a FHIR dateTime"))),
    }
}

fn is_reference(v: &str) -> bool {
    let mut parts = v.split('/');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(t), Some(id), None) if t.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && !id.is_empty())
}

/// Where a handoff stands for the worklist.
pub fn category(h: &Handoff, now: i64) -> &'static str {
    if h.status == "rejected" {
        "declined"
    } else if h.closed.is_some() {
        "closed"
    } else if h.escalation.is_some() {
        "escalated"
    } else if h.deadline.is_some_and(|d| d <= now) {
        "overdue"
    } else if !handoffs::is_accepted(&h.status) {
        "waiting-for-acceptance"
    } else {
        "in-progress"
    }
}

fn item(h: &Handoff, last: Option<&str>, party: &str, now: i64) -> Value {
    let mut roles = Vec::new();
    for (role, who) in [
        ("receiver", &h.receiver),
        ("sender", &h.sender),
        ("escalation-recipient", &h.escalated_to),
        ("accountable", &h.accountable),
    ] {
        if who.as_deref() == Some(party) {
            roles.push(role);
        }
    }
    let last_delivery = last.and_then(|l| {
        let mut p = l.split('|');
        let (state, attempts, at) = (p.next()?, p.next()?, p.next()?);
        Some(
            json!({"state": state, "attempts": attempts.parse::<i64>().ok(),
                    "at": at.parse::<i64>().ok().map(format_instant)}),
        )
    });
    json!({
        "task": format!("Task/{}", h.task_id),
        "kind": h.kind,
        "category": category(h, now),
        "roles": roles,
        "patient": h.patient,
        "focus": h.focus,
        "sender": h.sender,
        "receiver": h.receiver,
        "accountable": h.accountable,
        "status": h.status,
        "business_status": h.business_status,
        "deadline": h.deadline.map(format_instant),
        "overdue": h.closed.is_none() && h.deadline.is_some_and(|d| d <= now),
        "escalation": h.escalation,
        "escalated_to": h.escalated_to,
        "opened": format_instant(h.opened),
        "closed": h.closed.map(format_instant),
        "last_delivery": last_delivery,
    })
}

pub async fn worklist(req: HttpRequest, state: State) -> HttpResponse {
    finish(
        async {
            let (mut party, mut days, mut now, mut limit) = (None, 7usize, None, 100usize);
            for (k, v) in parse_query(req.query_string()) {
                match k.as_str() {
                    "party" => party = Some(v),
                    "days" => days = usize_param("days", &v, 365)?,
                    "limit" => limit = usize_param("limit", &v, 500)?,
                    "now" => now = Some(v),
                    other => {
                        return Err(Problem::bad_request(format!(
                            "Unknown parameter '{other}': use party, days, limit (and now with the test clock)"
                        )))
                    }
                }
            }
            let party = party.ok_or_else(|| Problem::bad_request("party is required, e.g. party=Organization/123"))?;
            if !is_reference(&party) {
                return Err(Problem::bad_request(format!(
                    "party '{party}' is not a reference like Organization/123"
                )));
            }
            let now = clock(&state, now.as_deref())?;
            let q = WorklistQuery {
                party: party.clone(),
                since: now - days as i64 * DAY,
                limit: limit as i64,
            };
            let rows = state.store.rows(&worklist_sql(&q)).await?;
            let mut counts = serde_json::Map::new();
            let items: Vec<Value> = rows
                .iter()
                .filter_map(|r| {
                    let h = from_row(r)?;
                    let last = r.get(16).and_then(Cell::text);
                    let it = item(&h, last, &party, now);
                    let c = it["category"].as_str().unwrap_or_default().to_owned();
                    let n = counts.get(&c).and_then(Value::as_u64).unwrap_or(0);
                    counts.insert(c, json!(n + 1));
                    Some(it)
                })
                .collect();
            let seen = items.iter().map(|it| {
                let patient = it["patient"].as_str().map(str::to_owned);
                (patient, it["task"].as_str().unwrap_or_default().to_owned())
            });
            super::audit::uses(&req, &state, "search-type", seen).await?;
            Ok(HttpResponse::Ok().json(json!({
                "party": party,
                "now": format_instant(now),
                "since": format_instant(q.since),
                "counts": counts,
                "items": items,
            })))
        }
        .await,
    )
}

pub async fn sweep(req: HttpRequest, state: State) -> HttpResponse {
    finish(
        async {
            let mut now = None;
            for (k, v) in parse_query(req.query_string()) {
                match k.as_str() {
                    "now" => now = Some(v),
                    other => {
                        return Err(Problem::bad_request(format!(
                            "Unknown parameter '{other}': only now (with the test clock)"
                        )))
                    }
                }
            }
            let now = clock(&state, now.as_deref())?;
            let interval = std::time::Duration::from_secs(state.settings.handoffs.sweep_interval_secs);
            let swept = job::sweep_once(&*state.store, &state.instance, now, job::lease_length(interval)).await?;
            Ok(HttpResponse::Ok().json(json!({
                "now": format_instant(now),
                "ran": swept.ran,
                "escalated": swept.escalated.iter().map(|t| format!("Task/{t}")).collect::<Vec<_>>(),
            })))
        }
        .await,
    )
}
