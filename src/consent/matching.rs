//! Whether a provision's criteria match a subject (the request and one of its data
//! items), in three values: a criterion the request does not let us check is
//! [`Match::Unknown`], which lets a deny apply and keeps a permit from applying
//! (`Match::applies`). A provision's stated criteria are ANDed, the values listed in one
//! criterion ORed; a criterion not stated matches anything.

use super::{DataItem, Recipient, Request, ACT_REASON};
use crate::fhir::{definitions, search::dates};
use crate::records::consent::{Actor, DataRef, Provision};
use crate::records::types::{Code, Concept, Period};

const CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
const STRUCTURE_DEFINITION: &str = "http://hl7.org/fhir/StructureDefinition/";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
/// v3-Confidentiality, lowest first: a provision labelled R covers data labelled R or
/// lower (R4 `Consent.provision.securityLabel`: "a high water mark").
const CONFIDENTIALITY_RANKS: [&str; 6] = ["U", "L", "M", "N", "R", "V"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Yes,
    No,
    Unknown,
}

impl Match {
    fn of(b: bool) -> Match {
        if b {
            Match::Yes
        } else {
            Match::No
        }
    }

    pub fn and(self, other: Match) -> Match {
        match (self, other) {
            (Match::No, _) | (_, Match::No) => Match::No,
            (Match::Yes, Match::Yes) => Match::Yes,
            _ => Match::Unknown,
        }
    }

    /// One of several alternatives; none at all is no match.
    fn any(alternatives: impl IntoIterator<Item = Match>) -> Match {
        let mut out = Match::No;
        for m in alternatives {
            match m {
                Match::Yes => return Match::Yes,
                Match::Unknown => out = Match::Unknown,
                Match::No => {}
            }
        }
        out
    }
}

/// What a provision is matched against.
pub struct Subject<'r, 'a> {
    pub req: &'r Request<'a>,
    /// The request time as a range of microseconds (`dates::range`).
    pub at: (i64, i64),
    /// The data item; `None` when the request sends no data (then the criteria about
    /// data do not match: nothing of that kind is disclosed).
    pub item: Option<&'r DataItem<'a>>,
}

/// Every criterion the provision states, against the subject.
pub fn provision(p: &Provision, s: &Subject) -> Match {
    let mut m = Match::Yes;
    if let Some(period) = &p.period {
        m = m.and(within(period, Some(s.at)));
    }
    if !p.actors.is_empty() {
        m = m.and(Match::any(
            p.actors.iter().map(|a| actor(a, &s.req.recipient)),
        ));
    }
    if !p.actions.is_empty() {
        m = m.and(Match::any(p.actions.iter().map(action)));
    }
    if !p.purposes.is_empty() {
        m = m.and(Match::any(
            p.purposes.iter().map(|c| purpose(c, s.req.purpose)),
        ));
    }
    let on_item = |f: &dyn Fn(&DataItem) -> Match| s.item.map_or(Match::No, f);
    if !p.classes.is_empty() {
        m = m.and(on_item(&|i| {
            Match::any(p.classes.iter().map(|c| class(c, i)))
        }));
    }
    if !p.codes.is_empty() {
        // A data item carries no clinical codes in the request.
        m = m.and(on_item(&|_| Match::Unknown));
    }
    if !p.security_labels.is_empty() {
        m = m.and(on_item(&|i| {
            Match::any(p.security_labels.iter().map(|c| label(c, i)))
        }));
    }
    if let Some(period) = &p.data_period {
        m = m.and(on_item(&|i| within(period, i.date.and_then(dates::range))));
    }
    if !p.data.is_empty() {
        m = m.and(on_item(&|i| Match::any(p.data.iter().map(|d| data(d, i)))));
    }
    m
}

/// Whether the period holds the value (both ranges at their precision: a period ending
/// `2016-01-01` runs to the end of that day).
fn within(period: &Period, value: Option<(i64, i64)>) -> Match {
    let Some((lo, hi)) = value else {
        return Match::Unknown;
    };
    let start = match period.start.as_deref().map(dates::range) {
        None => Match::Yes,
        Some(None) => Match::Unknown,
        Some(Some((start, _))) if lo >= start => Match::Yes,
        Some(Some((start, _))) if hi <= start => Match::No,
        Some(Some(_)) => Match::Unknown,
    };
    let end = match period.end.as_deref().map(dates::range) {
        None => Match::Yes,
        Some(None) => Match::Unknown,
        Some(Some((_, end))) if hi <= end => Match::Yes,
        Some(Some((_, end))) if lo >= end => Match::No,
        Some(Some(_)) => Match::Unknown,
    };
    start.and(end)
}

/// The actor's reference is one the recipient answers to, in a role the recipient holds.
fn actor(a: &Actor, r: &Recipient) -> Match {
    let reference = match a.reference.reference.as_deref() {
        Some(x) if !r.references.is_empty() => {
            Match::any(r.references.iter().map(|y| same_reference(x, y)))
        }
        _ => Match::Unknown,
    };
    let role = if a.role.coding.is_empty() || r.roles.is_empty() {
        Match::Unknown
    } else {
        Match::of(a.role.coding.iter().any(|c| {
            r.roles
                .iter()
                .any(|(system, code)| coding_is(c, system, code))
        }))
    };
    reference.and(role)
}

/// A disclosure gives the recipient access: `access` and `disclose` match, `collect`
/// and `correct` do not, `use` and codes from elsewhere cannot be told.
fn action(c: &Concept) -> Match {
    if c.coding.is_empty() {
        return Match::Unknown;
    }
    Match::any(c.coding.iter().map(|code| {
        if code.system.as_deref().is_some_and(|s| s != CONSENT_ACTION) {
            return Match::Unknown;
        }
        match code.code.as_str() {
            "access" | "disclose" => Match::Yes,
            "collect" | "correct" => Match::No,
            _ => Match::Unknown,
        }
    }))
}

/// Exact v3-ActReason code (no hierarchy: a TREAT provision does not cover ETREAT).
fn purpose(c: &Code, requested: &str) -> Match {
    Match::of(!requested.is_empty() && coding_is(c, ACT_REASON, requested))
}

/// A resource type (`http://hl7.org/fhir/resource-types`) or the base definition of
/// one (`http://hl7.org/fhir/StructureDefinition/Observation`); other profiles and MIME
/// types cannot be told from the request.
fn class(c: &Code, i: &DataItem) -> Match {
    if let Some(name) = c.code.strip_prefix(STRUCTURE_DEFINITION) {
        return if name == i.resource_type {
            Match::Yes
        } else if definitions::get().is_resource_type(name) {
            Match::No
        } else {
            Match::Unknown
        };
    }
    match c.system.as_deref() {
        Some(RESOURCE_TYPES) => Match::of(c.code == i.resource_type),
        None if c.code == i.resource_type => Match::Yes,
        _ => Match::Unknown,
    }
}

fn label(c: &Code, i: &DataItem) -> Match {
    let rank = |code: &str| CONFIDENTIALITY_RANKS.iter().position(|r| *r == code);
    if c.system.as_deref() == Some(CONFIDENTIALITY) {
        if let Some(ceiling) = rank(&c.code) {
            return Match::of(i.security_labels.iter().any(|(system, code)| {
                *system == CONFIDENTIALITY && rank(code).is_some_and(|r| r <= ceiling)
            }));
        }
    }
    Match::of(
        i.security_labels
            .iter()
            .any(|(system, code)| coding_is(c, system, code)),
    )
}

/// `instance` is the item itself; `related` and `dependents` include it but also items
/// linking to it, which the request does not show; `authoredby` names an author.
fn data(d: &DataRef, i: &DataItem) -> Match {
    let Some(reference) = d.reference.reference.as_deref() else {
        return Match::Unknown;
    };
    let same = same_reference(reference, i.reference);
    match d.meaning.as_str() {
        "instance" => same,
        "related" | "dependents" if same == Match::Yes => Match::Yes,
        _ => Match::Unknown,
    }
}

/// A coding is (system, code); a coding or a caller without a system compares codes.
fn coding_is(c: &Code, system: &str, code: &str) -> bool {
    c.code == code && (system.is_empty() || c.system.as_deref().is_none_or(|s| s == system))
}

/// Two literal references to the same resource: equal as `Type/id` (history versions
/// dropped). An absolute and a relative one with the same `Type/id` may name resources
/// on different servers: unknown.
pub fn same_reference(a: &str, b: &str) -> Match {
    let (a, b) = (unversioned(a), unversioned(b));
    if a.is_empty() || b.is_empty() {
        return Match::No;
    }
    if a == b {
        return Match::Yes;
    }
    let absolute = |r: &str| r.contains("://") || r.starts_with("urn:");
    if absolute(a) != absolute(b) && type_and_id(a).is_some() && type_and_id(a) == type_and_id(b) {
        Match::Unknown
    } else {
        Match::No
    }
}

fn unversioned(r: &str) -> &str {
    let r = r.trim();
    r.split("/_history/").next().unwrap_or(r)
}

/// The last two path segments, `Type/id`.
fn type_and_id(r: &str) -> Option<&str> {
    let slash = r.rfind('/')?;
    let start = r[..slash].rfind('/').map_or(0, |s| s + 1);
    let tail = &r[start..];
    (slash + 1 < r.len() && start < slash).then_some(tail)
}
