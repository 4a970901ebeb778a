//! Element paths: resolved against the R4 base definitions when a profile loads, and
//! walked over a resource's JSON when it is checked.
//!
//! A path step names an element (`period`, `occurrence` for `occurrence[x]`); in the
//! JSON it may be an array (each item is an occurrence, `coding[0]`), a single value,
//! a choice key (`occurrenceDateTime`) or only a `_name` extension sibling (which
//! counts as present but is not walked into).

use serde_json::Value;

use crate::fhir::definitions::{self, ElementDef};

/// One occurrence of an element in a resource: where it is, its value and its type
/// code (`Period`, `@Encounter.hospitalization`, `dateTime` for `occurrenceDateTime`).
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub path: String,
    pub value: &'a Value,
    pub type_code: &'a str,
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value, rtype: &'a str) -> Node<'a> {
        Node {
            path: rtype.to_owned(),
            value,
            type_code: rtype,
        }
    }
}

type Resolved = Result<(&'static ElementDef, &'static str), String>;

/// The base definition of the element that an ElementDefinition path's `names` reach
/// from type `owner` (choice elements written `value[x]`), and the type code it
/// carries. Choice elements end a path: what lies below them depends on the type
/// chosen. `Err` says why the path does not exist.
pub fn resolve(owner: &str, names: &[&str]) -> Resolved {
    resolve_names(owner, names, true)
}

/// The same for a FHIRPath path, where a choice element is written `value`.
pub fn resolve_fhirpath(owner: &str, names: &[&str]) -> Resolved {
    resolve_names(owner, names, false)
}

fn resolve_names(owner: &str, names: &[&str], marked_choices: bool) -> Resolved {
    let defs = definitions::get();
    let mut owner_code: &str = owner;
    let mut found: Option<(&'static ElementDef, &'static str)> = None;
    for (i, raw) in names.iter().enumerate() {
        let choice = raw.ends_with("[x]");
        let name = raw.trim_end_matches("[x]");
        let td = defs
            .type_def(owner_code)
            .ok_or_else(|| format!("{owner_code} has no elements to step into"))?;
        let ed = td.elements.iter().find(|e| e.name == name).ok_or_else(|| {
            format!(
                "R4 {} has no element '{name}'",
                owner_code.trim_start_matches('@')
            )
        })?;
        if marked_choices && ed.choice != choice {
            return Err(if ed.choice {
                format!("'{name}' is a choice element: write '{name}[x]'")
            } else {
                format!("'{name}' is not a choice element")
            });
        }
        if ed.choice && i + 1 < names.len() {
            return Err(format!(
                "paths below the choice element '{raw}' are not supported"
            ));
        }
        let tc = ed.types.first().map(String::as_str).unwrap_or_default();
        found = Some((ed, tc));
        owner_code = tc;
    }
    found.ok_or_else(|| "the path names no element".to_owned())
}

/// The occurrences of element `name` in `parent`, and how many there are (counting
/// values given only as a `_name` extension sibling).
pub fn children<'a>(parent: &Node<'a>, name: &str) -> (Vec<Node<'a>>, usize) {
    let Value::Object(o) = parent.value else {
        return (Vec::new(), 0);
    };
    let Some(td) = definitions::get().type_def(parent.type_code) else {
        return (Vec::new(), 0);
    };
    let (mut nodes, mut count, mut siblings) = (Vec::new(), 0, 0);
    for (key, val) in o {
        let (bare, underscore) = match key.strip_prefix('_') {
            Some(b) => (b, true),
            None => (key.as_str(), false),
        };
        let Some((ed, tc)) = td.property(bare) else {
            continue;
        };
        if ed.name != name {
            continue;
        }
        let n = match val {
            Value::Array(a) => a.len(),
            Value::Null => 0,
            _ => 1,
        };
        if underscore {
            siblings = siblings.max(n);
            continue;
        }
        count += n;
        let path = format!("{}.{key}", parent.path);
        match val {
            Value::Array(items) => {
                nodes.extend(items.iter().enumerate().filter(|(_, v)| !v.is_null()).map(
                    |(i, v)| Node {
                        path: format!("{path}[{i}]"),
                        value: v,
                        type_code: tc,
                    },
                ))
            }
            Value::Null => {}
            v => nodes.push(Node {
                path,
                value: v,
                type_code: tc,
            }),
        }
    }
    (nodes, count.max(siblings))
}

/// Every occurrence reached from `start` by following `names`.
pub fn descend<'a>(start: Vec<Node<'a>>, names: &[String]) -> Vec<Node<'a>> {
    names.iter().fold(start, |nodes, name| {
        nodes.iter().flat_map(|n| children(n, name).0).collect()
    })
}

/// Whether following `names` from `start` reaches anything (FHIRPath `exists()`).
pub fn exists(start: &Node<'_>, names: &[String]) -> bool {
    let Some((last, inner)) = names.split_last() else {
        return true;
    };
    descend(vec![start.clone()], inner)
        .iter()
        .any(|n| children(n, last).1 > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_paths_and_refuses_unknown_ones() {
        let (ed, tc) = resolve("Encounter", &["hospitalization", "dischargeDisposition"]).unwrap();
        assert_eq!(
            (ed.name.as_str(), tc),
            ("dischargeDisposition", "CodeableConcept")
        );
        let (ed, _) = resolve("ServiceRequest", &["occurrence[x]"]).unwrap();
        assert!(ed.choice);
        assert!(resolve("ServiceRequest", &["occurrence"]).is_err());
        assert!(resolve("Encounter", &["period", "finish"]).is_err());
        assert!(resolve("Encounter", &["status", "x"]).is_err());
        assert!(resolve_fhirpath("ServiceRequest", &["occurrence"]).is_ok());
    }

    #[test]
    fn walks_arrays_choices_and_siblings() {
        let v = json!({"resourceType": "CarePlan",
            "activity": [{"detail": {"status": "scheduled"}}, {"reference": {"reference": "ServiceRequest/1"}}],
            "_created": {"extension": [{"url": "http://x", "valueString": "y"}]}});
        let root = Node::root(&v, "CarePlan");
        let details = descend(vec![root.clone()], &["activity".into(), "detail".into()]);
        assert_eq!(details.len(), 1);
        assert_eq!(details[0].path, "CarePlan.activity[0].detail");
        assert_eq!(details[0].type_code, "@CarePlan.activity.detail");
        assert!(exists(&root, &["created".into()]));
        assert!(!exists(&root, &["goal".into()]));
        let sr = json!({"resourceType": "ServiceRequest", "occurrenceDateTime": "2024"});
        let (kids, n) = children(&Node::root(&sr, "ServiceRequest"), "occurrence");
        assert_eq!(
            (kids[0].path.as_str(), kids[0].type_code, n),
            ("ServiceRequest.occurrenceDateTime", "dateTime", 1)
        );
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        let v = json!({"resourceType": "Encounter", "period": [1, null], "hospitalization": "x"});
        let root = Node::root(&v, "Encounter");
        assert_eq!(
            descend(vec![root.clone()], &["period".into(), "end".into()]).len(),
            0
        );
        assert!(!exists(
            &root,
            &["hospitalization".into(), "dischargeDisposition".into()]
        ));
        let s = json!("not an object");
        assert_eq!(children(&Node::root(&s, "Encounter"), "period").1, 0);
    }
}
