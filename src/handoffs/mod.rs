//! Handoffs: responsibility travelling with information (issue #6).
//!
//! Every discharge, transfer and referral opens a handoff: a FHIR Task the gateway
//! keeps (requester = the sending party, owner = the receiving party, focus = the
//! Encounter or ServiceRequest, `restriction.period.end` = the current deadline). The
//! sender stays accountable until the receiver accepts; overdue handoffs are escalated
//! by a sweep (`store::handoffs`), first to an alternate recipient, then back to the
//! sender's coordinator. This module is the pure part: the policy, the Task's state
//! machine and how the gateway's elements are written on the Task. The rules are in
//! docs/accountability.md.

pub mod job;
pub mod policy;
pub mod task;

use serde::Serialize;

pub use policy::{HandoffSettings, Policy, Span};

/// The code system of handoff kinds (a second coding in Task.code).
pub const KIND_SYSTEM: &str = "http://handoff.example.org/fhir/CodeSystem/handoff-kind";
/// The code system of the gateway's Task.businessStatus codes.
pub const BUSINESS_SYSTEM: &str =
    "http://handoff.example.org/fhir/CodeSystem/handoff-business-status";
/// Extension naming the party accountable now (valueReference).
pub const ACCOUNTABLE_URL: &str = "http://handoff.example.org/fhir/StructureDefinition/accountable";
/// Extension recording one escalation (complex: step, to, reason, at).
pub const ESCALATION_URL: &str = "http://handoff.example.org/fhir/StructureDefinition/escalation";

/// The events a handoff raises (domain_events, record_kind `handoff`).
pub const OPENED: &str = "HandoffRequested";
pub const ACCEPTED: &str = "HandoffAccepted";
pub const DECLINED: &str = "HandoffDeclined";
pub const ESCALATED: &str = "HandoffEscalated";
pub const COMPLETED: &str = "HandoffCompleted";
/// What opened the handoff was withdrawn (an HL7 v2 A13 cancelled the discharge).
pub const CANCELLED: &str = "HandoffCancelled";
pub const EVENTS: [&str; 6] = [OPENED, ACCEPTED, DECLINED, ESCALATED, COMPLETED, CANCELLED];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Discharge,
    Transfer,
    Referral,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Discharge => "discharge",
            Kind::Transfer => "transfer",
            Kind::Referral => "referral",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Discharge, Kind::Transfer, Kind::Referral]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
    pub fn display(self) -> &'static str {
        match self {
            Kind::Discharge => "Discharge handoff: acknowledge, accept, see the patient",
            Kind::Transfer => "Transfer handoff: accept the patient",
            Kind::Referral => "Referral: accept, see the patient, return the result",
        }
    }
}

/// Whether a handoff Task may move from `from` to `to`. Staying put is always legal
/// (an update of other elements); entered-in-error is a correction from anywhere.
pub fn may_move(from: &str, to: &str) -> bool {
    from == to
        || to == "entered-in-error"
        || matches!(
            (from, to),
            (
                "requested",
                "received" | "accepted" | "rejected" | "cancelled" | "in-progress" | "completed"
            ) | (
                "received",
                "accepted" | "rejected" | "cancelled" | "in-progress" | "completed"
            ) | (
                "accepted",
                "in-progress" | "completed" | "cancelled" | "failed"
            ) | (
                "in-progress",
                "on-hold" | "completed" | "cancelled" | "failed"
            ) | (
                "on-hold",
                "in-progress" | "completed" | "cancelled" | "failed"
            )
        )
}

/// The receiver has taken responsibility in this status.
pub fn is_accepted(status: &str) -> bool {
    matches!(status, "accepted" | "in-progress" | "on-hold" | "completed")
}

/// The handoff is over in this status.
pub fn is_closed(status: &str) -> bool {
    matches!(
        status,
        "completed" | "rejected" | "cancelled" | "failed" | "entered-in-error"
    )
}

/// The gateway's businessStatus for a Task status (escalations set their own).
pub fn business_status(status: &str) -> &'static str {
    match status {
        "requested" => "awaiting-acceptance",
        "received" => "acknowledged",
        "accepted" => "accepted",
        "in-progress" | "on-hold" => "in-progress",
        "completed" => "completed",
        "rejected" => "declined-returned-to-sender",
        _ => "closed",
    }
}

/// The gateway's working copy of a handoff (the `handoffs` row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handoff {
    pub task_id: String,
    pub kind: Kind,
    pub focus: String,
    pub patient: Option<String>,
    pub sender: Option<String>,
    pub receiver: Option<String>,
    pub status: String,
    pub business_status: String,
    pub accountable: Option<String>,
    /// Microseconds since the epoch.
    pub deadline: Option<i64>,
    /// After acceptance: the absolute deadline (a discharge's follow-up).
    pub then_due: Option<i64>,
    pub escalation: Option<String>,
    pub escalated_to: Option<String>,
    pub opened: i64,
    pub updated: i64,
    pub closed: Option<i64>,
}

impl Handoff {
    /// The values of a subscription filter `param` for an event of this handoff on the
    /// escalation topic (see docs/topics.md).
    pub fn filter_values(&self, param: &str) -> Vec<String> {
        let v = match param {
            "patient" => vec![&self.patient],
            "recipient" => vec![&self.escalated_to],
            "owner" => vec![&self.receiver],
            "requester" => vec![&self.sender],
            _ => Vec::new(),
        };
        v.into_iter().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_moves() {
        assert!(may_move("requested", "received"));
        assert!(may_move("received", "accepted"));
        assert!(may_move("requested", "rejected"));
        assert!(may_move("accepted", "in-progress"));
        assert!(may_move("in-progress", "completed"));
        assert!(may_move("completed", "completed"));
        assert!(may_move("completed", "entered-in-error"));
        assert!(!may_move("completed", "requested"));
        assert!(!may_move("rejected", "accepted"));
        assert!(!may_move("accepted", "rejected"));
        assert!(!may_move("accepted", "requested"));
        assert!(!may_move("cancelled", "in-progress"));
    }

    #[test]
    fn acceptance_and_closure() {
        assert!(!is_accepted("received"));
        assert!(is_accepted("in-progress"));
        assert!(is_closed("rejected"));
        assert!(!is_closed("accepted"));
        assert_eq!(business_status("rejected"), "declined-returned-to-sender");
    }
}
