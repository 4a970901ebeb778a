//! One message in, one ACK out: parse, check, map, and commit through the same store
//! path as a FHIR transaction (so coordination records, domain events and
//! notifications follow as for any write), with the message's [`Receipt`] in the same
//! transaction. The ACK is returned only after that commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::ack::{self, err, AckCode, Answering, Rejection};
use super::adt::{self, Header};
use super::known::Known;
use super::map::{self, Keys};
use super::message::{Delimiters, Message, ParseError};
use crate::fhir::validate::validate;
use crate::store::hl7::{Receipt, ALREADY_APPLIED};
use crate::store::{Guard, Store, StoreError, StoredResource, WriteOp, WriteOutcome};

/// What message handling needs.
#[derive(Clone)]
pub struct Hl7Context {
    pub store: Arc<dyn Store>,
    /// Repeated A08s for one visit within this window raise one EncounterUpdated.
    pub a08_window: Duration,
    /// What the messages last saw stored, checked at each commit that uses it.
    pub known: Arc<Known>,
}

impl Hl7Context {
    pub fn new(store: Arc<dyn Store>, a08_window: Duration, remembered: usize) -> Self {
        Hl7Context {
            store,
            a08_window,
            known: Arc::new(Known::new(remembered)),
        }
    }
}

/// Handle one message (the bytes inside an MLLP frame); the ACK to send.
pub async fn handle(ctx: &Hl7Context, bytes: &[u8]) -> String {
    let now = chrono::Utc::now();
    let msg = match Message::parse_bytes(bytes) {
        Ok(m) => m,
        Err(e) => {
            let code = match e {
                ParseError::NoMsh | ParseError::Empty => err::SEGMENT_SEQUENCE,
                _ => err::DATA_TYPE,
            };
            let mut r = Rejection::ar(code, e.to_string());
            if matches!(e, ParseError::NoMsh | ParseError::BadDelimiters) {
                r = r.at("MSH", 1);
            }
            tracing::info!(
                ack = "AR",
                error = r.error,
                "HL7 message rejected: unreadable"
            );
            return ack::build(&Answering::default(), &Delimiters::default(), Err(&r), now);
        }
    };
    let answering = Answering::from_message(Some(&msg));
    let header = match adt::header(&msg) {
        Ok(h) => h,
        Err(r) => {
            tracing::info!(ack = "AR", error = r.error, at = ?r.location(), "HL7 message rejected");
            return ack::build(&answering, &msg.delims, Err(&r), now);
        }
    };
    // A resend is not looked up first: its receipt, first in the commit, fails the
    // commit, and the stored ACK answers it (`already_applied`). Every new message is
    // spared that lookup; a resend costs a commit that writes nothing. Four attempts:
    // the first may fail on a stale memory (`known`), leaving three that read.
    for _ in 0..4 {
        match attempt(ctx, &msg, &header, &answering).await {
            Attempt::Done(ack) => return ack,
            Attempt::Retry => continue,
        }
    }
    let r = Rejection::ar(
        err::APPLICATION_ERROR,
        "the visit kept changing while this message was applied; send it again",
    );
    answer_refusal(ctx, &header, &answering, &msg.delims, r).await
}

enum Attempt {
    Done(String),
    /// The stored Encounter changed between read and commit.
    Retry,
}

async fn attempt(ctx: &Hl7Context, msg: &Message, h: &Header, to: &Answering) -> Attempt {
    let now = chrono::Utc::now();
    let keys = match map::keys(msg, h) {
        Ok(k) => k,
        Err(r) => return Attempt::Done(refuse(ctx, msg, h, to, r, None).await),
    };
    let recorded = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Mapped once without the stored visit, to name what to read (an A11 or A13
    // cannot be: it is mapped below, over the visit), then laid over the visit.
    let first = map::map(msg, h, &keys, None, &recorded).ok();
    let mut found = match read_stored(ctx, &keys, first.as_ref()).await {
        Ok(f) => f,
        Err(e) => return Attempt::Done(unavailable(to, &msg.delims, e)),
    };
    let stored = found.take(&format!("Encounter/{}", keys.encounter));
    let stored_json = stored.as_ref().and_then(|s| s.json());
    let mapped = match (first, &stored_json) {
        (Some(first), None) => Ok(first),
        (Some(first), Some(visit)) => map::over_stored(first, msg, h, &keys, visit),
        (None, visit) => map::map(msg, h, &keys, visit.as_ref(), &recorded),
    };
    let mut mapped = match mapped {
        Ok(m) => m,
        Err(r) => return Attempt::Done(refuse(ctx, msg, h, to, r, Some(&keys)).await),
    };
    // Whatever this attempt comes to, a failed commit forgets what it used.
    let touched: Vec<String> = mapped.resources.iter().map(key).collect();
    // What is stored now of each resource the message maps to.
    let (stored_now, remembered) = match found.bodies(ctx, &mapped.resources).await {
        Ok(bodies) => bodies,
        Err(e) => return Attempt::Done(unavailable(to, &msg.delims, e)),
    };
    // A message naming no PCP (no PD1-4, no ROL PP) keeps the one stored.
    for (r, current) in mapped.resources.iter_mut().zip(&stored_now) {
        if r["resourceType"] == "Patient" && r.get("generalPractitioner").is_none() {
            if let Some(gp) = current.as_ref().and_then(|b| b.get("generalPractitioner")) {
                r["generalPractitioner"] = gp.clone();
            }
        }
    }
    // What the message leaves as it is stored is not written again (nor validated
    // again: it was when it was written).
    let mut resources: Vec<Value> = mapped
        .resources
        .into_iter()
        .zip(stored_now)
        .filter(|(r, current)| current.as_ref() != Some(r))
        .map(|(r, _)| r)
        .collect();
    if let Some(r) = invalid_fhir(&resources) {
        return Attempt::Done(refuse(ctx, msg, h, to, r, Some(&keys)).await);
    }
    let ack_text = ack::build(to, &msg.delims, Ok(()), now);
    name_what_was_written(&mut resources);
    // One lock order for every message (type, then id), so that concurrent messages
    // naming the same practitioners and places never deadlock on PostgreSQL.
    resources.sort_by(|a, b| {
        (a["resourceType"].as_str(), a["id"].as_str())
            .cmp(&(b["resourceType"].as_str(), b["id"].as_str()))
    });
    let mut ops: Vec<WriteOp> = resources
        .into_iter()
        .map(|resource| {
            let rtype = resource["resourceType"].as_str().unwrap_or("").to_owned();
            let id = resource["id"].as_str().unwrap_or("").to_owned();
            let if_match = match (&stored, rtype == "Encounter") {
                (Some(s), true) => Some(s.version),
                _ => None,
            };
            WriteOp::Update {
                rtype,
                id,
                resource,
                if_match,
                full_url: None,
            }
        })
        .collect();
    ops.push(WriteOp::Hl7(receipt(
        ctx,
        h,
        AckCode::AA,
        &ack_text,
        Some(&keys),
        mapped.correction,
    )));
    if !remembered.is_empty() {
        ops.push(WriteOp::Guard(Guard::Unchanged(remembered)));
    }
    let committed = ctx.store.commit(ops).await;
    match &committed {
        Ok(outcomes) => remember(ctx, outcomes),
        Err(_) => ctx.known.forget(&touched),
    }
    match committed {
        Ok(_) => {
            tracing::info!(event = %h.event, control_id = %h.control_id, encounter = %keys.encounter, ack = "AA", "HL7 message applied");
            Attempt::Done(ack_text)
        }
        Err(e) => match e.root() {
            StoreError::PreconditionFailed(_) => Attempt::Retry,
            StoreError::Conflict(m) if m == ALREADY_APPLIED => {
                Attempt::Done(already_applied(ctx, h, to, &msg.delims).await)
            }
            StoreError::Lifecycle(issue) => {
                let r = Rejection::ae(err::APPLICATION_ERROR, "MSH", 9, issue.message.clone());
                Attempt::Done(refuse(ctx, msg, h, to, r, Some(&keys)).await)
            }
            StoreError::Unprocessable(issues) | StoreError::Invalid(issues) => {
                let text = issues
                    .first()
                    .map(|i| i.message.clone())
                    .unwrap_or_else(|| "the message cannot be stored".into());
                let r = Rejection::ae(err::APPLICATION_ERROR, "MSH", 9, text);
                Attempt::Done(refuse(ctx, msg, h, to, r, Some(&keys)).await)
            }
            _ => Attempt::Done(unavailable(to, &msg.delims, e)),
        },
    }
}

/// `Type/id` of a mapped resource.
fn key(r: &Value) -> String {
    let rtype = r["resourceType"].as_str().unwrap_or("");
    let id = r["id"].as_str().unwrap_or("");
    format!("{rtype}/{id}")
}

/// The Provenance's targets are what the message generated or updated (R4
/// `Provenance.target`): a practitioner, place or condition it repeats as stored gets
/// no new version, so it is not named (which also spares an index row per name). The
/// patient is always named: the Provenance is in the patient's compartment only
/// through a Patient target, and consent decides reads of it by that (`api::access`).
/// The visit is always written, so a target remains in any case.
fn name_what_was_written(resources: &mut [Value]) {
    let written: std::collections::HashSet<String> = resources
        .iter()
        .filter(|r| r["resourceType"] != "Provenance")
        .map(key)
        .collect();
    for p in resources
        .iter_mut()
        .filter(|r| r["resourceType"] == "Provenance")
    {
        if let Some(targets) = p.get_mut("target").and_then(Value::as_array_mut) {
            let kept: Vec<Value> = targets
                .iter()
                .filter(|t| {
                    t["reference"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("Patient/") || written.contains(r))
                })
                .cloned()
                .collect();
            if !kept.is_empty() {
                *targets = kept;
            }
        }
    }
}

/// What is stored of the resources a message maps to, read in one statement: the
/// visit (the message is laid over it) and the others it names, each compared with
/// what the message says (one stored exactly so, as the practitioners, places and
/// patient most messages repeat, is not written again: no new version, no row lock).
/// Which resources those are the message alone tells: it is mapped once without the
/// stored visit to name them. (A correction, A11 or A13, cannot be mapped without it;
/// whatever it names beyond the visit is read after, see [`Found::bodies`].)
struct Found {
    asked: HashSet<String>,
    found: HashMap<String, StoredResource>,
    /// Those of `found` taken from [`Known`], not read: (type, id, version) for the
    /// commit's guard.
    remembered: Vec<(String, String, i64)>,
}

async fn read_stored(
    ctx: &Hl7Context,
    keys: &Keys,
    first: Option<&map::Mapped>,
) -> Result<Found, StoreError> {
    let mut wanted = vec![format!("Encounter/{}", keys.encounter)];
    if let Some(m) = first {
        wanted.extend(m.resources.iter().filter(|r| compared(r)).map(key));
    }
    let mut found = Found {
        asked: HashSet::new(),
        found: HashMap::new(),
        remembered: Vec::new(),
    };
    found.look_up(ctx, wanted).await?;
    Ok(found)
}

impl Found {
    /// Each of `wanted` from [`Known`] if there, else read (and remembered).
    async fn look_up(&mut self, ctx: &Hl7Context, wanted: Vec<String>) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        for k in wanted {
            match ctx.known.get(&k) {
                Some(s) => {
                    self.remembered
                        .push((s.rtype.clone(), s.id.clone(), s.version));
                    self.found.insert(k.clone(), s);
                }
                None => missing.push(k.clone()),
            }
            self.asked.insert(k);
        }
        if !missing.is_empty() {
            for s in ctx.store.read_many(&missing).await? {
                ctx.known.put(s.clone());
                self.found.insert(s.reference(), s);
            }
        }
        Ok(())
    }

    fn take(&mut self, reference: &str) -> Option<StoredResource> {
        self.found.remove(reference)
    }

    /// The stored body of each resource in `mapped` that is compared, without its
    /// `meta` (None when there is none), and what was taken from [`Known`]. Any not
    /// asked for before is looked up now.
    async fn bodies(
        mut self,
        ctx: &Hl7Context,
        mapped: &[Value],
    ) -> Result<(Vec<Option<Value>>, Vec<(String, String, i64)>), StoreError> {
        let missing: Vec<String> = mapped
            .iter()
            .filter(|r| compared(r))
            .map(key)
            .filter(|k| !self.asked.contains(k))
            .collect();
        if !missing.is_empty() {
            self.look_up(ctx, missing).await?;
        }
        let bodies = mapped
            .iter()
            .map(|r| {
                if !compared(r) {
                    return None;
                }
                let mut body = self.found.remove(&key(r))?.json()?;
                body.as_object_mut()?.remove("meta");
                Some(body)
            })
            .collect();
        Ok((bodies, self.remembered))
    }
}

/// Remember what a commit wrote (not the Provenance: no message reads it).
fn remember(ctx: &Hl7Context, outcomes: &[WriteOutcome]) {
    for o in outcomes {
        if let WriteOutcome::Created(s) | WriteOutcome::Updated(s) = o {
            if s.rtype != "Provenance" {
                ctx.known.put(s.clone());
            }
        }
    }
}

/// Whether a mapped resource is compared with what is stored: not the visit and the
/// Provenance, which every message writes.
fn compared(r: &Value) -> bool {
    !matches!(r["resourceType"].as_str(), Some("Encounter" | "Provenance"))
}

fn receipt(
    ctx: &Hl7Context,
    h: &Header,
    code: AckCode,
    ack: &str,
    keys: Option<&Keys>,
    correction: Option<crate::store::Correction>,
) -> Receipt {
    Receipt {
        sender: h.sender(),
        control_id: h.control_id.clone(),
        ack_code: code.as_str().into(),
        ack: ack.to_owned(),
        encounter: keys.map(|k| k.encounter.clone()),
        correction,
        coalesce_micros: (h.event == "A08").then_some(ctx.a08_window.as_micros() as i64),
    }
}

/// The first base-validation error of a mapped resource, as an AE (the mapping should
/// never produce one; if it does, nothing is stored).
fn invalid_fhir(resources: &[Value]) -> Option<Rejection> {
    for r in resources {
        if let Some(issue) = validate(r).into_iter().find(|i| i.is_error()) {
            let rtype = r["resourceType"].as_str().unwrap_or("resource");
            let at = issue.expression.clone().unwrap_or_default();
            return Some(Rejection::ae(
                err::APPLICATION_ERROR,
                "MSH",
                9,
                format!("the message maps to an invalid FHIR {rtype} (at {at})"),
            ));
        }
    }
    None
}

/// Answer an AE, keeping it for resends (nothing else is stored).
async fn refuse(
    ctx: &Hl7Context,
    msg: &Message,
    h: &Header,
    to: &Answering,
    r: Rejection,
    keys: Option<&Keys>,
) -> String {
    tracing::info!(event = %h.event, control_id = %h.control_id, ack = r.code.as_str(), error = r.error, at = ?r.location(), "HL7 message refused");
    if r.code != AckCode::AE {
        return answer_refusal(ctx, h, to, &msg.delims, r).await;
    }
    let text = ack::build(to, &msg.delims, Err(&r), chrono::Utc::now());
    let op = WriteOp::Hl7(receipt(ctx, h, AckCode::AE, &text, keys, None));
    match ctx.store.commit(vec![op]).await {
        Ok(_) => text,
        Err(e) if matches!(e.root(), StoreError::Conflict(m) if m == ALREADY_APPLIED) => {
            already_applied(ctx, h, to, &msg.delims).await
        }
        // The AE stands; a resend is checked again.
        Err(_) => text,
    }
}

/// An AR, which is not kept: unless the message was applied before (this is a
/// resend that could not be applied again), when its stored ACK answers it.
async fn answer_refusal(
    ctx: &Hl7Context,
    h: &Header,
    to: &Answering,
    d: &Delimiters,
    r: Rejection,
) -> String {
    if let Ok(Some(a)) = ctx.store.hl7_ack(&h.sender(), &h.control_id).await {
        tracing::info!(control_id = %h.control_id, "HL7 message resent: the stored ACK answers it");
        return a;
    }
    ack::build(to, d, Err(&r), chrono::Utc::now())
}

/// The message was applied before (a resend, or a copy committed concurrently):
/// answer with its stored ACK.
async fn already_applied(ctx: &Hl7Context, h: &Header, to: &Answering, d: &Delimiters) -> String {
    match ctx.store.hl7_ack(&h.sender(), &h.control_id).await {
        Ok(Some(a)) => {
            tracing::info!(control_id = %h.control_id, "HL7 message resent: the stored ACK answers it");
            a
        }
        Ok(None) => unavailable(to, d, StoreError::NotFound("the stored ACK".into())),
        Err(e) => unavailable(to, d, e),
    }
}

fn unavailable(to: &Answering, d: &Delimiters, e: StoreError) -> String {
    tracing::warn!(error = %e, "HL7 message not stored: the store failed");
    let r = Rejection::ar(
        err::APPLICATION_ERROR,
        "the gateway could not store the message now; send it again",
    );
    ack::build(to, d, Err(&r), chrono::Utc::now())
}
