//! The gateway's elements on a handoff Task: written when the gateway opens the Task,
//! and laid over every later version (whoever writes it), so that the deadline, the
//! accountable party and the escalations always say what the gateway knows.

use serde_json::{json, Map, Value};

use super::{Handoff, ACCOUNTABLE_URL, BUSINESS_SYSTEM, ESCALATION_URL, KIND_SYSTEM};
use crate::fhir::search::dates::format_instant;

const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";

fn reference(r: &Option<String>) -> Option<Value> {
    r.as_ref().map(|r| json!({ "reference": r }))
}

/// A new Task for `h` (the store gives it its id and meta).
pub fn new_task(h: &Handoff, description: &str) -> Value {
    let mut m = Map::new();
    m.insert("resourceType".into(), json!("Task"));
    m.insert("status".into(), json!(h.status));
    m.insert("intent".into(), json!("order"));
    m.insert(
        "code".into(),
        json!({"coding": [
            {"system": TASK_CODE, "code": "fulfill"},
            {"system": KIND_SYSTEM, "code": h.kind.as_str()}
        ], "text": h.kind.display()}),
    );
    m.insert("description".into(), json!(description));
    m.insert("focus".into(), json!({ "reference": h.focus }));
    for (key, r) in [
        ("for", &h.patient),
        ("requester", &h.sender),
        ("owner", &h.receiver),
    ] {
        if let Some(v) = reference(r) {
            m.insert(key.into(), v);
        }
    }
    m.insert("authoredOn".into(), json!(format_instant(h.opened)));
    let mut task = Value::Object(m);
    decorate(&mut task, h);
    task
}

/// Lay the gateway's elements over a Task: businessStatus, restriction.period.end (the
/// deadline; removed when there is none), the accountable party.
pub fn decorate(task: &mut Value, h: &Handoff) {
    let Some(m) = task.as_object_mut() else {
        return;
    };
    m.insert(
        "businessStatus".into(),
        json!({"coding": [{"system": BUSINESS_SYSTEM, "code": h.business_status}],
               "text": h.business_status}),
    );
    let mut restriction = m
        .remove("restriction")
        .and_then(|r| r.as_object().cloned())
        .unwrap_or_default();
    let mut period = restriction
        .remove("period")
        .and_then(|p| p.as_object().cloned())
        .unwrap_or_default();
    match h.deadline {
        Some(d) => {
            period.insert("end".into(), json!(format_instant(d)));
        }
        None => {
            period.remove("end");
        }
    }
    if !period.is_empty() {
        restriction.insert("period".into(), Value::Object(period));
    }
    if !restriction.is_empty() {
        m.insert("restriction".into(), Value::Object(restriction));
    }
    let mut exts: Vec<Value> = m
        .remove("extension")
        .and_then(|e| e.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["url"] != ACCOUNTABLE_URL)
        .collect();
    if let Some(a) = reference(&h.accountable) {
        exts.push(json!({"url": ACCOUNTABLE_URL, "valueReference": a}));
    }
    if !exts.is_empty() {
        m.insert("extension".into(), Value::Array(exts));
    }
}

/// Record one escalation step on the Task: an `escalation` extension (step, to, reason)
/// and a note with the reason, both at `at`.
pub fn add_escalation(task: &mut Value, step: &str, to: Option<&str>, reason: &str, at: i64) {
    let Some(m) = task.as_object_mut() else {
        return;
    };
    let when = format_instant(at);
    let mut parts = vec![
        json!({"url": "step", "valueCode": step}),
        json!({"url": "reason", "valueString": reason}),
        json!({"url": "at", "valueDateTime": when}),
    ];
    if let Some(to) = to {
        parts.push(json!({"url": "to", "valueReference": {"reference": to}}));
    }
    let ext = json!({"url": ESCALATION_URL, "extension": parts});
    push(m, "extension", ext);
    push(m, "note", json!({"time": when, "text": reason}));
}

/// A note on the Task saying why the gateway changed it, at `at`.
pub fn add_note(task: &mut Value, reason: &str, at: i64) {
    if let Some(m) = task.as_object_mut() {
        push(
            m,
            "note",
            json!({"time": format_instant(at), "text": reason}),
        );
    }
}

fn push(m: &mut Map<String, Value>, key: &str, v: Value) {
    match m.get_mut(key).and_then(Value::as_array_mut) {
        Some(a) => a.push(v),
        None => {
            m.insert(key.into(), Value::Array(vec![v]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoffs::Kind;

    fn handoff() -> Handoff {
        Handoff {
            task_id: String::new(),
            kind: Kind::Discharge,
            focus: "Encounter/e1".into(),
            patient: Some("Patient/p".into()),
            sender: Some("Organization/h".into()),
            receiver: Some("Practitioner/pcp".into()),
            status: "requested".into(),
            business_status: "awaiting-acceptance".into(),
            accountable: Some("Organization/h".into()),
            deadline: Some(1_700_000_000_000_000),
            then_due: None,
            escalation: None,
            escalated_to: None,
            opened: 1_699_900_000_000_000,
            updated: 1_699_900_000_000_000,
            closed: None,
        }
    }

    #[test]
    fn a_new_task_is_valid_r4_and_says_who_and_by_when() {
        let t = new_task(&handoff(), "Discharge of Encounter/e1");
        let issues = crate::fhir::validate::validate(&t);
        assert!(!issues.iter().any(|i| i.is_error()), "{issues:?}");
        assert_eq!(t["owner"]["reference"], "Practitioner/pcp");
        assert_eq!(t["requester"]["reference"], "Organization/h");
        assert_eq!(
            t["restriction"]["period"]["end"],
            "2023-11-14T22:13:20.000000Z"
        );
        assert_eq!(
            t["extension"][0]["valueReference"]["reference"],
            "Organization/h"
        );
        assert_eq!(t["code"]["coding"][1]["code"], "discharge");
    }

    #[test]
    fn decorate_replaces_what_the_gateway_owns_and_keeps_the_rest() {
        let mut h = handoff();
        let mut t = new_task(&h, "x");
        t["extension"]
            .as_array_mut()
            .unwrap()
            .push(json!({"url": "http://other", "valueString": "kept"}));
        t["restriction"]["repetitions"] = json!(1);
        h.deadline = None;
        h.accountable = Some("Practitioner/pcp".into());
        h.business_status = "accepted".into();
        decorate(&mut t, &h);
        assert!(t["restriction"].get("period").is_none());
        assert_eq!(t["restriction"]["repetitions"], 1);
        let exts = t["extension"].as_array().unwrap();
        assert_eq!(exts.len(), 2);
        assert!(exts.iter().any(|e| e["url"] == "http://other"));
        assert!(exts
            .iter()
            .any(|e| e["valueReference"]["reference"] == "Practitioner/pcp"));
        add_escalation(&mut t, "alternate", Some("Practitioner/oc"), "overdue", 0);
        assert_eq!(t["note"][0]["text"], "overdue");
        let issues = crate::fhir::validate::validate(&t);
        assert!(!issues.iter().any(|i| i.is_error()), "{issues:?}");
    }
}
