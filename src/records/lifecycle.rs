//! Which record changes are legal, and the domain events a legal change raises.
//!
//! An illegal move between states (a completed referral back to requested, a
//! finished encounter back to in-progress) is a conflict with what is stored: 409. A
//! change that is legal in itself but incomplete (a discharge without an end time) is
//! unprocessable: 422. Either way nothing is stored.

use super::{Record, ReferralStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ReferralRequested,
    ReferralAccepted,
    ReferralRejected,
    ReferralCompleted,
    ReferralCancelled,
    PatientAdmitted,
    PatientTransferred,
    PatientDischarged,
    CarePlanChanged,
    ConsentChanged,
    /// Corrections (HL7 v2 A11, A13): an earlier admission or discharge no longer holds.
    AdmissionCancelled,
    DischargeCancelled,
    /// An encounter said something new without changing state (HL7 v2 A08, coalesced).
    EncounterUpdated,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ReferralRequested => "ReferralRequested",
            EventKind::ReferralAccepted => "ReferralAccepted",
            EventKind::ReferralRejected => "ReferralRejected",
            EventKind::ReferralCompleted => "ReferralCompleted",
            EventKind::ReferralCancelled => "ReferralCancelled",
            EventKind::PatientAdmitted => "PatientAdmitted",
            EventKind::PatientTransferred => "PatientTransferred",
            EventKind::PatientDischarged => "PatientDischarged",
            EventKind::CarePlanChanged => "CarePlanChanged",
            EventKind::ConsentChanged => "ConsentChanged",
            EventKind::AdmissionCancelled => "AdmissionCancelled",
            EventKind::DischargeCancelled => "DischargeCancelled",
            EventKind::EncounterUpdated => "EncounterUpdated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The move from the stored state is not allowed (409).
    Illegal { message: String, path: String },
    /// The new state is missing what it needs (422).
    Incomplete { message: String, path: String },
}

/// Check `next` against `prior` (None: the record is new) and list the events.
pub fn decide(prior: Option<&Record>, next: &Record) -> Result<Vec<EventKind>, RuleError> {
    match (prior, next) {
        (p, Record::Referral(n)) => {
            let before = match p {
                Some(Record::Referral(r)) => Some(r.status),
                _ => None,
            };
            referral(before, n.status, n.id.as_deref().unwrap_or(""))
        }
        (p, Record::Transition(n)) => {
            let p = match p {
                Some(Record::Transition(t)) => Some(t),
                _ => None,
            };
            transition(p, n)
        }
        (p, Record::CarePlan(n)) => {
            let before = p.map(|p| p.status().to_owned());
            final_states(
                "CarePlan",
                before.as_deref(),
                &n.status,
                &["completed", "revoked", "entered-in-error"],
            )?;
            Ok(changed(p, next)
                .then_some(EventKind::CarePlanChanged)
                .into_iter()
                .collect())
        }
        (p, Record::Consent(n)) => {
            let before = p.map(|p| p.status().to_owned());
            final_states(
                "Consent",
                before.as_deref(),
                &n.status,
                &["rejected", "inactive", "entered-in-error"],
            )?;
            Ok(changed(p, next)
                .then_some(EventKind::ConsentChanged)
                .into_iter()
                .collect())
        }
    }
}

fn referral(
    before: Option<ReferralStatus>,
    after: ReferralStatus,
    id: &str,
) -> Result<Vec<EventKind>, RuleError> {
    if let Some(b) = before {
        if !b.may_become(after) {
            return Err(RuleError::Illegal {
                message: format!(
                    "Referral ServiceRequest/{id} is {}; it cannot become {}",
                    b.as_str(),
                    after.as_str()
                ),
                path: "ServiceRequest.status".into(),
            });
        }
        if b == after {
            return Ok(Vec::new());
        }
    }
    use ReferralStatus::*;
    Ok(match after {
        Requested => vec![EventKind::ReferralRequested],
        Accepted => vec![EventKind::ReferralAccepted],
        Rejected => vec![EventKind::ReferralRejected],
        Completed => vec![EventKind::ReferralCompleted],
        Cancelled => vec![EventKind::ReferralCancelled],
        Draft | Scheduled | EnteredInError => Vec::new(),
    })
}

fn transition(
    prior: Option<&super::Transition>,
    next: &super::Transition,
) -> Result<Vec<EventKind>, RuleError> {
    let id = next.id.as_deref().unwrap_or("");
    if next.status == "finished" && next.period.as_ref().and_then(|p| p.end.as_ref()).is_none() {
        return Err(RuleError::Incomplete {
            message: format!(
                "Encounter/{id} is finished but has no period.end: a discharge needs an end time"
            ),
            path: "Encounter.period.end".into(),
        });
    }
    final_states(
        "Encounter",
        prior.map(|p| p.status.as_str()),
        &next.status,
        &["finished", "cancelled", "entered-in-error"],
    )?;
    let was_active = prior.is_some_and(|p| p.is_active());
    let mut events = Vec::new();
    if next.is_active() && !was_active {
        events.push(EventKind::PatientAdmitted);
    }
    if next.is_active()
        && was_active
        && prior.and_then(|p| p.current_location()) != next.current_location()
    {
        events.push(EventKind::PatientTransferred);
    }
    if next.status == "finished" && prior.is_none_or(|p| p.status != "finished") {
        events.push(EventKind::PatientDischarged);
    }
    Ok(events)
}

/// Once a resource reaches one of `finals` it stays there, but for a correction to
/// entered-in-error.
fn final_states(
    rtype: &str,
    before: Option<&str>,
    after: &str,
    finals: &[&str],
) -> Result<(), RuleError> {
    match before {
        Some(b) if finals.contains(&b) && b != after && after != "entered-in-error" => {
            Err(RuleError::Illegal {
                message: format!("{rtype} is {b}; it cannot become {after}"),
                path: format!("{rtype}.status"),
            })
        }
        _ => Ok(()),
    }
}

/// An explicit correction of an Encounter's state, which only an HL7 v2 message
/// (A11, A13) asks for: it is never inferred from an ordinary FHIR update, where a
/// finished Encounter stays finished (409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// A11: the admission did not happen; the Encounter becomes cancelled.
    CancelAdmit,
    /// A13: the discharge did not happen; the finished Encounter is active again.
    CancelDischarge,
}

/// The rules of a correction, replacing [`decide`]'s for that one write.
pub fn correct(
    c: Correction,
    prior: &super::Transition,
    next: &super::Transition,
) -> Result<Vec<EventKind>, RuleError> {
    let id = next.id.as_deref().unwrap_or("");
    let illegal = |message: String| RuleError::Illegal {
        message,
        path: "Encounter.status".into(),
    };
    match c {
        Correction::CancelAdmit => {
            if next.status != "cancelled" {
                return Err(illegal(format!(
                    "Encounter/{id}: cancelling an admission makes it cancelled, not {}",
                    next.status
                )));
            }
            match prior.status.as_str() {
                "cancelled" => Ok(Vec::new()),
                "finished" | "entered-in-error" => Err(illegal(format!(
                    "Encounter/{id} is {}: its admission cannot be cancelled (cancel the discharge first)",
                    prior.status
                ))),
                _ => Ok(vec![EventKind::AdmissionCancelled]),
            }
        }
        Correction::CancelDischarge => {
            if prior.status != "finished" {
                return Err(illegal(format!(
                    "Encounter/{id} is {}: there is no discharge to cancel",
                    prior.status
                )));
            }
            if !next.is_active() {
                return Err(illegal(format!(
                    "Encounter/{id}: cancelling a discharge makes it active again, not {}",
                    next.status
                )));
            }
            Ok(vec![EventKind::DischargeCancelled])
        }
    }
}

/// Whether the record says something new (its sources aside).
pub(crate) fn changed(prior: Option<&Record>, next: &Record) -> bool {
    match prior {
        None => true,
        Some(p) => {
            let (mut a, mut b) = (p.clone(), next.clone());
            a.sources_mut().clear();
            b.sources_mut().clear();
            a != b
        }
    }
}
