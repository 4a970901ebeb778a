//! Handoffs inside the write transaction (issue #6; rules in docs/accountability.md).
//!
//! - [`open`]: at the end of a commit that raised a discharge, transfer or referral
//!   event, the handoff Task is written (or, for a referral whose sender supplied its
//!   own Task, that Task is adopted) and its `handoffs` row created.
//! - [`before_write`] / [`after_write`]: any later write of a handoff Task is checked
//!   against the Task's state machine (409 when illegal), the gateway's elements are
//!   laid over it (deadline, accountable party, businessStatus), and the row and the
//!   handoff's events follow.
//! - [`sweep`] (in `sweep.rs`): overdue handoffs are escalated, under a lease.

mod sweep;

use serde_json::{json, Value};

use super::executor::{self, Cell, Tx};
use super::sql::{Bind, Sql};
use super::{StoreError, StoredResource};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::dates;
use crate::handoffs::{self, task, Handoff, Kind, Policy};
use crate::records::types::Party;
use crate::records::{EventKind, Record, Referral, Transition};

pub use sweep::{sweep, worklist_sql, Swept, WorklistQuery, LEASE_NAME};

/// A domain event a record write raised, kept until the end of the commit.
#[derive(Debug, Clone)]
pub struct Cue {
    pub event: EventKind,
    pub record: Record,
    /// The record's resource got its id from the server in this commit, which writes
    /// no Task: no handoff or Task can name it yet, so there is nothing to look up.
    pub fresh: bool,
}

pub const COLUMNS: &str =
    "task_id, kind, focus, patient, sender, receiver, status, business_status, \
     accountable, deadline, then_due, escalation, escalated_to, opened, updated, closed";

fn t(s: &str) -> Bind {
    Bind::Text(s.to_owned())
}
fn ot(s: &Option<String>) -> Bind {
    Bind::OptText(s.clone())
}

/// A `handoffs` row from its columns in [`COLUMNS`] order.
pub fn from_row(row: &[Cell]) -> Option<Handoff> {
    let text = |i: usize| row.get(i).and_then(Cell::text).map(str::to_owned);
    let int = |i: usize| row.get(i).and_then(Cell::int);
    Some(Handoff {
        task_id: text(0)?,
        kind: Kind::parse(&text(1)?)?,
        focus: text(2)?,
        patient: text(3),
        sender: text(4),
        receiver: text(5),
        status: text(6)?,
        business_status: text(7)?,
        accountable: text(8),
        deadline: int(9),
        then_due: int(10),
        escalation: text(11),
        escalated_to: text(12),
        opened: int(13)?,
        updated: int(14)?,
        closed: int(15),
    })
}

async fn load<T: Tx>(tx: &mut T, task_id: &str) -> Result<Option<Handoff>, StoreError> {
    let s = Sql::with(
        &format!("SELECT {COLUMNS} FROM handoffs WHERE task_id = $1"),
        vec![t(task_id)],
    );
    Ok(tx.fetch_rows(&s).await?.first().and_then(|r| from_row(r)))
}

/// The open handoff on a focus (index `handoffs_focus`).
pub(crate) const OPEN_ON_FOCUS: &str =
    "SELECT task_id FROM handoffs WHERE focus = $1 AND kind = $2 AND closed IS NULL";

/// The Task id of the open handoff of `kind` about `focus`, if there is one.
async fn open_task<T: Tx>(
    tx: &mut T,
    focus: &str,
    kind: Kind,
) -> Result<Option<String>, StoreError> {
    let s = Sql::with(OPEN_ON_FOCUS, vec![t(focus), t(kind.as_str())]);
    let rows = tx.fetch_rows(&s).await?;
    Ok(rows.first().and_then(|r| r[0].clone().into_text()))
}

async fn save<T: Tx>(tx: &mut T, h: &Handoff) -> Result<(), StoreError> {
    let s = Sql::with(
        &format!(
            "INSERT INTO handoffs ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (task_id) DO UPDATE SET patient = excluded.patient, \
             sender = excluded.sender, receiver = excluded.receiver, status = excluded.status, \
             business_status = excluded.business_status, accountable = excluded.accountable, \
             deadline = excluded.deadline, then_due = excluded.then_due, \
             escalation = excluded.escalation, escalated_to = excluded.escalated_to, \
             updated = excluded.updated, closed = excluded.closed"
        ),
        vec![
            t(&h.task_id),
            t(h.kind.as_str()),
            t(&h.focus),
            ot(&h.patient),
            ot(&h.sender),
            ot(&h.receiver),
            t(&h.status),
            t(&h.business_status),
            ot(&h.accountable),
            Bind::OptInt(h.deadline),
            Bind::OptInt(h.then_due),
            ot(&h.escalation),
            ot(&h.escalated_to),
            Bind::Int(h.opened),
            Bind::Int(h.updated),
            Bind::OptInt(h.closed),
        ],
    );
    tx.exec(&s).await.map(|_| ())
}

/// Record a handoff event (domain_events, record kind `handoff`) and queue its
/// notifications on the topics it triggers.
async fn raise<T: Tx>(
    tx: &mut T,
    event: &str,
    h: &Handoff,
    task: &StoredResource,
    detail: Value,
) -> Result<(), StoreError> {
    tracing::info!(event, task = %h.task_id, kind = h.kind.as_str(), "handoff event");
    let seq = super::records::insert_event(
        tx,
        event,
        "handoff",
        &h.task_id,
        task,
        h.patient.clone(),
        detail,
    )
    .await?;
    let values = |_: &crate::topics::catalog::Topic, param: &str| h.filter_values(param);
    super::outbox::match_event_with(tx, seq, event, &values, task.last_updated).await?;
    Ok(())
}

/// Write a version of a Task the gateway makes (its record kept in step, no handoff
/// hook: the caller saves the row).
async fn write_task<T: Tx>(
    tx: &mut T,
    id: &str,
    resource: Value,
    now: i64,
) -> Result<StoredResource, StoreError> {
    let prior = tx.current("Task", id).await?;
    write_task_version(tx, id, resource, now, prior).await
}

/// A Task the gateway makes, with an id it has just made: there is no prior version.
async fn write_new_task<T: Tx>(
    tx: &mut T,
    resource: Value,
    now: i64,
) -> Result<StoredResource, StoreError> {
    write_task_version(tx, &executor::new_id(), resource, now, None).await
}

async fn write_task_version<T: Tx>(
    tx: &mut T,
    id: &str,
    mut resource: Value,
    now: i64,
    prior: Option<(i64, bool)>,
) -> Result<StoredResource, StoreError> {
    let version = prior.map(|(v, _)| v + 1).unwrap_or(1);
    let stored = executor::write_server_version(
        tx,
        "Task",
        id,
        &mut resource,
        version,
        now,
        prior.is_some(),
    )
    .await?;
    let known = super::records::Known {
        new_id: prior.is_none(),
        commit_has_task: true,
        correction: None,
        coalesce_micros: None,
    };
    super::records::sync(tx, &stored, &resource, known).await?;
    Ok(stored)
}

fn reference(p: &Option<Party>) -> Option<String> {
    p.as_ref().and_then(|p| p.reference.clone())
}

/// Open the handoffs a commit's events call for.
pub async fn open<T: Tx>(
    tx: &mut T,
    cues: Vec<Cue>,
    now: i64,
    policy: &Policy,
) -> Result<(), StoreError> {
    for cue in cues {
        match (cue.event, &cue.record) {
            (EventKind::PatientDischarged, Record::Transition(tr)) => {
                open_discharge(tx, tr, Kind::Discharge, cue.fresh, now, policy).await?
            }
            (EventKind::PatientTransferred, Record::Transition(tr)) => {
                open_discharge(tx, tr, Kind::Transfer, cue.fresh, now, policy).await?
            }
            (EventKind::ReferralRequested, Record::Referral(r)) => {
                open_referral(tx, r, cue.fresh, now, policy).await?
            }
            (EventKind::DischargeCancelled, Record::Transition(tr)) => {
                if let Some(id) = &tr.id {
                    let focus = format!("Encounter/{id}");
                    cancel_open(
                        tx,
                        &focus,
                        Kind::Discharge,
                        "the discharge was cancelled",
                        now,
                    )
                    .await?
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Close the open handoff of `kind` on `focus`, if any: what opened it no longer
/// holds. Its Task is cancelled with a note saying why, and nobody owes anything.
async fn cancel_open<T: Tx>(
    tx: &mut T,
    focus: &str,
    kind: Kind,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    let Some(task_id) = open_task(tx, focus, kind).await? else {
        return Ok(());
    };
    let (Some(mut h), Some(task)) = (load(tx, &task_id).await?, tx.load("Task", &task_id).await?)
    else {
        return Ok(());
    };
    let Some(mut body) = task.json() else {
        return Ok(());
    };
    h.status = "cancelled".into();
    h.business_status = handoffs::business_status("cancelled").into();
    h.deadline = None;
    h.then_due = None;
    h.updated = now;
    h.closed = Some(now);
    body["status"] = json!("cancelled");
    task::decorate(&mut body, &h);
    task::add_note(&mut body, reason, now);
    let stored = write_task(tx, &task_id, body, now).await?;
    save(tx, &h).await?;
    raise(
        tx,
        handoffs::CANCELLED,
        &h,
        &stored,
        json!({"reason": reason}),
    )
    .await
}

fn new_handoff(kind: Kind, focus: String, patient: Option<String>, now: i64) -> Handoff {
    Handoff {
        task_id: String::new(),
        kind,
        focus,
        patient,
        sender: None,
        receiver: None,
        status: "requested".into(),
        business_status: handoffs::business_status("requested").into(),
        accountable: None,
        deadline: None,
        then_due: None,
        escalation: None,
        escalated_to: None,
        opened: now,
        updated: now,
        closed: None,
    }
}

/// The PCP named by the patient's Patient.generalPractitioner, when stored here.
async fn general_practitioner<T: Tx>(
    tx: &mut T,
    patient: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some(id) = patient.and_then(|p| crate::records::types::ref_id(p, "Patient")) else {
        return Ok(None);
    };
    Ok(tx
        .load("Patient", &id)
        .await?
        .filter(|p| !p.deleted)
        .and_then(|p| p.json())
        .and_then(|p| {
            p["generalPractitioner"][0]["reference"]
                .as_str()
                .map(str::to_owned)
        }))
}

async fn open_discharge<T: Tx>(
    tx: &mut T,
    tr: &Transition,
    kind: Kind,
    fresh: bool,
    now: i64,
    policy: &Policy,
) -> Result<(), StoreError> {
    let Some(id) = &tr.id else { return Ok(()) };
    let focus = format!("Encounter/{id}");
    if !fresh && open_task(tx, &focus, kind).await?.is_some() {
        return Ok(());
    }
    let patient = tr.patient.reference.clone();
    let mut h = new_handoff(kind, focus, patient.clone(), now);
    h.sender = reference(&tr.service_provider);
    h.receiver = match kind {
        Kind::Discharge => match reference(&tr.pcp) {
            Some(r) => Some(r),
            None => general_practitioner(tx, patient.as_deref())
                .await?
                .or_else(|| tr.follow_up.iter().find_map(|f| reference(&f.who))),
        },
        _ => reference(&tr.destination)
            .or_else(|| tr.attending.first().and_then(|a| a.reference.clone())),
    };
    let (accept, what) = match kind {
        Kind::Discharge => (policy.discharge_accept, "Discharge"),
        _ => (policy.transfer_accept, "Transfer"),
    };
    h.deadline = Some(accept.after(now));
    if kind == Kind::Discharge {
        let ended = tr
            .period
            .as_ref()
            .and_then(|p| p.end.as_deref())
            .and_then(dates::range)
            .map(|r| r.0)
            .unwrap_or(now);
        h.then_due = tr.follow_up.first().map(|f| {
            match (f.due.as_deref().and_then(dates::range), f.within_days) {
                (Some((_, end)), _) => end,
                (None, Some(d)) => {
                    handoffs::Span::Micros(i64::from(d) * 86_400_000_000).after(ended)
                }
                (None, None) => policy.discharge_follow_up.after(ended),
            }
        });
    }
    h.accountable = h.sender.clone();
    let mut description = format!("{what} of {}: accept responsibility", h.focus);
    if let Some(f) = tr.follow_up.first() {
        description.push_str(&format!("; follow-up owed: {}", f.what));
    }
    let body = task::new_task(&h, &description);
    let stored = write_new_task(tx, body, now).await?;
    h.task_id = stored.id.clone();
    opened(tx, &h, &stored).await
}

/// A handoff just opened on its Task (`stored`): keep it and say so.
async fn opened<T: Tx>(tx: &mut T, h: &Handoff, stored: &StoredResource) -> Result<(), StoreError> {
    save(tx, h).await?;
    raise(
        tx,
        handoffs::OPENED,
        h,
        stored,
        json!({"to": h.receiver, "deadline": h.deadline}),
    )
    .await
}

async fn open_referral<T: Tx>(
    tx: &mut T,
    r: &Referral,
    fresh: bool,
    now: i64,
    policy: &Policy,
) -> Result<(), StoreError> {
    let Some(id) = &r.id else { return Ok(()) };
    let focus = format!("ServiceRequest/{id}");
    if !fresh && open_task(tx, &focus, Kind::Referral).await?.is_some() {
        return Ok(());
    }
    let mut h = new_handoff(
        Kind::Referral,
        focus.clone(),
        r.patient.reference.clone(),
        now,
    );
    h.sender = reference(&r.referrer);
    h.receiver = r.receivers.first().and_then(|p| p.reference.clone());
    h.accountable = h.sender.clone();
    h.deadline = Some(policy.referral_accept.after(now));
    // The sender's own Task for the referral, if it wrote one: that Task is the handoff.
    let own = if fresh {
        None
    } else {
        super::records::task_of(tx, id)
            .await?
            .filter(|s| !s.deleted)
    };
    let stored = match own.and_then(|s| Some((s.json()?, s.id))) {
        Some((mut body, task_id)) => {
            if let Some(owner) = body["owner"]["reference"].as_str() {
                h.receiver = Some(owner.to_owned());
            }
            if let Some(req) = body["requester"]["reference"].as_str() {
                h.sender = Some(req.to_owned());
                h.accountable = h.sender.clone();
            }
            h.status = body["status"].as_str().unwrap_or("requested").to_owned();
            h.business_status = handoffs::business_status(&h.status).into();
            task::decorate(&mut body, &h);
            write_task(tx, &task_id, body, now).await?
        }
        None => {
            let body = task::new_task(&h, &format!("Referral {focus}: accept or decline"));
            write_new_task(tx, body, now).await?
        }
    };
    h.task_id = stored.id.clone();
    opened(tx, &h, &stored).await
}

/// What a handoff Task's write changes, decided before it is stored.
#[derive(Debug)]
pub struct Pending {
    handoff: Handoff,
    events: Vec<(&'static str, Value)>,
}

fn text_of(v: &Value) -> Option<String> {
    v["coding"][0]["code"]
        .as_str()
        .or_else(|| v["text"].as_str())
        .map(str::to_owned)
}

/// Check a client's write of Task/`id` against its handoff (if it is one) and lay the
/// gateway's elements over it.
pub async fn before_write<T: Tx>(
    tx: &mut T,
    id: &str,
    resource: &mut Value,
    now: i64,
    policy: &Policy,
) -> Result<Option<Pending>, StoreError> {
    let Some(prior) = load(tx, id).await? else {
        return Ok(None);
    };
    let status = resource["status"].as_str().unwrap_or("").to_owned();
    if !handoffs::may_move(&prior.status, &status) {
        return Err(StoreError::Lifecycle(
            Issue::error(
                IssueCode::BusinessRule,
                format!(
                    "Handoff Task/{id} is {}; it cannot become {status}",
                    prior.status
                ),
            )
            .at("Task.status"),
        ));
    }
    let mut h = prior.clone();
    h.status = status.clone();
    h.updated = now;
    if let Some(owner) = resource["owner"]["reference"].as_str() {
        h.receiver = Some(owner.to_owned());
    }
    let mut events = Vec::new();
    if status == prior.status {
        if let Some(bs) = resource.get("businessStatus").and_then(text_of) {
            h.business_status = bs;
        }
    } else {
        h.business_status = handoffs::business_status(&status).into();
        if handoffs::is_accepted(&status) && !handoffs::is_accepted(&prior.status) {
            h.accountable = h.receiver.clone();
            h.deadline = match h.kind {
                Kind::Discharge => h.then_due,
                Kind::Referral => Some(policy.referral_result.after(now)),
                Kind::Transfer => None,
            };
            h.escalation = None;
            h.escalated_to = None;
            events.push((
                handoffs::ACCEPTED,
                json!({"by": h.receiver, "deadline": h.deadline}),
            ));
        }
        if handoffs::is_closed(&status) {
            h.closed = Some(now);
            h.deadline = None;
        }
        if status == "rejected" {
            let reason = resource["statusReason"]["text"]
                .as_str()
                .or_else(|| resource["statusReason"]["coding"][0]["display"].as_str())
                .unwrap_or("no reason given")
                .to_owned();
            h.accountable = h.sender.clone();
            h.escalation = Some("declined".into());
            h.escalated_to = policy.coordinator(h.sender.as_deref()).map(str::to_owned);
            events.push((
                handoffs::DECLINED,
                json!({"reason": format!("declined by {}: {reason}", h.receiver.as_deref().unwrap_or("the receiver")), "to": h.escalated_to}),
            ));
        }
        if status == "completed" {
            let outputs: Vec<Value> = resource["output"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.get("valueReference").cloned())
                .collect();
            events.push((handoffs::COMPLETED, json!({"results": outputs})));
        }
    }
    task::decorate(resource, &h);
    if status == "rejected" {
        let reason = events
            .last()
            .and_then(|(_, d)| d["reason"].as_str().map(str::to_owned))
            .unwrap_or_default();
        task::add_escalation(
            resource,
            "returned-to-sender",
            h.escalated_to.as_deref(),
            &reason,
            now,
        );
    }
    Ok(Some(Pending { handoff: h, events }))
}

/// After the Task version is stored: the row and the events.
pub async fn after_write<T: Tx>(
    tx: &mut T,
    stored: &StoredResource,
    p: Pending,
) -> Result<(), StoreError> {
    save(tx, &p.handoff).await?;
    for (event, detail) in p.events {
        raise(tx, event, &p.handoff, stored, detail).await?;
    }
    Ok(())
}
