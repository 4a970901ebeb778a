//! Applies a list of [`WriteOp`]s inside one open transaction, on either backend.
//!
//! Order follows FHIR transaction processing: deletes, then creates, then updates;
//! conditional matches are resolved first, so `urn:uuid:` fullUrls can be rewritten to
//! the ids the entries finally get (a conditional create that matched points at the
//! existing resource). Outcomes come back in the caller's order.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;

use super::sql::Sql;
use super::{
    guard, handoffs, internal, outbox, records, StoreError, StoredResource, WriteOp, WriteOutcome,
};
use crate::fhir::search::{dates, stored_entries, IndexEntry, SearchQuery};
use crate::handoffs::Policy;
use plan::{plan, resource_type};

/// What an executor needs from an open transaction.
#[async_trait]
pub trait Tx: Send {
    /// `(version, deleted)` of the current version; on PostgreSQL the row is locked.
    async fn current(&mut self, rtype: &str, id: &str) -> Result<Option<(i64, bool)>, StoreError>;
    async fn load(&mut self, rtype: &str, id: &str) -> Result<Option<StoredResource>, StoreError>;
    /// Serialise conditional operations on one type (PostgreSQL: an advisory lock).
    async fn lock_conditional(&mut self, rtype: &str) -> Result<(), StoreError>;
    /// Ids of up to `limit` current matches.
    async fn find(&mut self, q: &SearchQuery, limit: i64) -> Result<Vec<String>, StoreError>;
    /// Write a version and replace the index rows. `existed`: a current row was there.
    async fn write(
        &mut self,
        v: &StoredResource,
        index: &[IndexEntry],
        existed: bool,
    ) -> Result<(), StoreError>;
    /// Write the first versions of resources with new ids (the ledger's entries of one
    /// notification), all in one statement where a statement is a round trip.
    async fn write_new_many(&mut self, versions: &[&Prepared]) -> Result<(), StoreError> {
        for p in versions {
            self.write(&p.stored, &p.index, false).await?;
        }
        Ok(())
    }
    /// The current versions of `keys` (type, id) that exist, deleted ones included, in
    /// no particular order: one statement per chunk where a statement is a round trip.
    async fn load_many(
        &mut self,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredResource>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for (t, id) in keys {
            out.extend(self.load(t, id).await?);
        }
        Ok(out)
    }
    /// Run a statement (records, events): the number of rows it changed.
    async fn exec(&mut self, s: &Sql) -> Result<u64, StoreError>;
    /// The first column of the first row, as text.
    async fn fetch_text(&mut self, s: &Sql) -> Result<Option<String>, StoreError>;
    /// Every row, each column as a [`Cell`] (integers, text, NULL).
    async fn fetch_rows(&mut self, s: &Sql) -> Result<Vec<Vec<Cell>>, StoreError>;
    /// Run a one-row INSERT into a table keyed by `key`, an integer primary key the
    /// store assigns, and return the key given. (Not `RETURNING` on SQLite: that makes
    /// SQLite journal the statement, a copy of every page it touches.)
    async fn insert_key(&mut self, s: &Sql, key: &str) -> Result<i64, StoreError>;
    /// `" FOR UPDATE SKIP LOCKED"` where rows can be claimed concurrently (PostgreSQL);
    /// empty where one writer already serialises every claim (SQLite).
    fn skip_locked(&self) -> &'static str;
    /// `<column> IN (sub)` as the backend plans best for a short list of keys: on
    /// PostgreSQL `= ANY(ARRAY(sub))`, the list computed once and each key probed in
    /// the column's index; its `IN` is planned as a join, which with a misjudged table
    /// size was a scan of the whole table (the claim's heads in the outbox).
    fn in_list(&self, sub: &str) -> String {
        format!("IN ({sub})")
    }
    /// The key this process claims outbox rows under: on PostgreSQL, the advisory lock
    /// it holds for as long as it lives (`postgres::claimer`); None on SQLite, which one
    /// gateway serves (it releases every claim at its start).
    fn claimer(&self) -> Option<i64> {
        None
    }
    /// An ` OR ...` term, true when the process whose key is in `column` is gone, so
    /// that its claims are taken over at once rather than when their lease runs out;
    /// empty where there is no such test (SQLite).
    fn gone_claimer(&self, _column: &str) -> String {
        String::new()
    }
    /// Whether each statement is a round trip (PostgreSQL): then work on many rows goes
    /// as one statement over a JSON list of them. Not on SQLite, where a statement costs
    /// no trip and one per row stays cached and needs no statement journal.
    fn round_trips(&self) -> bool {
        false
    }
    /// What decides a disclosure no consent directive speaks to (`consent::Policy`).
    fn consent_policy(&self) -> &crate::consent::Policy;
    /// Notifications were queued or may have become due in this transaction: the
    /// delivery worker is woken once it commits (and only then).
    fn mark_due(&mut self);
}

/// A column value read inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn into_text(self) -> Option<String> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
}

enum Plan {
    Write {
        rtype: String,
        id: String,
        resource: Value,
        prior: Option<(i64, bool)>,
        created: bool,
    },
    Existing(StoredResource),
    Delete {
        rtype: String,
        id: String,
        prior: Option<(i64, bool)>,
    },
    Hl7(Box<super::hl7::Receipt>),
}

pub async fn execute<T: Tx>(
    tx: &mut T,
    mut ops: Vec<WriteOp>,
    policy: &Policy,
) -> Result<Vec<WriteOutcome>, StoreError> {
    match ops.as_slice() {
        [WriteOp::Outbox(_)] => {
            let Some(WriteOp::Outbox(op)) = ops.pop() else {
                unreachable!("matched just above")
            };
            return Ok(vec![internal::outbox_op(tx, op).await?]);
        }
        [WriteOp::Handoffs(_)] => {
            let Some(WriteOp::Handoffs(op)) = ops.pop() else {
                unreachable!("matched just above")
            };
            return Ok(vec![internal::handoffs_op(tx, op, policy).await?]);
        }
        [WriteOp::PruneHl7 { before, limit }] => {
            let n = super::hl7::prune(tx, *before, *limit).await?;
            return Ok(vec![WriteOutcome::Pruned(n)]);
        }
        _ => {}
    }
    // Guards are held, not applied, and yield no outcome: set apart, the ops' indexes
    // and outcomes are those of the changes alone.
    let (guards, ops): (Vec<_>, Vec<_>) = ops
        .into_iter()
        .partition(|op| matches!(op, WriteOp::Guard(_)));
    let many = ops.len() > 1;
    let commit_has_task = ops.iter().any(|op| match op {
        WriteOp::Create { resource, .. }
        | WriteOp::Update { resource, .. }
        | WriteOp::ConditionalUpdate { resource, .. } => resource["resourceType"] == "Task",
        _ => false,
    });
    let receipt = ops.iter().find_map(|op| match op {
        WriteOp::Hl7(r) => Some(r.clone()),
        _ => None,
    });
    let wrap = |index: usize, e: StoreError| {
        if many {
            StoreError::Entry {
                index,
                source: Box::new(e),
            }
        } else {
            e
        }
    };

    let mut order: Vec<usize> = (0..ops.len()).collect();
    // A message's receipt first: a second copy of the message committing at the same
    // time waits on its key (PostgreSQL) and fails there, before touching a resource.
    order.sort_by_key(|&i| match ops[i] {
        WriteOp::Hl7(_) => 0,
        WriteOp::Delete { .. } | WriteOp::ConditionalDelete { .. } => 1,
        WriteOp::Create { .. } => 2,
        WriteOp::Update { .. } | WriteOp::ConditionalUpdate { .. } => 3,
        WriteOp::Outbox(_)
        | WriteOp::Handoffs(_)
        | WriteOp::PruneHl7 { .. }
        | WriteOp::Guard(_) => 4,
    });

    // 1. Resolve every op to a plan; note the fullUrl -> Type/id mapping.
    let mut plans: Vec<Option<Plan>> = (0..ops.len()).map(|_| None).collect();
    let mut urls: HashMap<String, String> = HashMap::new();
    let mut ops: Vec<Option<WriteOp>> = ops.into_iter().map(Some).collect();
    for &i in &order {
        let op = ops[i].take().expect("each op planned once");
        let (plan, full_url) = plan(tx, op).await.map_err(|e| wrap(i, e))?;
        if let Some(url) = full_url {
            let target = match &plan {
                Plan::Write { rtype, id, .. } => format!("{rtype}/{id}"),
                Plan::Existing(s) => s.reference(),
                Plan::Delete { .. } | Plan::Hl7(_) => continue,
            };
            urls.insert(url, target);
        }
        plans[i] = Some(plan);
    }

    // What was judged outside the transaction still holds (after the plans: on
    // PostgreSQL their reads locked the rows they will write).
    for g in &guards {
        if let WriteOp::Guard(g) = g {
            guard::hold(tx, g).await?;
        }
    }

    // 2. Apply, in processing order.
    let now = dates::now_micros();
    let mut cues = Vec::new();
    let mut outcomes: Vec<Option<WriteOutcome>> = (0..plans.len()).map(|_| None).collect();
    for &i in &order {
        let outcome = match plans[i].take().expect("planned") {
            Plan::Existing(s) => WriteOutcome::Existing(s),
            Plan::Hl7(r) => {
                super::hl7::save(tx, &r, now)
                    .await
                    .map_err(|e| wrap(i, e))?;
                WriteOutcome::Queued(0)
            }
            Plan::Delete { rtype, id, prior } => match prior {
                None => WriteOutcome::Deleted {
                    rtype,
                    id,
                    version: None,
                },
                Some((v, true)) => WriteOutcome::Deleted {
                    rtype,
                    id,
                    version: Some(v),
                },
                Some((v, false)) => {
                    let tomb = StoredResource {
                        rtype,
                        id,
                        version: v + 1,
                        last_updated: now,
                        deleted: true,
                        body: None,
                    };
                    tx.write(&tomb, &[], true).await.map_err(|e| wrap(i, e))?;
                    records::remove(tx, &tomb.rtype, &tomb.id)
                        .await
                        .map_err(|e| wrap(i, e))?;
                    if tomb.rtype == "Subscription" {
                        outbox::remove(tx, &tomb.id, now)
                            .await
                            .map_err(|e| wrap(i, e))?;
                    }
                    WriteOutcome::Deleted {
                        rtype: tomb.rtype,
                        id: tomb.id,
                        version: Some(tomb.version),
                    }
                }
            },
            Plan::Write {
                rtype,
                id,
                mut resource,
                prior,
                created,
            } => {
                if !urls.is_empty() {
                    rewrite_references(&mut resource, &urls);
                }
                let version = prior.map(|(v, _)| v + 1).unwrap_or(1);
                let subscription = if rtype == "Subscription" {
                    Some(
                        outbox::prepare(tx, &id, &mut resource)
                            .await
                            .map_err(|e| wrap(i, e))?,
                    )
                } else {
                    None
                };
                let handoff = if rtype == "Task" && !created {
                    handoffs::before_write(tx, &id, &mut resource, now, policy)
                        .await
                        .map_err(|e| wrap(i, e))?
                } else {
                    None
                };
                stamp(&mut resource, &id, version, now);
                let index = stored_entries(&rtype, &resource);
                let body = serde_json::to_string(&resource).expect("JSON values always serialise");
                // Created here with a server-assigned id (not an update-as-create).
                let server_assigned = created;
                let created = created || prior.is_none_or(|(_, deleted)| deleted);
                let stored = StoredResource {
                    rtype,
                    id,
                    version,
                    last_updated: now,
                    deleted: false,
                    body: Some(body.into()),
                };
                tx.write(&stored, &index, prior.is_some())
                    .await
                    .map_err(|e| wrap(i, e))?;
                let hl7 = receipt.as_ref().filter(|r| {
                    stored.rtype == "Encounter"
                        && r.encounter.as_deref() == Some(stored.id.as_str())
                });
                let known = records::Known {
                    new_id: server_assigned,
                    commit_has_task,
                    correction: hl7.and_then(|r| r.correction),
                    coalesce_micros: hl7.and_then(|r| r.coalesce_micros),
                };
                let raised = records::sync(tx, &stored, &resource, known)
                    .await
                    .map_err(|e| wrap(i, e))?;
                cues.extend(raised);
                if let Some(p) = handoff {
                    handoffs::after_write(tx, &stored, p)
                        .await
                        .map_err(|e| wrap(i, e))?;
                }
                if let Some(p) = subscription {
                    outbox::save(tx, &stored, p).await.map_err(|e| wrap(i, e))?;
                }
                if created {
                    WriteOutcome::Created(stored)
                } else {
                    WriteOutcome::Updated(stored)
                }
            }
        };
        outcomes[i] = Some(outcome);
    }
    // Handoffs last: a referral's own Task may come after its ServiceRequest.
    handoffs::open(tx, cues, now, policy).await?;
    Ok(outcomes.into_iter().map(|o| o.expect("applied")).collect())
}

/// Write a version the server itself makes (no hooks run): `resource` is stamped and
/// indexed; the stored version is returned.
pub(super) async fn write_server_version<T: Tx>(
    tx: &mut T,
    rtype: &str,
    id: &str,
    resource: &mut Value,
    version: i64,
    now: i64,
    existed: bool,
) -> Result<StoredResource, StoreError> {
    stamp(resource, id, version, now);
    let index = stored_entries(rtype, resource);
    let body = serde_json::to_string(&*resource).expect("JSON values always serialise");
    let stored = StoredResource {
        rtype: rtype.to_owned(),
        id: id.to_owned(),
        version,
        last_updated: now,
        deleted: false,
        body: Some(body.into()),
    };
    tx.write(&stored, &index, existed).await?;
    Ok(stored)
}

/// Version 1 of a resource the server itself makes (an AuditEvent of the disclosure
/// ledger), with a new id, stamped, serialised and indexed but not yet written: pure
/// work, which callers may do before the writer's transaction (see `Prepared`).
pub fn prepare_new(mut resource: Value, now: i64) -> Result<Prepared, StoreError> {
    let rtype = resource_type(&resource)?;
    let id = new_id();
    stamp(&mut resource, &id, 1, now);
    let index = stored_entries(&rtype, &resource);
    let body = serde_json::to_string(&resource).expect("JSON values always serialise");
    let stored = StoredResource {
        rtype,
        id,
        version: 1,
        last_updated: now,
        deleted: false,
        body: Some(body.into()),
    };
    Ok(Prepared { stored, index })
}

/// A new version ready to write: its row and its search rows.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub stored: StoredResource,
    pub index: Vec<IndexEntry>,
}

impl Prepared {
    /// Write it (no hooks run).
    pub async fn write<T: Tx>(&self, tx: &mut T) -> Result<(), StoreError> {
        tx.write(&self.stored, &self.index, false).await
    }
}

/// Write version 1 of a resource the server itself makes, with a new id; no hooks run.
pub async fn write_new<T: Tx>(
    tx: &mut T,
    resource: Value,
    now: i64,
) -> Result<StoredResource, StoreError> {
    let p = prepare_new(resource, now)?;
    p.write(tx).await?;
    Ok(p.stored)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Server-owned fields: `id`, `meta.versionId`, `meta.lastUpdated`. Other meta (profile,
/// security labels, tags) is kept as the client sent it.
fn stamp(resource: &mut Value, id: &str, version: i64, now: i64) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    // Keep resourceType first and id second, as FHIR JSON is conventionally written.
    obj.shift_insert(1.min(obj.len()), "id".into(), Value::String(id.to_owned()));
    let meta = obj
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("versionId".into(), Value::String(version.to_string()));
        meta.insert(
            "lastUpdated".into(),
            Value::String(dates::format_instant(now)),
        );
    }
}

fn rewrite_references(v: &mut Value, urls: &HashMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "reference" {
                    if let Value::String(s) = child {
                        if let Some(target) = urls.get(s.as_str()) {
                            *s = target.clone();
                        }
                    }
                } else {
                    rewrite_references(child, urls);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_references(i, urls)),
        _ => {}
    }
}

mod plan;

#[cfg(test)]
mod tests;
