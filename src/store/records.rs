//! Keeping the coordination records in step with the resources, inside the write's
//! transaction: after a version of a ServiceRequest, Task, Encounter, CarePlan or
//! Consent is written, its record is derived, the change checked against the stored
//! record's lifecycle, and the record and its domain events written. An illegal change
//! fails the whole transaction.

use serde_json::{json, Value};

use super::executor::{Cell, Tx};
use super::handoffs::Cue;
use super::sql::{Bind, Sql};
use super::{StoreError, StoredResource};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::{Cond, Filter, SearchQuery};
use crate::records::referral::task_target;
use crate::records::{lifecycle, Record, RecordKind, RuleError};

pub const SELECT_RECORD: &str = "SELECT body FROM records WHERE kind = $1 AND id = $2";
const UPSERT_RECORD: &str = "INSERT INTO records (kind, id, patient, status, updated, body) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, id) DO UPDATE SET \
     patient = excluded.patient, status = excluded.status, updated = excluded.updated, body = excluded.body";
const DELETE_RECORD: &str = "DELETE FROM records WHERE kind = $1 AND id = $2";
const INSERT_EVENT: &str = "INSERT INTO domain_events \
     (event, record_kind, record_id, rtype, rid, version, patient, at, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// A ServiceRequest's token search rows (none once it is deleted). Not filtered on
/// `param` here: SQLite would then walk every ServiceRequest's `status` rows by the
/// value index, which covers this query, instead of this one's ten by its key.
const SR_TOKENS: &str = "SELECT param, code FROM search_token \
     WHERE rtype = 'ServiceRequest' AND rid = $1";

fn stmt(text: &str, binds: Vec<Bind>) -> Sql {
    Sql::with(text, binds)
}

/// The stored record and, in the same statement, whether `EncounterUpdated` was raised
/// for it after `since` (HL7 v2 A08 coalescing, `Known::coalesce_micros`).
const SELECT_RECORD_AND_UPDATED: &str = "SELECT body, EXISTS (SELECT 1 FROM domain_events \
     WHERE record_kind = $1 AND record_id = $2 AND event = $3 AND at > $4) \
     FROM records WHERE kind = $1 AND id = $2";

async fn load<T: Tx>(tx: &mut T, kind: RecordKind, id: &str) -> Result<Option<Record>, StoreError> {
    let s = stmt(
        SELECT_RECORD,
        vec![Bind::Text(kind.as_str().into()), Bind::Text(id.into())],
    );
    parse(kind, id, tx.fetch_text(&s).await?)
}

/// [`load`], and whether `EncounterUpdated` was raised for the record after `since`.
async fn load_coalescing<T: Tx>(
    tx: &mut T,
    kind: RecordKind,
    id: &str,
    since: i64,
) -> Result<(Option<Record>, bool), StoreError> {
    let s = stmt(
        SELECT_RECORD_AND_UPDATED,
        vec![
            Bind::Text(kind.as_str().into()),
            Bind::Text(id.into()),
            Bind::Text(lifecycle::EventKind::EncounterUpdated.as_str().into()),
            Bind::Int(since),
        ],
    );
    let Some(mut row) = tx.fetch_rows(&s).await?.pop() else {
        return Ok((None, false));
    };
    let raised = row.pop().and_then(|c| c.int()).is_some_and(|i| i != 0);
    let body = row.pop().and_then(Cell::into_text);
    Ok((parse(kind, id, body)?, raised))
}

fn parse(kind: RecordKind, id: &str, body: Option<String>) -> Result<Option<Record>, StoreError> {
    match body {
        None => Ok(None),
        Some(body) => Record::parse(kind, &body).map(Some).map_err(|e| {
            tracing::error!(kind = kind.as_str(), id, error = %e, "stored record unreadable");
            StoreError::Conflict(format!(
                "The stored {} record {id} is unreadable",
                kind.as_str()
            ))
        }),
    }
}

/// What the executor knows that spares lookups bound to find nothing.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// The id was assigned by the server in this commit: no record can exist for it,
    /// and only a Task in this same commit can point at it.
    pub new_id: bool,
    /// The commit writes a Task.
    pub commit_has_task: bool,
    /// An HL7 v2 correction (A11, A13) for this Encounter: its rules replace the
    /// ordinary lifecycle's (see `store::hl7`).
    pub correction: Option<lifecycle::Correction>,
    /// HL7 v2 A08: raise `EncounterUpdated` unless one was raised this recently.
    pub coalesce_micros: Option<i64>,
}

/// Bring the record of `v` (just written, `resource` its body) up to date.
pub async fn sync<T: Tx>(
    tx: &mut T,
    v: &StoredResource,
    resource: &Value,
    known: Known,
) -> Result<Vec<Cue>, StoreError> {
    if v.rtype == "Task" {
        return sync_task(tx, v, resource).await;
    }
    let Some(kind) = RecordKind::for_resource_type(&v.rtype) else {
        return Ok(Vec::new());
    };
    let (prior, updated_recently) = match (known.new_id, known.coalesce_micros) {
        (true, _) => (None, false),
        (false, None) => (load(tx, kind, &v.id).await?, false),
        (false, Some(window)) => load_coalescing(tx, kind, &v.id, v.last_updated - window).await?,
    };
    let mut next = Record::from_resource(resource, prior.as_ref()).expect("kind has a record");
    if let Some(p) = &prior {
        for s in p.sources() {
            next.note_source(&s.resource_type, &s.id, s.version);
        }
    }
    next.note_source(&v.rtype, &v.id, v.version);
    // A referral's Task may have been written first (earlier in the same transaction).
    let task_possible = !known.new_id || known.commit_has_task;
    if let (None, Record::Referral(r), true) = (&prior, &mut next, task_possible) {
        if let Some(task) = task_of(tx, &v.id).await? {
            if let Some(body) = task.json() {
                r.apply_task(&body, resource["status"].as_str().unwrap_or("active"));
                next.note_source("Task", &task.id, task.version);
            }
        }
    }
    save(tx, v, prior.as_ref(), &next, known, updated_recently).await
}

async fn sync_task<T: Tx>(
    tx: &mut T,
    v: &StoredResource,
    task: &Value,
) -> Result<Vec<Cue>, StoreError> {
    let Some(sr_id) = task_target(task) else {
        return Ok(Vec::new());
    };
    // Lock the ServiceRequest's row (PostgreSQL: FOR UPDATE) so that writes of the
    // referral's Task and of its ServiceRequest apply to its record one at a time.
    tx.current("ServiceRequest", &sr_id).await?;
    let Some(prior) = load(tx, RecordKind::Referral, &sr_id).await? else {
        // The ServiceRequest is not (yet) here; when it is written it finds this Task.
        return Ok(Vec::new());
    };
    // The ServiceRequest's status from its search rows, written with its current
    // version: not its body, which is 4-8 KB of JSON to parse for one code.
    let sr_status = tx
        .fetch_rows(&stmt(SR_TOKENS, vec![Bind::Text(sr_id.clone())]))
        .await?
        .into_iter()
        .find(|row| row[0].text() == Some("status"))
        .and_then(|mut row| row.pop()?.into_text())
        .unwrap_or_else(|| "active".into());
    let mut next = prior.clone();
    if let Record::Referral(r) = &mut next {
        r.apply_task(task, &sr_status);
    }
    next.note_source(&v.rtype, &v.id, v.version);
    let known = Known {
        new_id: false,
        commit_has_task: true,
        correction: None,
        coalesce_micros: None,
    };
    save(tx, v, Some(&prior), &next, known, false).await
}

/// The Task whose focus is ServiceRequest/`sr_id`, if any.
pub(super) async fn task_of<T: Tx>(
    tx: &mut T,
    sr_id: &str,
) -> Result<Option<StoredResource>, StoreError> {
    let mut q = SearchQuery::new("Task");
    q.filters.push(Filter {
        param: "focus",
        any_of: vec![Cond::Ref {
            target: format!("ServiceRequest/{sr_id}"),
            any_type: false,
        }],
    });
    match tx.find(&q, 1).await?.pop() {
        Some(id) => tx.load("Task", &id).await,
        None => Ok(None),
    }
}

async fn save<T: Tx>(
    tx: &mut T,
    v: &StoredResource,
    prior: Option<&Record>,
    next: &Record,
    known: Known,
    updated_recently: bool,
) -> Result<Vec<Cue>, StoreError> {
    let mut events = match (known.correction, prior, next) {
        (Some(c), Some(Record::Transition(p)), Record::Transition(n)) => {
            lifecycle::correct(c, p, n).map_err(rule_error)?
        }
        _ => lifecycle::decide(prior, next).map_err(rule_error)?,
    };
    let kind = next.kind();
    let id = next.id().unwrap_or_default().to_owned();
    if let (Some(_), Some(p)) = (known.coalesce_micros, prior) {
        if events.is_empty() && lifecycle::changed(Some(p), next) && !updated_recently {
            events.push(lifecycle::EventKind::EncounterUpdated);
        }
    }
    let patient = next.patient().map(str::to_owned);
    let body = serde_json::to_string(next).expect("records always serialise");
    tx.exec(&stmt(
        UPSERT_RECORD,
        vec![
            Bind::Text(kind.as_str().into()),
            Bind::Text(id.clone()),
            Bind::OptText(patient.clone()),
            Bind::Text(next.status().into()),
            Bind::Int(v.last_updated),
            Bind::Text(body),
        ],
    ))
    .await?;
    let mut cues = Vec::new();
    for e in events {
        let detail = json!({"from": prior.map(Record::status), "to": next.status()});
        tracing::info!(event = e.as_str(), kind = kind.as_str(), id = %id, "domain event");
        let seq = insert_event(
            tx,
            e.as_str(),
            kind.as_str(),
            &id,
            v,
            patient.clone(),
            detail,
        )
        .await?;
        if e == lifecycle::EventKind::ConsentChanged {
            // Consent changes are in the ledger too (docs/consent.md).
            let audit = crate::consent::ledger::consent_change_event(
                &format!("Consent/{id}"),
                v.version,
                patient.as_deref(),
                next.status(),
                v.last_updated,
            );
            super::executor::write_new(tx, audit, v.last_updated).await?;
        }
        super::outbox::match_event(tx, seq, e.as_str(), next, v.last_updated).await?;
        cues.push(Cue {
            event: e,
            record: next.clone(),
            fresh: known.new_id && !known.commit_has_task,
        });
    }
    Ok(cues)
}

/// Write a domain event raised by version `v`; its `seq`.
pub async fn insert_event<T: Tx>(
    tx: &mut T,
    event: &str,
    record_kind: &str,
    record_id: &str,
    v: &StoredResource,
    patient: Option<String>,
    detail: Value,
) -> Result<i64, StoreError> {
    tx.insert_key(
        &stmt(
            INSERT_EVENT,
            vec![
                Bind::Text(event.into()),
                Bind::Text(record_kind.into()),
                Bind::Text(record_id.into()),
                Bind::Text(v.rtype.clone()),
                Bind::Text(v.id.clone()),
                Bind::Int(v.version),
                Bind::OptText(patient),
                Bind::Int(v.last_updated),
                Bind::Text(detail.to_string()),
            ],
        ),
        "seq",
    )
    .await
}

/// A resource's deletion removes the record derived from it (no event: a deletion
/// is not a care transition).
pub async fn remove<T: Tx>(tx: &mut T, rtype: &str, id: &str) -> Result<(), StoreError> {
    if let Some(kind) = RecordKind::for_resource_type(rtype) {
        tx.exec(&stmt(
            DELETE_RECORD,
            vec![Bind::Text(kind.as_str().into()), Bind::Text(id.into())],
        ))
        .await?;
    }
    Ok(())
}

fn rule_error(e: RuleError) -> StoreError {
    match e {
        RuleError::Illegal { message, path } => {
            StoreError::Lifecycle(Issue::error(IssueCode::BusinessRule, message).at(path))
        }
        RuleError::Incomplete { message, path } => {
            StoreError::Unprocessable(vec![Issue::error(IssueCode::BusinessRule, message).at(path)])
        }
    }
}

// ---- the read side: the internal API's lists (the event log: `events.rs`) -----------

/// A list of records of one kind, newest change first.
#[derive(Debug, Clone)]
pub struct RecordQuery {
    pub kind: RecordKind,
    pub patient: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

fn record_filters(q: &RecordQuery, s: &mut Sql) {
    s.push(" WHERE kind = ")
        .bind(Bind::Text(q.kind.as_str().into()));
    if let Some(p) = &q.patient {
        s.push(" AND patient = ").bind(Bind::Text(p.clone()));
    }
    if let Some(st) = &q.status {
        s.push(" AND status = ").bind(Bind::Text(st.clone()));
    }
}

pub fn list_records(q: &RecordQuery) -> Sql {
    let mut s = Sql::new("SELECT body FROM records");
    record_filters(q, &mut s);
    s.push(" ORDER BY updated DESC, id LIMIT ")
        .bind(Bind::Int(q.limit as i64))
        .push(" OFFSET ")
        .bind(Bind::Int(q.offset as i64));
    s
}

pub fn count_records(q: &RecordQuery) -> Sql {
    let mut s = Sql::new("SELECT COUNT(*) FROM records");
    record_filters(q, &mut s);
    s
}
