//! Transition: a change of setting or responsibility, from an Encounter.
//!
//! Most fields map to Encounter elements one to one. Two facts R4's Encounter has no
//! element for travel as the gateway's extensions (see docs/mapping.md): the follow-up
//! owed after the encounter, and the documents that go with the patient.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::types::*;

pub const FOLLOW_UP_URL: &str = "http://handoff.example.org/fhir/StructureDefinition/follow-up";
pub const DOCUMENT_URL: &str =
    "http://handoff.example.org/fhir/StructureDefinition/travelling-document";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// HL7 v2 table 0443 (provider role): `PP` = primary care provider, as ROL-3 sends it.
const PROVIDER_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0443";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

pub const ENCOUNTER_STATUSES: [&str; 9] = [
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// Something owed after the encounter: "see the PCP within 2 days".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<Party>,
    /// A date or dateTime by which it is owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// Or a number of days after the encounter ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The Encounter's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Encounter.status, verbatim.
    pub status: String,
    /// Encounter.class (inpatient when not given).
    #[serde(default = "inpatient")]
    pub class: Code,
    /// Encounter.subject.
    pub patient: Party,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Encounter.serviceProvider: the organization responsible for the encounter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_provider: Option<Party>,
    /// Encounter.hospitalization.origin: where the patient came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Party>,
    /// Encounter.hospitalization.destination: where the patient goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Party>,
    /// Encounter.location[].location, current first as the sender lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Party>,
    /// Encounter.hospitalization.dischargeDisposition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharge_disposition: Option<Concept>,
    /// Encounter.participant with type ATND.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attending: Vec<Party>,
    /// Encounter.participant with type v2-0443 `PP`: the responsible PCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcp: Option<Party>,
    /// Encounter.diagnosis[].condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<Party>,
    /// Extension `follow-up`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_up: Vec<FollowUp>,
    /// Extension `travelling-document`: discharge summary, medication list...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Party>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

fn inpatient() -> Code {
    Code::new(ACT_CODE, "IMP")
}

fn participant_typed(p: &Value, system: &str, code: &str) -> bool {
    items(p.get("type")).any(|t| Concept::from_json(t).is_some_and(|c| c.has(system, code)))
}

impl Transition {
    pub fn from_encounter(enc: &Value) -> Transition {
        let hosp = enc.get("hospitalization").cloned().unwrap_or(Value::Null);
        let participants: Vec<&Value> = items(enc.get("participant")).collect();
        let typed = |system: &str, code: &str| -> Vec<Party> {
            participants
                .iter()
                .filter(|p| participant_typed(p, system, code))
                .filter_map(|p| p.get("individual").and_then(Party::from_json))
                .collect()
        };
        Transition {
            id: str_of(enc, "id"),
            status: str_of(enc, "status").unwrap_or_else(|| "unknown".into()),
            class: enc
                .get("class")
                .and_then(Code::from_json)
                .unwrap_or_else(inpatient),
            patient: enc
                .get("subject")
                .and_then(Party::from_json)
                .unwrap_or_default(),
            period: enc.get("period").and_then(Period::from_json),
            service_provider: enc.get("serviceProvider").and_then(Party::from_json),
            origin: hosp.get("origin").and_then(Party::from_json),
            destination: hosp.get("destination").and_then(Party::from_json),
            locations: items(enc.get("location"))
                .filter_map(|l| l.get("location").and_then(Party::from_json))
                .collect(),
            discharge_disposition: hosp
                .get("dischargeDisposition")
                .and_then(Concept::from_json),
            attending: typed(PARTICIPATION, "ATND"),
            pcp: typed(PROVIDER_ROLE, "PP").into_iter().next(),
            diagnoses: items(enc.get("diagnosis"))
                .filter_map(|d| d.get("condition").and_then(Party::from_json))
                .collect(),
            follow_up: extensions(enc, FOLLOW_UP_URL)
                .filter_map(follow_up_from)
                .collect(),
            documents: extensions(enc, DOCUMENT_URL)
                .filter_map(|e| e.get("valueReference").and_then(Party::from_json))
                .collect(),
            sources: Vec::new(),
        }
    }

    pub fn to_encounter(&self, base: Option<Value>) -> Value {
        let mut m = base_object(base, "Encounter");
        m.insert("status".into(), json!(self.status));
        m.insert("class".into(), self.class.to_json());
        put(&mut m, "subject", Some(self.patient.to_json()));
        put(&mut m, "period", self.period.as_ref().map(Period::to_json));
        put(
            &mut m,
            "serviceProvider",
            self.service_provider.as_ref().map(Party::to_json),
        );

        // hospitalization: our three elements over whatever else it holds.
        let mut hosp = m
            .remove("hospitalization")
            .and_then(|h| h.as_object().cloned())
            .unwrap_or_default();
        put(
            &mut hosp,
            "origin",
            self.origin.as_ref().map(Party::to_json),
        );
        put(
            &mut hosp,
            "destination",
            self.destination.as_ref().map(Party::to_json),
        );
        put(
            &mut hosp,
            "dischargeDisposition",
            self.discharge_disposition.as_ref().map(Concept::to_json),
        );
        if !hosp.is_empty() {
            m.insert("hospitalization".into(), Value::Object(hosp));
        }

        let locations = array(&self.locations, |l| json!({ "location": l.to_json() }));
        put(&mut m, "location", locations);

        // participants: ours (ATND, PP) replaced, the others kept.
        let mut participants: Vec<Value> = items(m.get("participant"))
            .filter(|p| {
                !participant_typed(p, PARTICIPATION, "ATND")
                    && !participant_typed(p, PROVIDER_ROLE, "PP")
            })
            .cloned()
            .collect();
        let typed = |system: &str, code: &str, who: &Party| json!({"type": [{"coding": [{"system": system, "code": code}]}], "individual": who.to_json()});
        participants.extend(
            self.attending
                .iter()
                .map(|a| typed(PARTICIPATION, "ATND", a)),
        );
        participants.extend(self.pcp.iter().map(|p| typed(PROVIDER_ROLE, "PP", p)));
        put(&mut m, "participant", array(&participants, Value::clone));

        let diagnoses = array(&self.diagnoses, |d| json!({ "condition": d.to_json() }));
        put(&mut m, "diagnosis", diagnoses);

        let mut exts: Vec<Value> = items(m.get("extension"))
            .filter(|e| e["url"] != FOLLOW_UP_URL && e["url"] != DOCUMENT_URL)
            .cloned()
            .collect();
        exts.extend(self.follow_up.iter().map(follow_up_json));
        exts.extend(
            self.documents
                .iter()
                .map(|d| json!({"url": DOCUMENT_URL, "valueReference": d.to_json()})),
        );
        put(&mut m, "extension", array(&exts, Value::clone));
        Value::Object(m)
    }

    /// The location the patient is in now: the first listed.
    pub fn current_location(&self) -> Option<&str> {
        self.locations.first().and_then(|l| l.reference.as_deref())
    }

    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "in-progress" | "onleave")
    }

    /// Checks the internal API applies to a transition it is asked to write.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.patient.reference.is_none() {
            problems.push("patient.reference is required".to_owned());
        }
        if !ENCOUNTER_STATUSES.contains(&self.status.as_str()) {
            problems.push(format!(
                "status '{}' is not an Encounter status ({})",
                self.status,
                ENCOUNTER_STATUSES.join(", ")
            ));
        }
        for (i, f) in self.follow_up.iter().enumerate() {
            if f.what.trim().is_empty() {
                problems.push(format!("follow_up[{i}].what is empty"));
            }
            if f.within_days == Some(0) {
                problems.push(format!("follow_up[{i}].within_days must be at least 1"));
            }
        }
        problems
    }
}

fn extensions<'a>(v: &'a Value, url: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    items(v.get("extension")).filter(move |e| e["url"] == url)
}

fn follow_up_from(e: &Value) -> Option<FollowUp> {
    let part = |name: &str| items(e.get("extension")).find(|x| x["url"] == name);
    Some(FollowUp {
        what: part("what")?.get("valueString")?.as_str()?.to_owned(),
        who: part("who")
            .and_then(|x| x.get("valueReference"))
            .and_then(Party::from_json),
        due: part("due").and_then(|x| str_of(x, "valueDateTime")),
        within_days: part("withinDays")
            .and_then(|x| x["valuePositiveInt"].as_u64())
            .and_then(|d| u32::try_from(d).ok()),
    })
}

fn follow_up_json(f: &FollowUp) -> Value {
    let mut parts = vec![json!({"url": "what", "valueString": f.what})];
    if let Some(who) = &f.who {
        parts.push(json!({"url": "who", "valueReference": who.to_json()}));
    }
    if let Some(due) = &f.due {
        parts.push(json!({"url": "due", "valueDateTime": due}));
    }
    if let Some(d) = f.within_days {
        parts.push(json!({"url": "withinDays", "valuePositiveInt": d}));
    }
    json!({"url": FOLLOW_UP_URL, "extension": parts})
}
