//! Durable storage behind one trait, one module per backend (each owning its
//! migrations). The backend is chosen from the database URL: `postgres://` selects
//! PostgreSQL, anything else is an SQLite file.
//!
//! Writes go through [`Store::commit`]: a list of [`WriteOp`]s applied all-or-nothing.
//! The same executor ([`executor`]) runs the ops on both backends; the backends differ
//! only in how they batch commits (SQLite: one writer task that group-commits many
//! requests per fsync; PostgreSQL: concurrent transactions whose WAL flushes the server
//! coalesces) and in their SQL dialect ([`sql`]).

#[macro_use]
mod backend;
pub mod disclosure;
pub mod events;
pub mod executor;
mod guard;
pub mod handoffs;
pub mod hl7;
mod internal;
pub mod outbox;
pub mod postgres;
pub mod records;
pub mod sql;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::SearchQuery;
use crate::records::RecordKind;
pub use events::{EventCursor, EventPage, EventQuery, EventRow};
pub use records::RecordQuery;

/// One stored version of a resource. `body` is the JSON text with `id` and `meta` set
/// by the server; a deletion is a version with `deleted = true` and no body.
#[derive(Debug, Clone)]
pub struct StoredResource {
    pub rtype: String,
    pub id: String,
    pub version: i64,
    /// Microseconds since the Unix epoch.
    pub last_updated: i64,
    pub deleted: bool,
    pub body: Option<Arc<str>>,
}

impl StoredResource {
    pub fn json(&self) -> Option<Value> {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
    }
    pub fn reference(&self) -> String {
        format!("{}/{}", self.rtype, self.id)
    }
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create with a server-assigned id. With `if_none_exist`, an existing match is
    /// returned instead (several matches: 412).
    Create {
        resource: Value,
        if_none_exist: Option<SearchQuery>,
        full_url: Option<String>,
    },
    /// Update (or create with the client's id). `if_match` is the expected current version.
    Update {
        rtype: String,
        id: String,
        resource: Value,
        if_match: Option<i64>,
        full_url: Option<String>,
    },
    /// Update the single match of a search; none matched: create.
    ConditionalUpdate {
        query: SearchQuery,
        resource: Value,
        full_url: Option<String>,
    },
    Delete {
        rtype: String,
        id: String,
        if_match: Option<i64>,
    },
    ConditionalDelete {
        query: SearchQuery,
    },
    /// Server-internal work on the notification outbox; never built from a request.
    Outbox(OutboxOp),
    /// An HL7 v2 message applied by the ops of this commit (never built from a FHIR
    /// request): its ACK is kept for resends, and it may carry a correction (A11, A13)
    /// or ask for A08 coalescing (see [`hl7`]).
    Hl7(hl7::Receipt),
    /// Server-internal work on handoffs (the deadline sweep).
    Handoffs(HandoffOp),
    /// What a check made outside the transaction judged (a recipient client's change:
    /// `api::access::check_recipient_change`), to hold still when the commit runs: the
    /// commit fails with a conflict, nothing written, if it no longer does. Yields no
    /// outcome: the outcomes returned are those of the other ops, in order.
    Guard(Guard),
    /// Server-internal housekeeping: forget (at most `limit`) HL7 message receipts
    /// received before `before` (microseconds); a resend after that is applied anew.
    PruneHl7 {
        before: i64,
        limit: i64,
    },
}

/// See [`WriteOp::Guard`].
#[derive(Debug, Clone)]
pub enum Guard {
    /// `rtype/id` is still at `version` (None: absent or deleted).
    Version {
        rtype: String,
        id: String,
        version: Option<i64>,
    },
    /// The search still matches these ids and no others (read with `_count=2`: a
    /// conditional write fails on more than one match anyway).
    Matches {
        query: SearchQuery,
        ids: Vec<String>,
    },
    /// Each (type, id, version) is still the current, live version, read in one
    /// statement without a lock: for what the commit does not write itself, or writes
    /// under its own lock (an HL7 message's remembered resources, `hl7::known`). Fails
    /// the commit with `PreconditionFailed` (the message is applied again), not a
    /// conflict.
    Unchanged(Vec<(String, String, i64)>),
}

#[derive(Debug, Clone)]
pub enum HandoffOp {
    /// Escalate the overdue handoffs, if `holder` holds (or can take) the sweep lease
    /// until `lease_until`.
    Sweep {
        now: i64,
        holder: String,
        lease_until: i64,
    },
}

pub use hl7::Correction;

#[derive(Debug, Clone)]
pub enum OutboxOp {
    /// Requeue dead notifications (one subscription's, or all) and reactivate.
    Replay {
        subscription: Option<String>,
        now: i64,
    },
    /// Forget every delivery claim: at the start of the only gateway serving an SQLite
    /// store, claims found were held by a process that is gone.
    ReleaseClaims,
    /// Queue the heartbeats that are due.
    Heartbeats { now: i64 },
    /// Forget up to `limit` notifications finished (delivered, or withheld by consent)
    /// before `before`, and the attempts of notifications no longer kept.
    Prune { before: i64, limit: i64 },
    Claim {
        now: i64,
        lease_until: i64,
        limit: i64,
        /// The most events one notification carries (`outbox::claim`).
        max_events: u32,
    },
    Finish {
        claimed: Box<outbox::Claimed>,
        attempt: outbox::Attempt,
        next: outbox::Next,
        /// `outbox::ledger(claimed, attempt, next)`, made before the commit.
        ledger: Vec<disclosure::Entry>,
    },
}

#[derive(Debug, Clone)]
pub enum WriteOutcome {
    Created(StoredResource),
    Updated(StoredResource),
    /// A conditional create matched this existing resource; nothing was written.
    Existing(StoredResource),
    /// Rows claimed from the outbox.
    Claimed(Vec<outbox::Claimed>),
    /// Heartbeats queued, or dead notifications requeued.
    Queued(usize),
    /// An outbox row finished; the subscription's new status, if it changed.
    Finished(Option<&'static str>),
    /// A deadline sweep's outcome.
    Swept(handoffs::Swept),
    /// Rows pruned.
    Pruned(usize),
    /// Deleted; `version` is the tombstone's version, None when nothing existed.
    Deleted {
        rtype: String,
        id: String,
        version: Option<i64>,
    },
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub rtype: Option<String>,
    pub id: Option<String>,
    pub since: Option<i64>,
    pub count: usize,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<StoredResource>,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Gone(String),
    /// If-Match named another version, or a conditional matched several resources.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Conflict(String),
    /// A record's lifecycle forbids the change (409).
    #[error("{}", .0.message)]
    Lifecycle(Issue),
    /// The change is incomplete for what it claims, e.g. a discharge with no end (422).
    #[error("{}", .0.first().map(|i| i.message.as_str()).unwrap_or("unprocessable"))]
    Unprocessable(Vec<Issue>),
    /// Bad content discovered while applying ops (e.g. a conditional query in a body).
    #[error("{}", .0.first().map(|i| i.message.as_str()).unwrap_or("invalid"))]
    Invalid(Vec<Issue>),
    /// An op inside a multi-op commit failed; `index` is its position.
    #[error("entry {index}: {source}")]
    Entry {
        index: usize,
        source: Box<StoreError>,
    },
    #[error("the store is shutting down")]
    Unavailable,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// From the SQLite writer thread, which uses rusqlite.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The error itself, or for an op inside a multi-op commit, the op's own error.
    pub fn root(&self) -> &StoreError {
        match self {
            StoreError::Entry { source, .. } => source.root(),
            other => other,
        }
    }

    /// A failure of the database itself (not of the request): logged, reported as 500.
    pub fn is_internal(&self) -> bool {
        match self {
            StoreError::Database(_) | StoreError::Sqlite(_) | StoreError::Migrate(_) => true,
            StoreError::Entry { source, .. } => source.is_internal(),
            _ => false,
        }
    }

    pub fn issue_code(&self) -> IssueCode {
        match self {
            StoreError::NotFound(_) => IssueCode::NotFound,
            StoreError::Gone(_) => IssueCode::Deleted,
            StoreError::PreconditionFailed(_) => IssueCode::Conflict,
            StoreError::Conflict(_) => IssueCode::Conflict,
            StoreError::Invalid(i) | StoreError::Unprocessable(i) => {
                i.first().map(|i| i.code).unwrap_or(IssueCode::Invalid)
            }
            StoreError::Lifecycle(i) => i.code,
            StoreError::Entry { source, .. } => source.issue_code(),
            StoreError::Unavailable => IssueCode::Transient,
            StoreError::Database(_) | StoreError::Sqlite(_) | StoreError::Migrate(_) => {
                IssueCode::Exception
            }
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Current version, including a deletion tombstone.
    async fn read(&self, rtype: &str, id: &str) -> Result<Option<StoredResource>, StoreError>;
    async fn vread(
        &self,
        rtype: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredResource>, StoreError>;
    /// Newest first.
    async fn history(&self, q: &HistoryQuery) -> Result<Page, StoreError>;
    async fn search(&self, q: &SearchQuery) -> Result<Page, StoreError>;
    /// Resources by `Type/id`, in the order asked, each once, in one statement per 200.
    /// Missing and deleted ones are skipped.
    async fn read_many(&self, refs: &[String]) -> Result<Vec<StoredResource>, StoreError>;
    /// Apply all ops in one transaction; on success every op's outcome, in order.
    async fn commit(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, StoreError>;
    /// The ACK stored for an HL7 v2 message (sender `MSH-3|MSH-4`, MSH-10), if it was
    /// applied before.
    async fn hl7_ack(&self, sender: &str, control_id: &str) -> Result<Option<String>, StoreError>;
    /// A coordination record's JSON.
    async fn record(&self, kind: RecordKind, id: &str) -> Result<Option<String>, StoreError>;
    /// One page of records' JSON and the total matching.
    async fn records(&self, q: &RecordQuery) -> Result<(Vec<String>, u64), StoreError>;
    /// A page of the domain event log (see `events` for why PostgreSQL may hold some
    /// back for a moment).
    async fn events(&self, q: &EventQuery) -> Result<EventPage, StoreError>;
    /// The domain event numbered `seq`.
    async fn event(&self, seq: i64) -> Result<Option<EventRow>, StoreError>;
    /// Subscriptions' server state: one (`id`) or all.
    async fn subscription_states(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<outbox::SubState>, StoreError>;
    /// A subscription's notifications and delivery attempts (newest first), as JSON
    /// for operators.
    async fn deliveries(
        &self,
        id: &str,
        limit: i64,
    ) -> Result<(Vec<Value>, Vec<Value>), StoreError>;
    /// The events notified to a subscription with numbers in `from..=to`, oldest first.
    async fn subscription_events(
        &self,
        id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<(i64, EventRow)>, StoreError>;
    /// Rows of a read-only statement, each column as a [`executor::Cell`] (integers,
    /// text, NULL): for reads that need no typed method of their own (the worklist).
    async fn rows(&self, s: &sql::Sql) -> Result<Vec<Vec<executor::Cell>>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    fn backend(&self) -> &'static str;
    /// Pinged after every commit that queued notifications or may have made some due
    /// (`Tx::mark_due`: a row queued, a delivery finished, a replay, released claims),
    /// not after other writes: the delivery worker waits on it.
    fn signal(&self) -> Arc<tokio::sync::Notify>;
}

/// Open (and migrate) the store named by `url`.
pub async fn connect(url: &str, settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url, settings).await?))
    } else {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, settings).await?))
    }
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Maximum connections for reads (and, on PostgreSQL, writes).
    pub pool_size: u32,
    /// SQLite group commit: most requests folded into one transaction.
    pub max_batch: usize,
    /// PostgreSQL: schema to use (tests give every run its own).
    pub pg_schema: Option<String>,
    /// Decides disclosures no consent directive speaks to, at match time and before
    /// every delivery attempt (docs/consent.md).
    pub consent_policy: crate::consent::Policy,
    /// Deadlines and escalation targets of handoffs, applied inside the write transaction.
    pub handoffs: Arc<crate::handoffs::Policy>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            pool_size: 8,
            max_batch: 256,
            pg_schema: None,
            consent_policy: crate::consent::Policy::gateway_default(),
            handoffs: Arc::default(),
        }
    }
}
