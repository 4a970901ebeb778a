//! One directive against one data item: does it apply, and what does its provision tree
//! say? The base provision's type where the base criteria match, then the exceptions.

use super::matching::{self, Match, Subject};
use super::Decision;
use crate::records::consent::{ConsentDirective, Provision};

const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
/// Deeper provision trees are not followed: what lies below is read as a deny.
/// (The FHIR boundary refuses JSON nested deeper than 64 levels anyway.)
const MAX_DEPTH: usize = 32;

/// An `active` patient-privacy directive. (Whether it is about the request's patient
/// and in force at the request time is part of [`decide`].)
pub fn in_scope(d: &ConsentDirective) -> bool {
    d.status == "active"
        && d.scope.coding.iter().any(|c| {
            c.code == "patient-privacy" && c.system.as_deref().is_none_or(|s| s == CONSENT_SCOPE)
        })
}

/// What the directive says about the subject: `None` when it is silent (another
/// patient's, not in force at the time, or its base provision's criteria do not cover
/// the item or recipient).
///
/// A directive without a provision, or whose base provision has no type, denies: R4
/// forbids a type on the root rule but the official examples use type-less roots both
/// for "authorize" and for "withhold", so the gateway does not guess.
pub fn decide(d: &ConsentDirective, s: &Subject) -> Option<Decision> {
    let patient = match d.patient.reference.as_deref() {
        Some(p) => matching::same_reference(p, s.req.patient),
        None => Match::No,
    };
    let Some(base) = &d.provision else {
        return patient.applies(Decision::Deny).then_some(Decision::Deny);
    };
    let kind = kind(base);
    patient
        .and(matching::provision(base, s))
        .applies(kind)
        .then(|| resolve(base, kind, s, 0))
}

/// A provision's type; a missing or unknown one is read as deny.
fn kind(p: &Provision) -> Decision {
    match p.kind.as_deref() {
        Some("permit") => Decision::Permit,
        _ => Decision::Deny,
    }
}

/// The decision under a provision that applies: its own type unless some nested
/// provision (an exception) applies too; exceptions that apply are resolved the same
/// way, and if they disagree deny wins.
fn resolve(p: &Provision, own: Decision, s: &Subject, depth: usize) -> Decision {
    if p.provisions.is_empty() {
        return own;
    }
    if depth >= MAX_DEPTH {
        return Decision::Deny;
    }
    let mut result = None;
    for nested in &p.provisions {
        let k = kind(nested);
        if !matching::provision(nested, s).applies(k) {
            continue;
        }
        let r = resolve(nested, k, s, depth + 1);
        if r == Decision::Deny {
            return Decision::Deny;
        }
        result = Some(r);
    }
    result.unwrap_or(own)
}

impl Match {
    /// Whether a provision of this type takes effect: a certain match always; an
    /// uncertain one only for a deny (never widen a disclosure on a guess).
    pub fn applies(self, kind: Decision) -> bool {
        match self {
            Match::Yes => true,
            Match::Unknown => kind == Decision::Deny,
            Match::No => false,
        }
    }
}
