//! Minimum necessary (issue #5): when consent permits a notification but withholds
//! some of the data it would carry, those resources are taken out of the Bundle
//! (entries, references in the status Parameters or the MessageHeader) and the Bundle
//! says so in `Bundle.meta.extension` [`WITHHELD_URL`]: one `withheld` (valueReference)
//! per resource left out and the `reason` (valueString, consent ids and codes only).
//! See docs/consent.md, "Minimum necessary in a notification".

use serde_json::{json, Value};

pub const WITHHELD_URL: &str = "http://handoff.example.org/fhir/StructureDefinition/withheld-data";

/// Take `excluded` (`Type/id` references) out of a notification or message Bundle.
pub fn apply(bundle: &mut Value, excluded: &[String], reason: &str) {
    if excluded.is_empty() {
        return;
    }
    let names = |r: &str| {
        excluded
            .iter()
            .any(|x| r == x || r.ends_with(&format!("/{x}")))
    };
    if let Some(entries) = bundle["entry"].as_array_mut() {
        entries.retain(|e| {
            let res = &e["resource"];
            let own = format!(
                "{}/{}",
                res["resourceType"].as_str().unwrap_or(""),
                res["id"].as_str().unwrap_or("")
            );
            !(names(&own)
                || e["fullUrl"].as_str().is_some_and(names)
                || e["request"]["url"].as_str().is_some_and(names))
        });
        if let Some(first) = entries.first_mut() {
            drop_references(&mut first["resource"], &names);
        }
    }
    let mut ext: Vec<Value> = excluded
        .iter()
        .map(|r| json!({"url": "withheld", "valueReference": {"reference": r}}))
        .collect();
    ext.push(json!({"url": "reason", "valueString": reason}));
    let meta = &mut bundle["meta"];
    if !meta.is_object() {
        *meta = json!({});
    }
    let list = meta
        .as_object_mut()
        .expect("made an object")
        .entry("extension")
        .or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        list.push(json!({"url": WITHHELD_URL, "extension": ext}));
    }
}

/// Remove, anywhere in `v`, list members that are references to a withheld resource
/// (a `valueReference` part, a MessageHeader focus).
fn drop_references(v: &mut Value, names: &dyn Fn(&str) -> bool) {
    match v {
        Value::Array(items) => {
            items.retain(|i| {
                let r = i["valueReference"]["reference"]
                    .as_str()
                    .or_else(|| i["reference"].as_str());
                !r.is_some_and(names)
            });
            items.iter_mut().for_each(|i| drop_references(i, names));
        }
        Value::Object(map) => map.values_mut().for_each(|c| drop_references(c, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withheld_resources_leave_and_the_bundle_says_so() {
        let mut b = json!({"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": {"resourceType": "Parameters", "parameter": [
                {"name": "notification-event", "part": [
                    {"name": "focus", "valueReference": {"reference": "Encounter/e"}},
                    {"name": "additional-context", "valueReference": {"reference": "Observation/x"}},
                    {"name": "additional-context", "valueReference": {"reference": "Patient/p"}}
                ]}
            ]}},
            {"fullUrl": "http://h/fhir/Encounter/e", "resource": {"resourceType": "Encounter", "id": "e"}},
            {"fullUrl": "http://h/fhir/Observation/x", "resource": {"resourceType": "Observation", "id": "x"}},
            {"fullUrl": "http://h/fhir/Patient/p", "request": {"method": "GET", "url": "Patient/p"}}
        ]});
        apply(
            &mut b,
            &["Observation/x".into()],
            "TREAT: Consent/c permits",
        );
        let text = b.to_string();
        let entries = b["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        let parts = b["entry"][0]["resource"]["parameter"][0]["part"]
            .as_array()
            .unwrap();
        assert_eq!(parts.len(), 2);
        let ext = &b["meta"]["extension"][0];
        assert_eq!(ext["url"], WITHHELD_URL);
        assert_eq!(
            ext["extension"][0]["valueReference"]["reference"],
            "Observation/x"
        );
        assert_eq!(
            text.matches("Observation/x").count(),
            1,
            "only the note names it"
        );
    }

    #[test]
    fn nothing_withheld_changes_nothing() {
        let mut b = json!({"resourceType": "Bundle"});
        apply(&mut b, &[], "");
        assert_eq!(b, json!({"resourceType": "Bundle"}));
    }
}
