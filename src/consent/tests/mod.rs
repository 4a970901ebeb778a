//! Decision-table tests for the consent engine: builders for directives and requests
//! here, then the rules (rules.rs, data.rs), conflicts and the no-consent policy
//! (policy.rs), and the official R4 Consent examples (examples.rs).

mod data;
mod examples;
mod policy;
mod rules;

use super::*;
use crate::records::consent::{Actor, DataRef, Provision};
use crate::records::types::{Code, Concept, Party, Period};

pub const PATIENT: &str = "Patient/123";
pub const PCP: &str = "Practitioner/pcp";
pub const PRACTICE: &str = "Organization/practice";
pub const CARDIOLOGY: &str = "Organization/cardiology";
pub const NOW: &str = "2025-06-01T12:00:00Z";
/// v3-ActCode sensitivity labels: PSY (psychiatry), ETH (substance abuse).
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const PSY: (&str, &str) = (ACT_CODE, "PSY");
pub const ETH: (&str, &str) = (ACT_CODE, "ETH");
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
pub const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
pub const ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";

pub fn directive(id: &str, provision: Provision) -> ConsentDirective {
    ConsentDirective {
        id: Some(id.to_owned()),
        status: "active".into(),
        patient: Party::to(PATIENT),
        scope: Concept::code(
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "patient-privacy",
        ),
        categories: vec![Concept::code("http://loinc.org", "59284-0")],
        date_time: None,
        policy_rule: None,
        provision: Some(provision),
        sources: Vec::new(),
    }
}

pub fn permit() -> Provision {
    Provision {
        kind: Some("permit".into()),
        ..Provision::default()
    }
}

pub fn deny() -> Provision {
    Provision {
        kind: Some("deny".into()),
        ..Provision::default()
    }
}

/// Builders for provision criteria.
pub trait Criteria {
    fn actor(self, reference: &str, role: &str) -> Self;
    fn purpose(self, code: &str) -> Self;
    fn label(self, system: &str, code: &str) -> Self;
    fn class(self, resource_type: &str) -> Self;
    fn class_coding(self, system: &str, code: &str) -> Self;
    fn code(self, system: &str, code: &str) -> Self;
    fn action(self, code: &str) -> Self;
    fn period(self, start: Option<&str>, end: Option<&str>) -> Self;
    fn data_period(self, start: Option<&str>, end: Option<&str>) -> Self;
    fn data(self, meaning: &str, reference: &str) -> Self;
    fn except(self, nested: Provision) -> Self;
}

fn period(start: Option<&str>, end: Option<&str>) -> Period {
    Period {
        start: start.map(str::to_owned),
        end: end.map(str::to_owned),
    }
}

impl Criteria for Provision {
    fn actor(mut self, reference: &str, role: &str) -> Self {
        self.actors.push(Actor {
            role: Concept::code(PARTICIPATION, role),
            reference: Party::to(reference),
        });
        self
    }
    fn purpose(mut self, code: &str) -> Self {
        self.purposes.push(Code::new(ACT_REASON, code));
        self
    }
    fn label(mut self, system: &str, code: &str) -> Self {
        self.security_labels.push(Code::new(system, code));
        self
    }
    fn class(self, resource_type: &str) -> Self {
        self.class_coding(RESOURCE_TYPES, resource_type)
    }
    fn class_coding(mut self, system: &str, code: &str) -> Self {
        self.classes.push(Code::new(system, code));
        self
    }
    fn code(mut self, system: &str, code: &str) -> Self {
        self.codes.push(Concept::code(system, code));
        self
    }
    fn action(mut self, code: &str) -> Self {
        self.actions.push(Concept::code(ACTION, code));
        self
    }
    fn period(mut self, start: Option<&str>, end: Option<&str>) -> Self {
        self.period = Some(period(start, end));
        self
    }
    fn data_period(mut self, start: Option<&str>, end: Option<&str>) -> Self {
        self.data_period = Some(period(start, end));
        self
    }
    fn data(mut self, meaning: &str, reference: &str) -> Self {
        self.data.push(DataRef {
            meaning: meaning.into(),
            reference: Party::to(reference),
        });
        self
    }
    fn except(mut self, nested: Provision) -> Self {
        self.provisions.push(nested);
        self
    }
}

pub fn item(
    reference: &'static str,
    labels: &'static [(&'static str, &'static str)],
    date: Option<&'static str>,
) -> DataItem<'static> {
    DataItem {
        reference,
        resource_type: reference.split('/').next().unwrap_or(""),
        security_labels: labels,
        date,
    }
}

/// A discharge Encounter with no sensitivity labels.
pub fn encounter() -> DataItem<'static> {
    item("Encounter/1", &[], Some("2025-05-30"))
}

/// A request under construction; `run` evaluates it.
pub struct Ask {
    pub patient: &'static str,
    pub references: Vec<&'static str>,
    pub roles: Vec<(&'static str, &'static str)>,
    pub purpose: &'static str,
    pub data: Vec<DataItem<'static>>,
    pub at: &'static str,
    pub pcp: bool,
}

/// Disclosure to `references` for TREAT now, of one Encounter, as an information recipient.
pub fn ask(references: &[&'static str]) -> Ask {
    Ask {
        patient: PATIENT,
        references: references.to_vec(),
        roles: RECIPIENT_ROLES.to_vec(),
        purpose: "TREAT",
        data: vec![encounter()],
        at: NOW,
        pcp: false,
    }
}

impl Ask {
    pub fn purpose(mut self, purpose: &'static str) -> Self {
        self.purpose = purpose;
        self
    }
    pub fn at(mut self, at: &'static str) -> Self {
        self.at = at;
        self
    }
    pub fn data(mut self, data: Vec<DataItem<'static>>) -> Self {
        self.data = data;
        self
    }
    pub fn roles(mut self, roles: &[(&'static str, &'static str)]) -> Self {
        self.roles = roles.to_vec();
        self
    }
    pub fn patient(mut self, patient: &'static str) -> Self {
        self.patient = patient;
        self
    }
    pub fn recipient_is_pcp(mut self) -> Self {
        self.pcp = true;
        self
    }
    pub fn run(&self, consents: &[&ConsentDirective], policy: &Policy) -> Outcome {
        let req = Request {
            patient: self.patient,
            recipient: Recipient {
                references: &self.references,
                roles: &self.roles,
            },
            purpose: self.purpose,
            data: &self.data,
            at: self.at,
        };
        evaluate(consents, &req, policy, self.pcp)
    }
}

/// No consent on file: deny everything.
pub fn deny_all() -> Policy {
    Policy {
        default_by_purpose: Vec::new(),
        default_otherwise: Decision::Deny,
        pcp_treatment_without_consent: false,
    }
}

/// No consent on file: permit everything (to see a directive's deny on its own).
pub fn permit_all() -> Policy {
    Policy {
        default_otherwise: Decision::Permit,
        ..deny_all()
    }
}

/// Decided by a directive, with no item withheld.
pub fn assert_by(o: &Outcome, decision: Decision, consent: &str) {
    assert_eq!(o.decision, decision, "{o:?}");
    assert_eq!(o.consent.as_deref(), Some(consent), "{o:?}");
    assert!(o.excluded.is_empty(), "{o:?}");
}

/// Decided by the no-consent policy.
pub fn assert_policy(o: &Outcome, decision: Decision) {
    assert_eq!(o.decision, decision, "{o:?}");
    assert_eq!(o.consent, None, "{o:?}");
    assert!(o.reason.contains("no consent on file covers it"), "{o:?}");
}
