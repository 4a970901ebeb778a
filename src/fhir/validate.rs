//! Structural validation of a JSON resource against the R4 base definitions.
//!
//! fhirbolt accepts bad dates, ids and codes and missing required elements, so the
//! gateway checks every body itself before storing it: unknown elements, arrays where
//! a single value belongs (and the reverse), empty arrays, objects and strings, nulls,
//! missing required elements, primitive formats, `_element` siblings, logical ids,
//! reference target types, and codes bound to a required value set. Contained and
//! bundled resources are checked the same way. Each problem becomes an [`Issue`] with
//! its path (`Bundle.entry[1].resource.period.end`).
//!
//! Profiles (invariants, slicing, must-support) are a separate layer on top of this.

use serde_json::{Map, Value};

use super::definitions::{self, is_primitive, ElementDef, TypeDef};
use super::outcome::{Issue, IssueCode};
use super::primitives;

/// Deepest object nesting accepted in a body (JSON or XML).
pub const MAX_DEPTH: usize = 64;

/// Issues cap: past this many the client has enough to go on.
const MAX_ISSUES: usize = 100;

/// Validate a resource. An empty list means it is structurally valid R4.
pub fn validate(value: &Value) -> Vec<Issue> {
    let mut v = Validator { issues: Vec::new() };
    match value {
        Value::Object(o) => v.resource(o, None, 0),
        _ => v.push(Issue::error(
            IssueCode::Structure,
            "The body must be a JSON object holding a FHIR resource",
        )),
    }
    v.issues
}

struct Validator {
    issues: Vec<Issue>,
}

impl Validator {
    fn push(&mut self, issue: Issue) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(issue);
        }
    }

    fn err(&mut self, code: IssueCode, path: &str, msg: impl Into<String>) {
        let issue = Issue::error(code, msg);
        self.push(if path.is_empty() {
            issue
        } else {
            issue.at(path)
        });
    }

    /// A resource at the root (`path` None) or nested at `path`.
    fn resource(&mut self, o: &Map<String, Value>, path: Option<&str>, depth: usize) {
        let defs = definitions::get();
        let at = path.unwrap_or("");
        let rtype = match o.get("resourceType") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return self.err(IssueCode::Structure, at, "resourceType must be a string"),
            None => return self.err(IssueCode::Structure, at, "The resource has no resourceType"),
        };
        if !defs.is_resource_type(rtype) {
            let msg = format!("'{rtype}' is not a FHIR R4 resource type");
            return self.err(IssueCode::Structure, at, msg);
        }
        let Some(td) = defs.type_def(rtype) else {
            return;
        };
        let path = path.map(str::to_owned).unwrap_or_else(|| rtype.to_owned());
        if let Some(id) = o.get("id") {
            if !id.as_str().is_some_and(primitives::is_valid_id) {
                self.err(
                    IssueCode::Value,
                    &format!("{path}.id"),
                    "id must be 1-64 characters of A-Z a-z 0-9 - .",
                );
            }
        }
        self.object(o, td, &path, depth, true);
    }

    fn object(
        &mut self,
        o: &Map<String, Value>,
        td: &TypeDef,
        path: &str,
        depth: usize,
        is_resource: bool,
    ) {
        if depth > MAX_DEPTH {
            return self.err(
                IssueCode::Structure,
                path,
                format!("The content nests deeper than {MAX_DEPTH} levels"),
            );
        }
        if o.is_empty() {
            return self.err(
                IssueCode::Structure,
                path,
                "An empty object is not allowed (leave the element out instead)",
            );
        }
        let mut chosen: Vec<(&str, &str)> = Vec::new(); // (choice element, key used)
        for (key, val) in o {
            if is_resource && (key == "resourceType" || key == "id") {
                continue;
            }
            let (name, underscore) = match key.strip_prefix('_') {
                Some(n) => (n, true),
                None => (key.as_str(), false),
            };
            let child = format!("{path}.{key}");
            let Some((ed, tc)) = td.property(name) else {
                self.err(
                    IssueCode::Structure,
                    &child,
                    format!("Unknown element '{key}'"),
                );
                continue;
            };
            if ed.choice {
                match chosen.iter().find(|(e, _)| *e == ed.name) {
                    Some((_, other)) if *other != name => {
                        let msg = format!(
                            "Only one type of {}[x] may be given, found {other} and {name}",
                            ed.name
                        );
                        self.err(IssueCode::Structure, &child, msg);
                        continue;
                    }
                    Some(_) => {}
                    None => chosen.push((&ed.name, name)),
                }
            }
            if underscore {
                self.extension_sibling(val, ed, tc, o.get(name), &child, depth);
            } else {
                let has_sibling = o.contains_key(&format!("_{name}"));
                self.element(val, ed, tc, &child, depth, has_sibling);
            }
        }
        for ed in td.elements.iter().filter(|e| e.min > 0) {
            let present = if ed.choice {
                o.keys().any(|k| {
                    td.property(k.trim_start_matches('_'))
                        .is_some_and(|(e, _)| e.name == ed.name)
                })
            } else {
                o.contains_key(&ed.name) || o.contains_key(&format!("_{}", ed.name))
            };
            if !present {
                let suffix = if ed.choice { "[x]" } else { "" };
                let msg = format!("Missing required element '{}{suffix}'", ed.name);
                self.err(IssueCode::Required, &format!("{path}.{}", ed.name), msg);
            }
        }
    }

    fn element(
        &mut self,
        val: &Value,
        ed: &ElementDef,
        tc: &str,
        path: &str,
        depth: usize,
        has_sibling: bool,
    ) {
        if !ed.is_array() {
            if val.is_array() {
                return self.err(
                    IssueCode::Structure,
                    path,
                    "must be a single value, not an array",
                );
            }
            return self.single(val, ed, tc, path, depth);
        }
        let Value::Array(items) = val else {
            return self.err(IssueCode::Structure, path, "must be an array");
        };
        if items.is_empty() {
            return self.err(
                IssueCode::Structure,
                path,
                "An empty array is not allowed (leave the element out instead)",
            );
        }
        if let Some(max) = ed.max {
            if items.len() > max as usize {
                self.err(
                    IssueCode::Structure,
                    path,
                    format!("has {} entries; at most {max} allowed", items.len()),
                );
            }
        }
        for (i, item) in items.iter().enumerate() {
            // In a primitive array a null is a placeholder for an entry whose value sits
            // in the `_name` sibling (an extension without a value).
            if item.is_null() && has_sibling && is_primitive(tc) {
                continue;
            }
            self.single(item, ed, tc, &format!("{path}[{i}]"), depth);
        }
    }

    fn single(&mut self, val: &Value, ed: &ElementDef, tc: &str, path: &str, depth: usize) {
        if val.is_null() {
            return self.err(
                IssueCode::Structure,
                path,
                "null is not allowed (leave the element out instead)",
            );
        }
        if is_primitive(tc) {
            if let Err(msg) = primitives::check(tc, val) {
                return self.err(IssueCode::Value, path, msg);
            }
            if tc == "code" {
                self.bound_code(val, ed, path);
            }
            return;
        }
        let Value::Object(o) = val else {
            return self.err(
                IssueCode::Structure,
                path,
                format!("must be a JSON object ({})", tc.trim_start_matches('@')),
            );
        };
        if tc == "Resource" {
            return self.resource(o, Some(path), depth + 1);
        }
        let Some(td) = definitions::get().type_def(tc) else {
            return self.err(
                IssueCode::NotSupported,
                path,
                format!("has a type the gateway does not know ({tc})"),
            );
        };
        self.object(o, td, path, depth + 1, false);
        if tc == "Reference" {
            self.reference_target(o, ed, path);
        }
    }

    /// `_name`: the id and extensions of a primitive, or an array of them lining up
    /// with the primitive array.
    fn extension_sibling(
        &mut self,
        val: &Value,
        ed: &ElementDef,
        tc: &str,
        primitive: Option<&Value>,
        path: &str,
        depth: usize,
    ) {
        if !is_primitive(tc) {
            return self.err(
                IssueCode::Structure,
                path,
                "Only primitive elements may have an '_' sibling",
            );
        }
        let element = definitions::get()
            .type_def("Element")
            .expect("Element is defined");
        let one = |v: &mut Self, item: &Value, p: &str| match item {
            Value::Object(o) => v.object(o, element, p, depth + 1, false),
            _ => v.err(
                IssueCode::Structure,
                p,
                "must be an object with id and/or extension",
            ),
        };
        if !ed.is_array() {
            return one(self, val, path);
        }
        let Value::Array(items) = val else {
            return self.err(IssueCode::Structure, path, "must be an array");
        };
        if let Some(Value::Array(values)) = primitive {
            if values.len() != items.len() {
                self.err(
                    IssueCode::Structure,
                    path,
                    "must have as many entries as the primitive array it extends",
                );
            }
        }
        for (i, item) in items.iter().enumerate() {
            if item.is_null() {
                let value_present = primitive
                    .and_then(|p| p.get(i))
                    .is_some_and(|v| !v.is_null());
                if !value_present {
                    self.err(
                        IssueCode::Structure,
                        &format!("{path}[{i}]"),
                        "has neither a value nor an extension",
                    );
                }
                continue;
            }
            one(self, item, &format!("{path}[{i}]"));
        }
    }

    fn bound_code(&mut self, val: &Value, ed: &ElementDef, path: &str) {
        let (Some(url), Some(code)) = (ed.valueset.as_deref(), val.as_str()) else {
            return;
        };
        let Some(codes) = definitions::get().valueset_codes(url) else {
            return;
        };
        if !codes.contains(code) {
            let mut allowed: Vec<_> = codes.iter().map(String::as_str).collect();
            allowed.sort_unstable();
            let list = if allowed.len() <= 20 {
                format!(": one of {}", allowed.join(", "))
            } else {
                String::new()
            };
            self.err(
                IssueCode::CodeInvalid,
                path,
                format!("'{code}' is not in the required value set {url}{list}"),
            );
        }
    }

    /// A literal reference's resource type must be one the element allows.
    fn reference_target(&mut self, o: &Map<String, Value>, ed: &ElementDef, path: &str) {
        if ed.targets.is_empty() || ed.targets.iter().any(|t| t == "Resource") {
            return;
        }
        let referenced = o
            .get("reference")
            .and_then(Value::as_str)
            .and_then(reference_type)
            .or_else(|| {
                o.get("type")
                    .and_then(Value::as_str)
                    .map(|t| t.rsplit('/').next().unwrap_or(t))
            });
        let Some(rtype) = referenced else { return };
        if definitions::get().is_resource_type(rtype) && !ed.targets.iter().any(|t| t == rtype) {
            let msg = format!("may refer to {}, not {rtype}", ed.targets.join(", "));
            self.err(IssueCode::Value, path, msg);
        }
    }
}

/// The resource type of a literal reference: `Patient/1`, `Patient/1/_history/2` or an
/// absolute URL ending so. Contained (`#x`) and `urn:` references have none.
pub fn reference_type(reference: &str) -> Option<&str> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let path = reference.split(['?', '#']).next().unwrap_or(reference);
    let parts: Vec<&str> = path.split('/').collect();
    let n = parts.len();
    let at = if n >= 4 && parts[n - 2] == "_history" {
        n.checked_sub(4)?
    } else {
        n.checked_sub(2)?
    };
    let candidate = parts[at];
    candidate
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
        .then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(v: Value) -> Vec<(String, String)> {
        validate(&v)
            .into_iter()
            .map(|i| (i.code.as_str().to_owned(), i.expression.unwrap_or_default()))
            .collect()
    }

    fn enc(extra: Value) -> Value {
        let mut base = json!({"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    }

    #[test]
    fn a_valid_encounter_passes() {
        let v = enc(json!({"id": "e1", "subject": {"reference": "Patient/p1"},
            "period": {"start": "2024-01-01T10:00:00Z"},
            "identifier": [{"system": "urn:oid:1.2.3", "value": "x"}],
            "extension": [{"url": "http://example.org/x", "valueDateTime": "2024-01"}],
            "contained": [{"resourceType": "Patient", "id": "p", "gender": "female"}],
            "meta": {"tag": [{"code": "a"}]}, "_language": {"extension": [{"url": "http://x", "valueString": "y"}]}}));
        assert_eq!(codes(v), vec![]);
    }

    #[test]
    fn structural_errors_name_the_path() {
        assert_eq!(
            codes(enc(json!({"colour": "red"}))),
            vec![("structure".into(), "Encounter.colour".into())]
        );
        assert_eq!(
            codes(enc(json!({"identifier": []}))),
            vec![("structure".into(), "Encounter.identifier".into())]
        );
        assert_eq!(
            codes(enc(json!({"class": [{"code": "IMP"}]}))),
            vec![("structure".into(), "Encounter.class".into())]
        );
        assert_eq!(
            codes(enc(json!({"period": {"start": "2024-02-30"}}))),
            vec![("value".into(), "Encounter.period.start".into())]
        );
        assert_eq!(
            codes(enc(json!({"status": "done"}))),
            vec![("code-invalid".into(), "Encounter.status".into())]
        );
        assert_eq!(
            codes(enc(json!({"status": 7}))),
            vec![("value".into(), "Encounter.status".into())]
        );
        assert_eq!(
            codes(enc(json!({"subject": {"reference": "Practitioner/1"}}))),
            vec![("value".into(), "Encounter.subject".into())]
        );
        assert_eq!(
            codes(enc(json!({"period": {}}))),
            vec![("structure".into(), "Encounter.period".into())]
        );
        assert_eq!(
            codes(enc(json!({"subject": null}))),
            vec![("structure".into(), "Encounter.subject".into())]
        );
        assert_eq!(
            codes(enc(json!({"id": "a b"}))),
            vec![("value".into(), "Encounter.id".into())]
        );
        assert_eq!(
            codes(enc(
                json!({"contained": [{"resourceType": "Patient", "id": "x_y"}]})
            )),
            vec![("value".into(), "Encounter.contained[0].id".into())]
        );
        let mut missing = enc(json!({}));
        missing.as_object_mut().unwrap().remove("status");
        assert_eq!(
            codes(missing),
            vec![("required".into(), "Encounter.status".into())]
        );
        assert_eq!(
            codes(json!({"resourceType": "Wibble"})),
            vec![("structure".into(), "".into())]
        );
        assert_eq!(codes(json!([1])), vec![("structure".into(), "".into())]);
    }

    #[test]
    fn choices_and_siblings() {
        let two = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueString": "a", "valueBoolean": true});
        assert_eq!(codes(two).len(), 1);
        let ext_missing_url = enc(json!({"extension": [{"valueString": "a"}]}));
        assert_eq!(
            codes(ext_missing_url),
            vec![("required".into(), "Encounter.extension[0].url".into())]
        );
        let names = json!({"resourceType": "Patient", "name": [{"given": ["A", null],
            "_given": [null, {"extension": [{"url": "http://x", "valueCode": "IN"}]}]}]});
        assert_eq!(codes(names), vec![]);
        let not_prim = enc(json!({"_period": {}}));
        assert_eq!(codes(not_prim)[0].0, "structure");
    }

    #[test]
    fn bundles_are_checked_entry_by_entry() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": enc(json!({})), "request": {"method": "POST", "url": "Encounter"}},
            {"resource": enc(json!({"period": {"end": "2024-13-01"}})), "request": {"method": "POST", "url": "Encounter"}}]});
        assert_eq!(
            codes(b),
            vec![("value".into(), "Bundle.entry[1].resource.period.end".into())]
        );
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = json!({"url": "http://x", "valueString": "leaf"});
        for _ in 0..100 {
            v = json!({"url": "http://x", "extension": [v]});
        }
        let issues = codes(enc(json!({"extension": [v]})));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].0, "structure");
    }

    #[test]
    fn reference_types() {
        assert_eq!(reference_type("Patient/1"), Some("Patient"));
        assert_eq!(
            reference_type("http://x.org/fhir/Patient/1/_history/2"),
            Some("Patient")
        );
        assert_eq!(reference_type("#p"), None);
        assert_eq!(reference_type("urn:uuid:1"), None);
        assert_eq!(reference_type("1"), None);
    }
}
