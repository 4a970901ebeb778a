//! Referral: a ServiceRequest plus the Task that tracks it at the receiver.
//!
//! The referral's status combines both: the ServiceRequest says whether the referral
//! is a draft, cancelled or done; while it is active, the Task says how far the
//! receiver has got (see [`derive_status`]). Rendering goes the other way
//! ([`ReferralStatus::service_request_status`], [`ReferralStatus::task_status`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::types::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferralStatus {
    Draft,
    Requested,
    Accepted,
    Rejected,
    Scheduled,
    Completed,
    Cancelled,
    EnteredInError,
}

impl ReferralStatus {
    pub const ALL: [ReferralStatus; 8] = [
        Self::Draft,
        Self::Requested,
        Self::Accepted,
        Self::Rejected,
        Self::Scheduled,
        Self::Completed,
        Self::Cancelled,
        Self::EnteredInError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Requested => "requested",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Scheduled => "scheduled",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::EnteredInError => "entered-in-error",
        }
    }

    /// The legal moves. Staying put is always legal; entered-in-error is reachable from
    /// anywhere (a correction); completed, rejected, cancelled and entered-in-error are final.
    pub fn may_become(self, next: ReferralStatus) -> bool {
        use ReferralStatus::*;
        self == next
            || next == EnteredInError
            || matches!(
                (self, next),
                (Draft, Requested | Cancelled)
                    | (
                        Requested,
                        Accepted | Rejected | Scheduled | Completed | Cancelled
                    )
                    | (Accepted, Scheduled | Completed | Cancelled)
                    | (Scheduled, Completed | Cancelled)
            )
    }

    pub fn service_request_status(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Completed => "completed",
            Self::Cancelled => "revoked",
            Self::EnteredInError => "entered-in-error",
            _ => "active",
        }
    }

    /// The Task status for this referral status; None: no Task is needed.
    pub fn task_status(self) -> Option<&'static str> {
        match self {
            Self::Draft => None,
            Self::Requested => Some("requested"),
            Self::Accepted => Some("accepted"),
            Self::Rejected => Some("rejected"),
            Self::Scheduled => Some("in-progress"),
            Self::Completed => Some("completed"),
            Self::Cancelled => Some("cancelled"),
            Self::EnteredInError => Some("entered-in-error"),
        }
    }
}

/// The referral's status from the ServiceRequest's status and its Task's, if any.
pub fn derive_status(sr_status: &str, task_status: Option<&str>) -> ReferralStatus {
    use ReferralStatus::*;
    match sr_status {
        "draft" => Draft,
        "revoked" => Cancelled,
        "completed" => Completed,
        "entered-in-error" => EnteredInError,
        // active, on-hold, unknown: the receiver's Task tells the rest.
        _ => match task_status {
            Some("accepted") => Accepted,
            Some("rejected") => Rejected,
            Some("in-progress") | Some("on-hold") => Scheduled,
            Some("completed") => Completed,
            Some("cancelled") | Some("failed") => Cancelled,
            Some("entered-in-error") => EnteredInError,
            _ => Requested,
        },
    }
}

/// The receiver's Task, as far as the referral is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskLink {
    pub id: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Referral {
    /// The ServiceRequest's id (assigned by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: ReferralStatus,
    /// ServiceRequest.subject.
    pub patient: Party,
    /// ServiceRequest.requester: the referring practitioner or organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Party>,
    /// ServiceRequest.performer: the receiving practitioners or organizations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<Party>,
    /// ServiceRequest.code: what is asked for (e.g. a cardiology consult).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Concept>,
    /// ServiceRequest.reasonCode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Concept>,
    /// ServiceRequest.reasonReference (Condition, Observation, DiagnosticReport...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_references: Vec<Party>,
    /// ServiceRequest.priority: routine | urgent | asap | stat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    /// ServiceRequest.supportingInfo: tests already done, records that travel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supporting_info: Vec<Party>,
    /// ServiceRequest.occurrencePeriod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_period: Option<Period>,
    /// ServiceRequest.authoredOn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authored_on: Option<String>,
    /// The Task whose focus is this ServiceRequest (server-maintained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskLink>,
    /// Task.output references: the consult result when it comes back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<Party>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

const PRIORITIES: [&str; 4] = ["routine", "urgent", "asap", "stat"];

impl Referral {
    /// The referral a ServiceRequest describes, with what an earlier version learnt
    /// from its Task (`task`, `results`).
    pub fn from_service_request(sr: &Value, prior: Option<&Referral>) -> Referral {
        let task = prior.and_then(|p| p.task.clone());
        let sr_status = sr["status"].as_str().unwrap_or("active");
        Referral {
            id: str_of(sr, "id"),
            status: derive_status(sr_status, task.as_ref().map(|t| t.status.as_str())),
            patient: sr
                .get("subject")
                .and_then(Party::from_json)
                .unwrap_or_default(),
            referrer: sr.get("requester").and_then(Party::from_json),
            receivers: parties(sr.get("performer")),
            service: sr.get("code").and_then(Concept::from_json),
            reasons: concepts(sr.get("reasonCode")),
            reason_references: parties(sr.get("reasonReference")),
            urgency: str_of(sr, "priority"),
            supporting_info: parties(sr.get("supportingInfo")),
            requested_period: sr.get("occurrencePeriod").and_then(Period::from_json),
            authored_on: str_of(sr, "authoredOn"),
            results: prior.map(|p| p.results.clone()).unwrap_or_default(),
            task,
            sources: Vec::new(),
        }
    }

    /// Take in the receiver's Task: its status and its outputs.
    pub fn apply_task(&mut self, task: &Value, sr_status: &str) {
        let status = task["status"].as_str().unwrap_or("requested").to_owned();
        self.status = derive_status(sr_status, Some(&status));
        self.task = Some(TaskLink {
            id: str_of(task, "id").unwrap_or_default(),
            status,
        });
        self.results = items(task.get("output"))
            .filter_map(|o| o.get("valueReference").and_then(Party::from_json))
            .collect();
    }

    /// The ServiceRequest, overlaid on `base` (the stored version) when given.
    pub fn to_service_request(&self, base: Option<Value>) -> Value {
        let mut m = base_object(base, "ServiceRequest");
        m.insert("status".into(), json!(self.status.service_request_status()));
        if !m.contains_key("intent") {
            m.insert("intent".into(), json!("order"));
        }
        put(&mut m, "code", self.service.as_ref().map(Concept::to_json));
        put(&mut m, "subject", Some(self.patient.to_json()));
        put(
            &mut m,
            "requester",
            self.referrer.as_ref().map(Party::to_json),
        );
        put(&mut m, "performer", array(&self.receivers, Party::to_json));
        put(&mut m, "reasonCode", array(&self.reasons, Concept::to_json));
        put(
            &mut m,
            "reasonReference",
            array(&self.reason_references, Party::to_json),
        );
        put(&mut m, "priority", self.urgency.clone().map(Value::String));
        put(
            &mut m,
            "supportingInfo",
            array(&self.supporting_info, Party::to_json),
        );
        if self.requested_period.is_some() {
            m.remove("occurrenceDateTime");
            m.remove("occurrenceTiming");
        }
        put(
            &mut m,
            "occurrencePeriod",
            self.requested_period.as_ref().map(Period::to_json),
        );
        put(
            &mut m,
            "authoredOn",
            self.authored_on.clone().map(Value::String),
        );
        Value::Object(m)
    }

    /// The receiver's Task for this referral (None while it is a draft without one),
    /// overlaid on `base`. `focus` is the ServiceRequest's reference.
    pub fn to_task(&self, base: Option<Value>, focus: &str) -> Option<Value> {
        let status = match (self.status.task_status(), &self.task) {
            (Some(s), _) => s,
            (None, Some(t)) => return base.map(|b| keep_status(b, &t.status)),
            (None, None) => return None,
        };
        let mut m = base_object(base, "Task");
        m.insert("status".into(), json!(status));
        if !m.contains_key("intent") {
            m.insert("intent".into(), json!("order"));
        }
        m.insert("focus".into(), json!({ "reference": focus }));
        put(&mut m, "for", Some(self.patient.to_json()));
        put(
            &mut m,
            "requester",
            self.referrer.as_ref().map(Party::to_json),
        );
        put(&mut m, "owner", self.receivers.first().map(Party::to_json));
        let outputs = array(
            &self.results,
            |r| json!({"type": {"text": "consult result"}, "valueReference": r.to_json()}),
        );
        put(&mut m, "output", outputs);
        Some(Value::Object(m))
    }

    /// Checks the internal API applies to a referral it is asked to write.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.patient.reference.is_none() {
            problems.push("patient.reference is required".to_owned());
        }
        if let Some(u) = &self.urgency {
            if !PRIORITIES.contains(&u.as_str()) {
                problems.push(format!(
                    "urgency '{u}' is not one of routine, urgent, asap, stat"
                ));
            }
        }
        problems
    }
}

fn keep_status(base: Value, status: &str) -> Value {
    let mut m = base_object(Some(base), "Task");
    m.insert("status".into(), Value::String(status.to_owned()));
    Value::Object(m)
}

/// The ServiceRequest a Task is about: its focus, else its basedOn.
pub fn task_target(task: &Value) -> Option<String> {
    task.get("focus")
        .and_then(|f| f["reference"].as_str())
        .and_then(|r| ref_id(r, "ServiceRequest"))
        .or_else(|| {
            items(task.get("basedOn"))
                .filter_map(|b| b["reference"].as_str())
                .find_map(|r| ref_id(r, "ServiceRequest"))
        })
}
