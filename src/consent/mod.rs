//! Consent decisions (issue #5): may this recipient receive these data about this
//! patient, for this purpose, at this time? A pure function over consent-directive
//! records: no storage, no HTTP. The rules, the conflict rule and the no-consent policy
//! are written down in docs/consent.md; in short:
//!
//! - only `active`, `patient-privacy` directives for the patient whose base provision's
//!   period holds the request time count;
//! - each data item is decided on its own: the base provision's type where its criteria
//!   match, overridden by the nested provisions (exceptions) that match, recursively;
//! - several directives that speak to an item: deny wins;
//! - no directive speaks to it: the [`Policy`] decides;
//! - items denied under an overall permit are withheld (minimum necessary) and listed in
//!   [`Outcome::excluded`]; when every item is denied the answer is Deny.
//!
//! A criterion that cannot be checked against what the request says (a code on the data,
//! an unreadable date, a role the caller did not give) never widens a disclosure: it lets
//! a deny apply and keeps a permit from applying. Nothing here panics on any input.

mod directive;
pub mod ledger;
mod matching;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::fhir::search::dates;
use crate::records::ConsentDirective;

/// v3-ActReason, the purposes of use (TREAT, ETREAT, HPAYMT, HOPERAT...).
pub const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// v3-ParticipationType, the usual system of `Consent.provision.actor.role`.
pub const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// The roles a recipient of a disclosure holds (primary and other information
/// recipient): what a caller passes in [`Recipient::roles`] unless it knows better.
pub const RECIPIENT_ROLES: [(&str, &str); 2] = [(PARTICIPATION, "PRCP"), (PARTICIPATION, "IRCP")];
/// The purpose `Policy::pcp_treatment_without_consent` is about.
pub const TREATMENT: &str = "TREAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Permit,
    Deny,
}

impl Decision {
    fn verb(self) -> &'static str {
        match self {
            Decision::Permit => "permits",
            Decision::Deny => "denies",
        }
    }
}

/// One question: may `recipient` receive `data` about `patient` for `purpose` at `at`?
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `Patient/123` (an absolute URL ending so is read the same way).
    pub patient: &'a str,
    pub recipient: Recipient<'a>,
    /// A v3-ActReason code: TREAT, ETREAT, HPAYMT, HOPERAT...
    pub purpose: &'a str,
    /// What would be sent; empty when only the fact of an event would be.
    pub data: &'a [DataItem<'a>],
    /// When: a FHIR instant or dateTime (a date is read as that whole day, UTC).
    pub at: &'a str,
}

/// Who would receive: every reference they answer to (the practitioner, their
/// PractitionerRole, their practice's Organization) and the roles they act in.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub references: &'a [&'a str],
    /// (system, code) pairs, e.g. [`RECIPIENT_ROLES`].
    pub roles: &'a [(&'a str, &'a str)],
}

/// One resource that would be sent.
#[derive(Debug, Clone, Copy)]
pub struct DataItem<'a> {
    /// `Type/id`.
    pub reference: &'a str,
    pub resource_type: &'a str,
    /// `meta.security` as (system, code) pairs.
    pub security_labels: &'a [(&'a str, &'a str)],
    /// The data's clinical date (what `provision.dataPeriod` is compared with).
    pub date: Option<&'a str>,
}

/// What to do when no directive on file speaks to a disclosure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Purpose code -> decision; the first entry for a purpose counts.
    pub default_by_purpose: Vec<(String, Decision)>,
    /// For purposes not listed above.
    pub default_otherwise: Decision,
    /// Treatment (`TREAT`) disclosures to the patient's own PCP are permitted.
    pub pcp_treatment_without_consent: bool,
}

impl Policy {
    /// The gateway's default: treatment disclosures to the patient's own PCP are
    /// permitted, anything else no directive speaks to is denied.
    pub fn gateway_default() -> Policy {
        Policy::with_default(Decision::Deny)
    }

    /// PCP treatment permitted; every other purpose decided `otherwise`.
    pub fn with_default(otherwise: Decision) -> Policy {
        Policy {
            default_by_purpose: Vec::new(),
            default_otherwise: otherwise,
            pcp_treatment_without_consent: true,
        }
    }
}

/// The answer, with what a coordinator needs to see why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub decision: Decision,
    /// Human-readable; ids and codes only, never patient data.
    pub reason: String,
    /// `Consent/id` that decided, when a directive did.
    pub consent: Option<String>,
    /// Under a permit: the data items (references) to withhold, in request order. Empty
    /// under a deny (nothing is sent at all).
    pub excluded: Vec<String>,
}

/// Decide one request. `consents` may hold anything on file (other patients, inactive,
/// other scopes): what does not apply is skipped. `is_patients_pcp` says whether the
/// recipient is the patient's own primary care provider (the caller knows; the
/// directives do not).
pub fn evaluate(
    consents: &[&ConsentDirective],
    req: &Request,
    policy: &Policy,
    is_patients_pcp: bool,
) -> Outcome {
    let Some(at) = dates::range(req.at) else {
        return Outcome {
            decision: Decision::Deny,
            reason: "the request time is not a FHIR instant, dateTime or date: denied".into(),
            consent: None,
            excluded: Vec::new(),
        };
    };
    let on_file: Vec<&ConsentDirective> = consents
        .iter()
        .copied()
        .filter(|d| directive::in_scope(d))
        .collect();
    let items: Vec<Option<&DataItem>> = if req.data.is_empty() {
        vec![None]
    } else {
        req.data.iter().map(Some).collect()
    };
    let verdicts: Vec<Verdict> = items
        .iter()
        .map(|item| {
            let subject = matching::Subject {
                req,
                at,
                item: *item,
            };
            decide_item(&on_file, &subject, policy, is_patients_pcp)
        })
        .collect();
    assemble(req, &items, &verdicts)
}

/// How one data item was decided.
struct Verdict {
    decision: Decision,
    consent: Option<String>,
    why: String,
}

fn decide_item(
    on_file: &[&ConsentDirective],
    subject: &matching::Subject,
    policy: &Policy,
    is_patients_pcp: bool,
) -> Verdict {
    let spoken: Vec<(&ConsentDirective, Decision)> = on_file
        .iter()
        .filter_map(|d| directive::decide(d, subject).map(|decision| (*d, decision)))
        .collect();
    if spoken.is_empty() {
        return by_policy(subject.req.purpose, policy, is_patients_pcp);
    }
    // Deny wins (docs/consent.md, "Several directives").
    let decision = if spoken.iter().any(|(_, x)| *x == Decision::Deny) {
        Decision::Deny
    } else {
        Decision::Permit
    };
    let (winners, losers): (Vec<_>, Vec<_>) = spoken.iter().partition(|(_, x)| *x == decision);
    let names = |v: &[&(&ConsentDirective, Decision)]| {
        v.iter()
            .map(|(d, _)| label(d))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verb = match (decision, winners.len()) {
        (d, 1) => d.verb(),
        (Decision::Permit, _) => "permit",
        (Decision::Deny, _) => "deny",
    };
    let mut why = format!("{} {verb}", names(&winners));
    if !losers.is_empty() {
        why.push_str(&format!(" (deny wins over {})", names(&losers)));
    }
    Verdict {
        decision,
        consent: winners
            .iter()
            .find_map(|(d, _)| d.id.as_ref())
            .map(|id| format!("Consent/{id}")),
        why,
    }
}

fn by_policy(purpose: &str, policy: &Policy, is_patients_pcp: bool) -> Verdict {
    let (decision, why) =
        if purpose == TREATMENT && is_patients_pcp && policy.pcp_treatment_without_consent {
            (
                Decision::Permit,
                "policy permits treatment disclosures to the patient's PCP".to_owned(),
            )
        } else if let Some((_, d)) = policy.default_by_purpose.iter().find(|(p, _)| p == purpose) {
            (*d, format!("the policy default for {purpose} {}", d.verb()))
        } else {
            let d = policy.default_otherwise;
            (
                d,
                format!("the policy default for other purposes {}", d.verb()),
            )
        };
    Verdict {
        decision,
        consent: None,
        why: format!("no consent on file covers it: {why}"),
    }
}

fn label(d: &ConsentDirective) -> String {
    match &d.id {
        Some(id) => format!("Consent/{id}"),
        None => "a Consent without id".to_owned(),
    }
}

fn assemble(req: &Request, items: &[Option<&DataItem>], verdicts: &[Verdict]) -> Outcome {
    let permitted: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.decision == Decision::Permit)
        .collect();
    let denied: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.decision == Decision::Deny)
        .collect();
    let purpose = if req.purpose.is_empty() {
        "(no purpose)"
    } else {
        req.purpose
    };
    if permitted.is_empty() {
        let all = if verdicts.len() > 1 {
            "every data item is withheld: "
        } else {
            ""
        };
        return Outcome {
            decision: Decision::Deny,
            reason: format!("{purpose}: {all}{}", whys(&denied)),
            consent: denied.iter().find_map(|v| v.consent.clone()),
            excluded: Vec::new(),
        };
    }
    let excluded: Vec<String> = items
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| v.decision == Decision::Deny)
        .filter_map(|(item, _)| item.map(|i| i.reference.to_owned()))
        .collect();
    let mut reason = format!("{purpose}: {}", whys(&permitted));
    if !denied.is_empty() {
        reason.push_str(&format!(
            "; {} of {} data items withheld (minimum necessary): {}",
            denied.len(),
            verdicts.len(),
            whys(&denied)
        ));
    }
    Outcome {
        decision: Decision::Permit,
        reason,
        consent: permitted.iter().find_map(|v| v.consent.clone()),
        excluded,
    }
}

/// The distinct explanations, in order of first appearance.
fn whys(vs: &[&Verdict]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for v in vs {
        if !seen.contains(&v.why.as_str()) {
            seen.push(&v.why);
        }
    }
    seen.join("; ")
}
