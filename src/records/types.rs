//! The small value types records are made of, and their FHIR JSON forms. Parsing is
//! lenient about what the base validator already refused (a record is only ever built
//! from a resource that passed validation, or from the internal API's typed JSON).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A FHIR Reference as the records use it: a literal reference and/or a display.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Party {
    pub fn to(reference: impl Into<String>) -> Party {
        Party {
            reference: Some(reference.into()),
            display: None,
        }
    }
    pub fn from_json(v: &Value) -> Option<Party> {
        let p = Party {
            reference: str_of(v, "reference"),
            display: str_of(v, "display"),
        };
        (p.reference.is_some() || p.display.is_some()).then_some(p)
    }
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(
            &mut m,
            "reference",
            self.reference.clone().map(Value::String),
        );
        put(&mut m, "display", self.display.clone().map(Value::String));
        Value::Object(m)
    }
    pub fn is_empty(&self) -> bool {
        self.reference.is_none() && self.display.is_none()
    }
}

/// A Coding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Code {
    pub fn new(system: &str, code: &str) -> Code {
        Code {
            system: Some(system.to_owned()),
            code: code.to_owned(),
            display: None,
        }
    }
    pub fn from_json(v: &Value) -> Option<Code> {
        Some(Code {
            system: str_of(v, "system"),
            code: str_of(v, "code")?,
            display: str_of(v, "display"),
        })
    }
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "system", self.system.clone().map(Value::String));
        m.insert("code".into(), Value::String(self.code.clone()));
        put(&mut m, "display", self.display.clone().map(Value::String));
        Value::Object(m)
    }
    pub fn is(&self, system: &str, code: &str) -> bool {
        self.system.as_deref() == Some(system) && self.code == code
    }
}

/// A CodeableConcept: codings (those with a code) and/or text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Concept {
    pub fn code(system: &str, code: &str) -> Concept {
        Concept {
            coding: vec![Code::new(system, code)],
            text: None,
        }
    }
    pub fn from_json(v: &Value) -> Option<Concept> {
        let c = Concept {
            coding: codes(v.get("coding")),
            text: str_of(v, "text"),
        };
        (!c.is_empty()).then_some(c)
    }
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.coding.is_empty() {
            m.insert(
                "coding".into(),
                Value::Array(self.coding.iter().map(Code::to_json).collect()),
            );
        }
        put(&mut m, "text", self.text.clone().map(Value::String));
        Value::Object(m)
    }
    pub fn is_empty(&self) -> bool {
        self.coding.is_empty() && self.text.is_none()
    }
    pub fn has(&self, system: &str, code: &str) -> bool {
        self.coding.iter().any(|c| c.is(system, code))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

impl Period {
    pub fn from_json(v: &Value) -> Option<Period> {
        let p = Period {
            start: str_of(v, "start"),
            end: str_of(v, "end"),
        };
        (p.start.is_some() || p.end.is_some()).then_some(p)
    }
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "start", self.start.clone().map(Value::String));
        put(&mut m, "end", self.end.clone().map(Value::String));
        Value::Object(m)
    }
}

/// A FHIR resource version a record was derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
}

// ---- JSON helpers shared by the records' translations -------------------------------

pub fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

pub fn items(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

pub fn codes(v: Option<&Value>) -> Vec<Code> {
    items(v).filter_map(Code::from_json).collect()
}

pub fn parties(v: Option<&Value>) -> Vec<Party> {
    items(v).filter_map(Party::from_json).collect()
}

pub fn concepts(v: Option<&Value>) -> Vec<Concept> {
    items(v).filter_map(Concept::from_json).collect()
}

/// Set `key` to `value`, or remove it when there is none: the record's fields are
/// authoritative for the elements it models.
pub fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            m.insert(key.to_owned(), v);
        }
        None => {
            m.remove(key);
        }
    }
}

/// An array element, absent when empty (FHIR forbids empty arrays).
pub fn array<T>(xs: &[T], f: impl Fn(&T) -> Value) -> Option<Value> {
    (!xs.is_empty()).then(|| Value::Array(xs.iter().map(f).collect()))
}

/// The resource to overlay the record on: the stored one (so unmodelled elements
/// survive), or a fresh one of the type.
pub fn base_object(base: Option<Value>, rtype: &str) -> Map<String, Value> {
    match base {
        Some(Value::Object(m)) if m.get("resourceType") == Some(&json!(rtype)) => m,
        _ => {
            let mut m = Map::new();
            m.insert("resourceType".into(), json!(rtype));
            m
        }
    }
}

/// The id of a literal reference to `rtype` (`Type/id`, or an absolute URL ending so).
pub fn ref_id(reference: &str, rtype: &str) -> Option<String> {
    let tail = reference.split("/_history/").next().unwrap_or(reference);
    let mut parts = tail.rsplit('/');
    let id = parts.next()?;
    (parts.next()? == rtype && !id.is_empty()).then(|| id.to_owned())
}
