//! A topic as FHIR R4 can carry it: a `Basic` resource with `code`
//! `http://hl7.org/fhir/fhir-types#SubscriptionTopic`, the R5 SubscriptionTopic
//! elements as cross-version extensions (`http://hl7.org/fhir/5.0/StructureDefinition/
//! extension-SubscriptionTopic.*`), and the R5 status, a modifier there, as a
//! modifierExtension. This is how the Subscriptions Backport IG represents topics on
//! R4 servers (its example `Basic/r4-encounter-complete`), so that clients can discover
//! them with `GET Basic?code=http://hl7.org/fhir/fhir-types|SubscriptionTopic`.
//!
//! The gateway's topics fire on domain events, not on a query over one resource, so
//! each event is an R5 `eventTrigger` (coded in [`EVENT_SYSTEM`], with the Da Vinci
//! notification event beside it) rather than a `resourceTrigger`.

use serde_json::{json, Value};

use super::{FilterDef, Topic, DAVINCI_EVENT_SYSTEM, EVENT_SYSTEM};

const XVER: &str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.";
const TOPIC_PROFILE: &str = "http://hl7.org/fhir/5.0/StructureDefinition/profile-SubscriptionTopic";

/// The topic as the R4 `Basic` resource the Backport IG defines, with a stable id =
/// the topic code.
pub fn as_basic(t: &Topic) -> Value {
    let resource_url = format!("http://hl7.org/fhir/StructureDefinition/{}", t.resource);
    let mut extensions = vec![
        ext("url", json!({"valueUri": t.url})),
        ext("name", json!({"valueString": computable_name(t.code)})),
        ext("title", json!({"valueString": t.title})),
        ext("description", json!({"valueMarkdown": description(t)})),
    ];
    for (events, what) in [(t.events, "Triggered by"), (t.retractions, "Retracted by")] {
        for e in events {
            extensions.push(nested(
                "eventTrigger",
                vec![
                    sub(
                        "description",
                        json!({"valueMarkdown": format!("{what} the gateway's domain event {e}.")}),
                    ),
                    sub(
                        "event",
                        json!({"valueCodeableConcept": event_concept(t, e)}),
                    ),
                    sub("resource", json!({"valueUri": resource_url})),
                ],
            ));
        }
    }
    extensions.extend(t.filters.iter().map(can_filter_by));
    let mut shape = vec![sub("resource", json!({"valueUri": t.resource}))];
    shape.extend(
        t.includes
            .iter()
            .map(|i| sub("include", json!({"valueString": i}))),
    );
    shape.extend(
        t.rev_includes
            .iter()
            .map(|i| sub("revInclude", json!({"valueString": i}))),
    );
    extensions.push(nested("notificationShape", shape));
    json!({
        "resourceType": "Basic",
        "id": t.code,
        "meta": {"profile": [TOPIC_PROFILE]},
        "extension": extensions,
        "modifierExtension": [ext("status", json!({"valueCode": "active"}))],
        "code": {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]},
    })
}

/// `encounter-end` -> `EncounterEnd` (R5 `name`: a computer-friendly name).
fn computable_name(code: &str) -> String {
    code.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn description(t: &Topic) -> String {
    format!(
        "{}\n\nAdditional context in notifications: {}.",
        t.description,
        t.context.join("; ")
    )
}

fn event_concept(t: &Topic, event: &str) -> Value {
    let mut coding = vec![json!({"system": EVENT_SYSTEM, "code": event})];
    if let Some(dv) = t.davinci_event.filter(|_| t.events.contains(&event)) {
        coding.push(json!({"system": DAVINCI_EVENT_SYSTEM, "code": dv}));
    }
    json!({"coding": coding, "text": event})
}

fn can_filter_by(f: &FilterDef) -> Value {
    let mut parts = vec![
        sub("description", json!({"valueMarkdown": f.description})),
        sub("resource", json!({"valueUri": f.resource})),
        sub("filterParameter", json!({"valueString": f.param})),
    ];
    if let Some(d) = f.definition {
        parts.push(sub("filterDefinition", json!({"valueUri": d})));
    }
    nested("canFilterBy", parts)
}

/// A top-level cross-version extension with a value (`{"valueUri": …}`).
fn ext(element: &str, value: Value) -> Value {
    with_url(format!("{XVER}{element}"), value)
}

/// A top-level cross-version extension made of sub-extensions.
fn nested(element: &str, parts: Vec<Value>) -> Value {
    json!({"url": format!("{XVER}{element}"), "extension": parts})
}

/// A sub-extension (relative url) with a value.
fn sub(name: &str, value: Value) -> Value {
    with_url(name.to_owned(), value)
}

fn with_url(url: String, value: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("url".into(), Value::String(url));
    if let Value::Object(v) = value {
        m.extend(v);
    }
    Value::Object(m)
}
