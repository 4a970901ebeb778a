//! Coordination records: the facts a care team coordinates on, translated both ways
//! from and to the FHIR resources they come from.
//!
//! - [`Referral`] from ServiceRequest + its Task, [`Transition`] from Encounter,
//!   [`CarePlanRecord`] from CarePlan, [`ConsentDirective`] from Consent.
//! - Translation is pure (`from_*` / `to_*` on each record); [`lifecycle`] decides
//!   whether a change is legal and which domain events it raises. The store applies
//!   both inside the transaction that writes the resource (`store::records`).
//! - The mapping, element by element, is in docs/mapping.md.

pub mod careplan;
pub mod consent;
pub mod lifecycle;
pub mod referral;
pub mod transition;
pub mod types;

use serde::Serialize;
use serde_json::Value;

pub use careplan::CarePlanRecord;
pub use consent::ConsentDirective;
pub use lifecycle::{EventKind, RuleError};
pub use referral::{Referral, ReferralStatus};
pub use transition::Transition;
pub use types::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Referral,
    Transition,
    CarePlan,
    Consent,
}

impl RecordKind {
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Referral,
        RecordKind::Transition,
        RecordKind::CarePlan,
        RecordKind::Consent,
    ];

    /// The name used in the store and in the internal API's paths (plural there).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Referral => "referral",
            RecordKind::Transition => "transition",
            RecordKind::CarePlan => "care-plan",
            RecordKind::Consent => "consent",
        }
    }

    pub fn from_path(segment: &str) -> Option<RecordKind> {
        Some(match segment {
            "referrals" => RecordKind::Referral,
            "transitions" => RecordKind::Transition,
            "care-plans" => RecordKind::CarePlan,
            "consents" => RecordKind::Consent,
            _ => return None,
        })
    }

    /// The FHIR resource type a record of this kind is keyed by (its id is that
    /// resource's id).
    pub fn resource_type(self) -> &'static str {
        match self {
            RecordKind::Referral => "ServiceRequest",
            RecordKind::Transition => "Encounter",
            RecordKind::CarePlan => "CarePlan",
            RecordKind::Consent => "Consent",
        }
    }

    /// The statuses a record of this kind can have.
    pub fn statuses(self) -> Vec<&'static str> {
        match self {
            RecordKind::Referral => ReferralStatus::ALL.iter().map(|s| s.as_str()).collect(),
            RecordKind::Transition => transition::ENCOUNTER_STATUSES.to_vec(),
            RecordKind::CarePlan => careplan::CAREPLAN_STATUSES.to_vec(),
            RecordKind::Consent => consent::CONSENT_STATUSES.to_vec(),
        }
    }

    pub fn for_resource_type(rtype: &str) -> Option<RecordKind> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.resource_type() == rtype)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Referral(Referral),
    Transition(Transition),
    CarePlan(CarePlanRecord),
    Consent(ConsentDirective),
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Referral(_) => RecordKind::Referral,
            Record::Transition(_) => RecordKind::Transition,
            Record::CarePlan(_) => RecordKind::CarePlan,
            Record::Consent(_) => RecordKind::Consent,
        }
    }

    /// The record a resource of a record-bearing type describes (Task excepted: it
    /// refines a referral, see [`Referral::apply_task`]).
    pub fn from_resource(resource: &Value, prior: Option<&Record>) -> Option<Record> {
        let rtype = resource["resourceType"].as_str()?;
        Some(match RecordKind::for_resource_type(rtype)? {
            RecordKind::Referral => {
                let prior = match prior {
                    Some(Record::Referral(r)) => Some(r),
                    _ => None,
                };
                Record::Referral(Referral::from_service_request(resource, prior))
            }
            RecordKind::Transition => Record::Transition(Transition::from_encounter(resource)),
            RecordKind::CarePlan => Record::CarePlan(CarePlanRecord::from_care_plan(resource)),
            RecordKind::Consent => Record::Consent(ConsentDirective::from_consent(resource)),
        })
    }

    /// A stored record's JSON, read back as the kind it was stored as.
    pub fn parse(kind: RecordKind, json: &str) -> Result<Record, serde_json::Error> {
        Ok(match kind {
            RecordKind::Referral => Record::Referral(serde_json::from_str(json)?),
            RecordKind::Transition => Record::Transition(serde_json::from_str(json)?),
            RecordKind::CarePlan => Record::CarePlan(serde_json::from_str(json)?),
            RecordKind::Consent => Record::Consent(serde_json::from_str(json)?),
        })
    }

    /// The internal API's input, typed by kind; unknown fields are refused.
    pub fn from_api(kind: RecordKind, v: Value) -> Result<Record, serde_json::Error> {
        Ok(match kind {
            RecordKind::Referral => Record::Referral(serde_json::from_value(v)?),
            RecordKind::Transition => Record::Transition(serde_json::from_value(v)?),
            RecordKind::CarePlan => Record::CarePlan(serde_json::from_value(v)?),
            RecordKind::Consent => Record::Consent(serde_json::from_value(v)?),
        })
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("records always serialise")
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Record::Referral(r) => r.id.as_deref(),
            Record::Transition(r) => r.id.as_deref(),
            Record::CarePlan(r) => r.id.as_deref(),
            Record::Consent(r) => r.id.as_deref(),
        }
    }

    pub fn set_id(&mut self, id: Option<String>) {
        match self {
            Record::Referral(r) => r.id = id,
            Record::Transition(r) => r.id = id,
            Record::CarePlan(r) => r.id = id,
            Record::Consent(r) => r.id = id,
        }
    }

    pub fn patient(&self) -> Option<&str> {
        match self {
            Record::Referral(r) => r.patient.reference.as_deref(),
            Record::Transition(r) => r.patient.reference.as_deref(),
            Record::CarePlan(r) => r.patient.reference.as_deref(),
            Record::Consent(r) => r.patient.reference.as_deref(),
        }
    }

    pub fn status(&self) -> &str {
        match self {
            Record::Referral(r) => r.status.as_str(),
            Record::Transition(r) => &r.status,
            Record::CarePlan(r) => &r.status,
            Record::Consent(r) => &r.status,
        }
    }

    pub fn sources(&self) -> &[Source] {
        match self {
            Record::Referral(r) => &r.sources,
            Record::Transition(r) => &r.sources,
            Record::CarePlan(r) => &r.sources,
            Record::Consent(r) => &r.sources,
        }
    }

    pub fn sources_mut(&mut self) -> &mut Vec<Source> {
        match self {
            Record::Referral(r) => &mut r.sources,
            Record::Transition(r) => &mut r.sources,
            Record::CarePlan(r) => &mut r.sources,
            Record::Consent(r) => &mut r.sources,
        }
    }

    /// Problems the internal API refuses a record for (beyond its JSON shape).
    pub fn check(&self) -> Vec<String> {
        match self {
            Record::Referral(r) => r.check(),
            Record::Transition(r) => r.check(),
            Record::CarePlan(r) => r.check(),
            Record::Consent(r) => r.check(),
        }
    }

    /// Note that `version` of `rtype/id` is one this record came from (replacing an
    /// older version of the same resource).
    pub fn note_source(&mut self, rtype: &str, id: &str, version: i64) {
        let sources = self.sources_mut();
        sources.retain(|s| !(s.resource_type == rtype && s.id == id));
        sources.push(Source {
            resource_type: rtype.to_owned(),
            id: id.to_owned(),
            version,
        });
        sources.sort_by(|a, b| a.resource_type.cmp(&b.resource_type));
    }
}

#[cfg(test)]
mod tests;
