//! CarePlan record: goals, activities with status and performer, the care team and
//! the accountable coordinator (CarePlan.author), period.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::types::*;

pub const CAREPLAN_STATUSES: [&str; 7] = [
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];
pub const CAREPLAN_INTENTS: [&str; 4] = ["proposal", "plan", "order", "option"];

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    /// activity.reference: an Appointment, ServiceRequest, Task... that is the activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Party>,
    /// activity.detail.status (required by FHIR whenever detail is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// activity.detail.code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Concept>,
    /// activity.detail.description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// activity.detail.performer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performers: Vec<Party>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarePlanRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: String,
    #[serde(default = "plan")]
    pub intent: String,
    pub patient: Party,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// CarePlan.author: the accountable coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<Party>,
    /// CarePlan.careTeam.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub care_team: Vec<Party>,
    /// CarePlan.goal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<Party>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<Activity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

fn plan() -> String {
    "plan".into()
}

const ACTIVITY_STATUSES: [&str; 9] = [
    "not-started",
    "scheduled",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "stopped",
    "unknown",
    "entered-in-error",
];

impl CarePlanRecord {
    pub fn from_care_plan(cp: &Value) -> CarePlanRecord {
        CarePlanRecord {
            id: str_of(cp, "id"),
            status: str_of(cp, "status").unwrap_or_else(|| "unknown".into()),
            intent: str_of(cp, "intent").unwrap_or_else(plan),
            patient: cp
                .get("subject")
                .and_then(Party::from_json)
                .unwrap_or_default(),
            title: str_of(cp, "title"),
            period: cp.get("period").and_then(Period::from_json),
            coordinator: cp.get("author").and_then(Party::from_json),
            care_team: parties(cp.get("careTeam")),
            goals: parties(cp.get("goal")),
            activities: items(cp.get("activity")).map(activity_from).collect(),
            sources: Vec::new(),
        }
    }

    pub fn to_care_plan(&self, base: Option<Value>) -> Value {
        let mut m = base_object(base, "CarePlan");
        m.insert("status".into(), json!(self.status));
        m.insert("intent".into(), json!(self.intent));
        put(&mut m, "subject", Some(self.patient.to_json()));
        put(&mut m, "title", self.title.clone().map(Value::String));
        put(&mut m, "period", self.period.as_ref().map(Period::to_json));
        put(
            &mut m,
            "author",
            self.coordinator.as_ref().map(Party::to_json),
        );
        put(&mut m, "careTeam", array(&self.care_team, Party::to_json));
        put(&mut m, "goal", array(&self.goals, Party::to_json));
        // Activities merge by position with the stored ones, so their unmodelled
        // elements (progress, outcome, scheduling...) survive.
        let stored: Vec<Value> = items(m.get("activity")).cloned().collect();
        let activities: Vec<Value> = self
            .activities
            .iter()
            .enumerate()
            .map(|(i, a)| activity_json(a, stored.get(i)))
            .collect();
        put(&mut m, "activity", array(&activities, Value::clone));
        Value::Object(m)
    }

    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.patient.reference.is_none() {
            problems.push("patient.reference is required".to_owned());
        }
        if !CAREPLAN_STATUSES.contains(&self.status.as_str()) {
            problems.push(format!("status '{}' is not a CarePlan status", self.status));
        }
        if !CAREPLAN_INTENTS.contains(&self.intent.as_str()) {
            problems.push(format!("intent '{}' is not a CarePlan intent", self.intent));
        }
        for (i, a) in self.activities.iter().enumerate() {
            if let Some(s) = &a.status {
                if !ACTIVITY_STATUSES.contains(&s.as_str()) {
                    problems.push(format!(
                        "activities[{i}].status '{s}' is not an activity status"
                    ));
                }
            }
        }
        problems
    }
}

fn activity_from(a: &Value) -> Activity {
    let detail = a.get("detail").cloned().unwrap_or(Value::Null);
    Activity {
        reference: a.get("reference").and_then(Party::from_json),
        status: str_of(&detail, "status"),
        code: detail.get("code").and_then(Concept::from_json),
        description: str_of(&detail, "description"),
        performers: parties(detail.get("performer")),
    }
}

fn activity_json(a: &Activity, stored: Option<&Value>) -> Value {
    let mut m: Map<String, Value> = stored
        .and_then(|s| s.as_object().cloned())
        .unwrap_or_default();
    put(
        &mut m,
        "reference",
        a.reference.as_ref().map(Party::to_json),
    );
    let has_detail = a.status.is_some()
        || a.code.is_some()
        || a.description.is_some()
        || !a.performers.is_empty();
    if has_detail {
        let mut d = m
            .remove("detail")
            .and_then(|d| d.as_object().cloned())
            .unwrap_or_default();
        d.insert(
            "status".into(),
            json!(a.status.as_deref().unwrap_or("unknown")),
        );
        put(&mut d, "code", a.code.as_ref().map(Concept::to_json));
        put(
            &mut d,
            "description",
            a.description.clone().map(Value::String),
        );
        put(&mut d, "performer", array(&a.performers, Party::to_json));
        m.insert("detail".into(), Value::Object(d));
    } else {
        m.remove("detail");
    }
    Value::Object(m)
}
