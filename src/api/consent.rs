//! Consent operations (issue #5, docs/consent.md): `POST /fhir/Consent/$evaluate`
//! asks "may this recipient receive these data about this patient for this purpose?"
//! and says why; `GET /fhir/Patient/{id}/$disclosures` is the patient's accounting of
//! disclosures (the ledger's AuditEvents about them).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::context::resource_body;
use super::error::ApiError;
use super::rest::{check_id, ctx_or_return, State};
use crate::consent::{Decision, Outcome, ACT_REASON, RECIPIENT_ROLES, TREATMENT};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::{dates, query};
use crate::store::disclosure::{self, Question};
use crate::topics::subscription::RecipientSpec;

/// `POST /fhir/Consent/$evaluate`, a Parameters body:
/// `patient` (valueReference, 1), `recipient` (valueReference, 1..*), `role`
/// (valueCoding, 0..*; default PRCP and IRCP), `purpose` (valueCode or valueCoding;
/// default TREAT), `data` (valueReference `Type/id` or valueCode a resource type,
/// 0..*), `time` (valueDateTime or valueInstant; default now). The answer is a
/// Parameters: `decision` (valueCode permit | deny), `reason` (valueString), `consent`
/// (valueReference, when a directive decided), `withheld` (valueReference, 0..*).
pub async fn evaluate(req: HttpRequest, payload: web::Payload, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let value = resource_body(&req, payload, &state).await?;
        let q = question(&value).map_err(ApiError::invalid)?;
        let policy = state.settings.consent_policy();
        let out = disclosure::evaluate(&*state.store, &q, &policy).await?;
        tracing::info!(decision = ?out.decision, consent = ?out.consent, "$evaluate");
        Ok(ctx.resource(StatusCode::OK, &answer(&out)))
    }
    .await;
    ctx.finish(r)
}

/// The question a Parameters asks; every problem with its path.
pub fn question(v: &Value) -> Result<Question, Vec<Issue>> {
    let mut issues = Vec::new();
    if v["resourceType"] != "Parameters" {
        return Err(vec![Issue::error(
            IssueCode::Invalid,
            "$evaluate takes a Parameters resource",
        )
        .at("Parameters")]);
    }
    let params = v["parameter"].as_array().cloned().unwrap_or_default();
    let mut patient = None;
    let mut recipient = RecipientSpec {
        references: Vec::new(),
        roles: Vec::new(),
        purpose: TREATMENT.to_owned(),
    };
    let mut data = Vec::new();
    let mut at = None;
    for (i, p) in params.iter().enumerate() {
        let path = format!("Parameters.parameter[{i}]");
        let reference = p["valueReference"]["reference"].as_str().map(str::to_owned);
        let bad = |what: &str| Issue::error(IssueCode::Value, what.to_owned()).at(&path);
        match p["name"].as_str().unwrap_or("") {
            "patient" => match reference.filter(|r| r.starts_with("Patient/")) {
                Some(r) => patient = Some(r),
                None => issues.push(bad("patient is a valueReference Patient/id")),
            },
            "recipient" => match reference.filter(|r| r.contains('/')) {
                Some(r) => recipient.references.push(r),
                None => issues.push(bad("recipient is a valueReference Type/id")),
            },
            "role" => match (
                p["valueCoding"]["system"].as_str(),
                p["valueCoding"]["code"].as_str(),
            ) {
                (Some(s), Some(c)) => recipient.roles.push((s.into(), c.into())),
                _ => issues.push(bad("role is a valueCoding with system and code")),
            },
            "purpose" => {
                let coding = &p["valueCoding"];
                let code = p["valueCode"].as_str().or_else(|| {
                    coding["code"]
                        .as_str()
                        .filter(|_| coding["system"].as_str().is_none_or(|s| s == ACT_REASON))
                });
                match code {
                    Some(c) => recipient.purpose = c.to_owned(),
                    None => issues.push(bad(
                        "purpose is a valueCode (or a v3-ActReason valueCoding)",
                    )),
                }
            }
            "data" => match reference.or_else(|| p["valueCode"].as_str().map(str::to_owned)) {
                Some(d) => data.push(d),
                None => issues.push(bad(
                    "data is a valueReference Type/id or a valueCode resource type",
                )),
            },
            "time" => match p["valueDateTime"].as_str().or(p["valueInstant"].as_str()) {
                Some(t) if dates::range(t).is_some() => at = Some(t.to_owned()),
                _ => issues.push(bad("time is a valueDateTime or valueInstant")),
            },
            _ => issues.push(bad(
                "unknown parameter: patient, recipient, role, purpose, data and time are known",
            )),
        }
    }
    if patient.is_none() {
        issues.push(
            Issue::error(IssueCode::Required, "a patient parameter is required").at("Parameters"),
        );
    }
    if recipient.references.is_empty() {
        issues.push(
            Issue::error(
                IssueCode::Required,
                "at least one recipient parameter is required",
            )
            .at("Parameters"),
        );
    }
    if recipient.roles.is_empty() {
        recipient.roles = RECIPIENT_ROLES
            .iter()
            .map(|(s, c)| (s.to_string(), c.to_string()))
            .collect();
    }
    match (issues.is_empty(), patient) {
        (true, Some(patient)) => Ok(Question {
            patient,
            recipient,
            data,
            at: at.unwrap_or_else(|| dates::format_instant(dates::now_micros())),
        }),
        _ => Err(issues),
    }
}

/// The decision as a Parameters.
pub fn answer(out: &Outcome) -> Value {
    let mut params = vec![
        json!({"name": "decision", "valueCode": match out.decision {
            Decision::Permit => "permit",
            Decision::Deny => "deny",
        }}),
        json!({"name": "reason", "valueString": out.reason}),
    ];
    if let Some(c) = &out.consent {
        params.push(json!({"name": "consent", "valueReference": {"reference": c}}));
    }
    for x in &out.excluded {
        params.push(json!({"name": "withheld", "valueReference": {"reference": x}}));
    }
    json!({"resourceType": "Parameters", "parameter": params})
}

/// `GET /fhir/Patient/{id}/$disclosures?start=&end=`: the patient's accounting of
/// disclosures, a searchset Bundle of the ledger's disclosure AuditEvents (delivered,
/// sent unacknowledged, denied) recorded in [start, end] (dates or instants, both
/// optional), oldest first; `_count` and `_offset` page as in a search.
pub async fn disclosures(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    let r = async {
        let id = path.into_inner();
        check_id(&id)?;
        let mut pairs = vec![
            ("patient".to_owned(), format!("Patient/{id}")),
            (
                "type".to_owned(),
                format!(
                    "http://dicom.nema.org/resources/ontology/DCM|{}",
                    crate::consent::ledger::EXPORT
                ),
            ),
        ];
        for (k, v) in &ctx.query {
            match k.as_str() {
                "start" | "end" if dates::range(v).is_none() => {
                    return Err(ApiError::bad_request(
                        IssueCode::Value,
                        format!("{k} must be a FHIR date, dateTime or instant"),
                    ))
                }
                "start" => pairs.push(("date".into(), format!("ge{v}"))),
                "end" => pairs.push(("date".into(), format!("le{v}"))),
                "_count" | "_offset" => pairs.push((k.clone(), v.clone())),
                "_format" | "_pretty" => {}
                other => {
                    return Err(ApiError::bad_request(
                        IssueCode::NotSupported,
                        format!("$disclosures takes start, end, _count and _offset, not {other}"),
                    ))
                }
            }
        }
        let q = query::parse("AuditEvent", &pairs, false).map_err(ApiError::invalid)?;
        let page = state.store.search(&q).await?;
        let entries: Vec<Value> = page
            .items
            .iter()
            .map(|s| {
                json!({
                    "fullUrl": format!("{}/AuditEvent/{}", ctx.base, s.id),
                    "resource": s.json().unwrap_or(Value::Null),
                    "search": {"mode": "match"},
                })
            })
            .collect();
        tracing::info!(patient = %id, entries = entries.len(), "$disclosures");
        Ok(ctx.resource(
            StatusCode::OK,
            &json!({
                "resourceType": "Bundle",
                "type": "searchset",
                "total": page.total,
                "entry": entries,
            }),
        ))
    }
    .await;
    ctx.finish(r)
}
