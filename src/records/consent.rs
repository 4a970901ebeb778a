//! Consent directive: who may receive what about a patient, for which purposes, when;
//! a base permit or deny with nested exceptions (R4 Consent.provision).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::types::*;

pub const CONSENT_STATUSES: [&str; 6] = [
    "draft",
    "proposed",
    "active",
    "rejected",
    "inactive",
    "entered-in-error",
];
const SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
const LOINC: &str = "http://loinc.org";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// provision.actor.role (e.g. v3-ParticipationType PRCP: recipient).
    pub role: Concept,
    /// provision.actor.reference: a Practitioner, Organization, CareTeam...
    pub reference: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// permit | deny (nested provisions are exceptions to their parent).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<Actor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Concept>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_labels: Vec<Code>,
    /// Purposes of use (v3-ActReason: TREAT, HPAYMT, HOPERAT...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<Code>,
    /// Data classes: resource types or profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<Code>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Concept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_period: Option<Period>,
    /// provision.data: specific resources this provision is about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisions: Vec<Provision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRef {
    /// instance | related | dependents | authoredby
    pub meaning: String,
    pub reference: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentDirective {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: String,
    pub patient: Party,
    /// Consent.scope (patient-privacy when not given).
    #[serde(default = "privacy")]
    pub scope: Concept,
    /// Consent.category (LOINC 59284-0 "Patient Consent" when not given).
    #[serde(default = "patient_consent")]
    pub categories: Vec<Concept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_rule: Option<Concept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<Provision>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

fn privacy() -> Concept {
    Concept::code(SCOPE, "patient-privacy")
}

fn patient_consent() -> Vec<Concept> {
    vec![Concept::code(LOINC, "59284-0")]
}

impl ConsentDirective {
    pub fn from_consent(c: &Value) -> ConsentDirective {
        ConsentDirective {
            id: str_of(c, "id"),
            status: str_of(c, "status").unwrap_or_else(|| "draft".into()),
            patient: c
                .get("patient")
                .and_then(Party::from_json)
                .unwrap_or_default(),
            scope: c
                .get("scope")
                .and_then(Concept::from_json)
                .unwrap_or_else(privacy),
            categories: concepts(c.get("category")),
            date_time: str_of(c, "dateTime"),
            policy_rule: c.get("policyRule").and_then(Concept::from_json),
            provision: c.get("provision").map(provision_from),
            sources: Vec::new(),
        }
    }

    pub fn to_consent(&self, base: Option<Value>) -> Value {
        let mut m = base_object(base, "Consent");
        m.insert("status".into(), json!(self.status));
        m.insert("scope".into(), self.scope.to_json());
        put(
            &mut m,
            "category",
            array(&self.categories, Concept::to_json),
        );
        put(&mut m, "patient", Some(self.patient.to_json()));
        put(
            &mut m,
            "dateTime",
            self.date_time.clone().map(Value::String),
        );
        put(
            &mut m,
            "policyRule",
            self.policy_rule.as_ref().map(Concept::to_json),
        );
        put(
            &mut m,
            "provision",
            self.provision.as_ref().map(provision_json),
        );
        Value::Object(m)
    }

    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.patient.reference.is_none() {
            problems.push("patient.reference is required".to_owned());
        }
        if !CONSENT_STATUSES.contains(&self.status.as_str()) {
            problems.push(format!("status '{}' is not a Consent status", self.status));
        }
        if self.categories.is_empty() {
            problems.push("categories must not be empty".to_owned());
        }
        if let Some(p) = &self.provision {
            check_provision(p, "provision", &mut problems);
        }
        problems
    }
}

fn check_provision(p: &Provision, path: &str, problems: &mut Vec<String>) {
    if *p == Provision::default() {
        problems.push(format!(
            "{path} is empty: leave it out or say what it permits or denies"
        ));
    }
    if let Some(k) = &p.kind {
        if k != "permit" && k != "deny" {
            problems.push(format!("{path}.type '{k}' must be permit or deny"));
        }
    }
    for (i, a) in p.actors.iter().enumerate() {
        if a.reference.reference.is_none() {
            problems.push(format!(
                "{path}.actors[{i}].reference.reference is required"
            ));
        }
        if a.role.is_empty() {
            problems.push(format!("{path}.actors[{i}].role is required"));
        }
    }
    for (i, d) in p.data.iter().enumerate() {
        if !["instance", "related", "dependents", "authoredby"].contains(&d.meaning.as_str()) {
            problems.push(format!(
                "{path}.data[{i}].meaning '{}' is not a consent data meaning",
                d.meaning
            ));
        }
    }
    for (i, n) in p.provisions.iter().enumerate() {
        check_provision(n, &format!("{path}.provisions[{i}]"), problems);
    }
}

fn provision_from(p: &Value) -> Provision {
    Provision {
        kind: str_of(p, "type"),
        period: p.get("period").and_then(Period::from_json),
        actors: items(p.get("actor"))
            .filter_map(|a| {
                Some(Actor {
                    role: a.get("role").and_then(Concept::from_json)?,
                    reference: a.get("reference").and_then(Party::from_json)?,
                })
            })
            .collect(),
        actions: concepts(p.get("action")),
        security_labels: codes(p.get("securityLabel")),
        purposes: codes(p.get("purpose")),
        classes: codes(p.get("class")),
        codes: concepts(p.get("code")),
        data_period: p.get("dataPeriod").and_then(Period::from_json),
        data: items(p.get("data"))
            .filter_map(|d| {
                Some(DataRef {
                    meaning: str_of(d, "meaning")?,
                    reference: d.get("reference").and_then(Party::from_json)?,
                })
            })
            .collect(),
        provisions: items(p.get("provision")).map(provision_from).collect(),
    }
}

fn provision_json(p: &Provision) -> Value {
    let mut m = serde_json::Map::new();
    put(&mut m, "type", p.kind.clone().map(Value::String));
    put(&mut m, "period", p.period.as_ref().map(Period::to_json));
    put(
        &mut m,
        "actor",
        array(
            &p.actors,
            |a| json!({"role": a.role.to_json(), "reference": a.reference.to_json()}),
        ),
    );
    put(&mut m, "action", array(&p.actions, Concept::to_json));
    put(
        &mut m,
        "securityLabel",
        array(&p.security_labels, Code::to_json),
    );
    put(&mut m, "purpose", array(&p.purposes, Code::to_json));
    put(&mut m, "class", array(&p.classes, Code::to_json));
    put(&mut m, "code", array(&p.codes, Concept::to_json));
    put(
        &mut m,
        "dataPeriod",
        p.data_period.as_ref().map(Period::to_json),
    );
    put(
        &mut m,
        "data",
        array(
            &p.data,
            |d| json!({"meaning": d.meaning, "reference": d.reference.to_json()}),
        ),
    );
    put(&mut m, "provision", array(&p.provisions, provision_json));
    Value::Object(m)
}
