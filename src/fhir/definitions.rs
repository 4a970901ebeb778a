//! The R4 base element definitions, generated once from the official
//! StructureDefinitions by `tools/gen_definitions.py` and embedded in the binary.
//!
//! For each resource, data type and nested backbone element: its elements with
//! cardinality, type codes, reference targets, whether it is a choice (`value[x]`) and
//! its required value set. For each required value set that is a plain enumeration:
//! its codes. That is all the validator needs; terminology beyond that is out of scope.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde::Deserialize;

const SOURCE: &str = include_str!("definitions/r4-elements.json");

/// The R4 primitive types; everything else is a complex type, a backbone (`@Path`) or
/// `Resource`.
pub const PRIMITIVES: &[&str] = &[
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "xhtml",
];

pub fn is_primitive(type_code: &str) -> bool {
    PRIMITIVES.contains(&type_code)
}

#[derive(Debug, Deserialize)]
struct Row(
    u32,
    serde_json::Value,
    Vec<String>,
    Vec<String>,
    bool,
    Option<String>,
);

#[derive(Debug)]
pub struct ElementDef {
    pub name: String,
    pub min: u32,
    /// None for `*`.
    pub max: Option<u32>,
    pub types: Vec<String>,
    pub targets: Vec<String>,
    pub choice: bool,
    pub valueset: Option<String>,
}

impl ElementDef {
    /// Whether the JSON form is an array.
    pub fn is_array(&self) -> bool {
        self.max != Some(1)
    }
}

#[derive(Debug, Deserialize)]
struct RawType {
    kind: String,
    #[serde(default, rename = "abstract")]
    is_abstract: bool,
    elements: HashMap<String, Row>,
}

#[derive(Debug)]
pub struct TypeDef {
    pub kind: String,
    pub is_abstract: bool,
    pub elements: Vec<ElementDef>,
    /// JSON property name (`valueString`, `status`) → (element index, type code).
    keys: HashMap<String, (usize, String)>,
}

impl TypeDef {
    /// The element a JSON property names, and the type it carries.
    pub fn property(&self, key: &str) -> Option<(&ElementDef, &str)> {
        self.keys
            .get(key)
            .map(|(i, t)| (&self.elements[*i], t.as_str()))
    }
}

#[derive(Deserialize)]
struct Raw {
    types: HashMap<String, RawType>,
    valuesets: HashMap<String, Vec<String>>,
}

pub struct Definitions {
    types: HashMap<String, TypeDef>,
    valuesets: HashMap<String, HashSet<String>>,
}

static DEFINITIONS: LazyLock<Definitions> = LazyLock::new(Definitions::load);

pub fn get() -> &'static Definitions {
    &DEFINITIONS
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

impl Definitions {
    fn load() -> Definitions {
        // The file is generated and embedded at build time; a unit test parses it.
        let raw: Raw = serde_json::from_str(SOURCE).expect("embedded r4-elements.json is valid");
        let mut types = HashMap::with_capacity(raw.types.len());
        for (name, rt) in raw.types {
            let mut elements = Vec::with_capacity(rt.elements.len());
            let mut keys = HashMap::new();
            let mut rows: Vec<_> = rt.elements.into_iter().collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            for (ename, row) in rows {
                let max = row.1.as_u64().map(|m| m as u32);
                let idx = elements.len();
                if row.4 {
                    for t in &row.2 {
                        keys.insert(format!("{ename}{}", capitalised(t)), (idx, t.clone()));
                    }
                } else {
                    keys.insert(
                        ename.clone(),
                        (idx, row.2.first().cloned().unwrap_or_default()),
                    );
                }
                elements.push(ElementDef {
                    name: ename,
                    min: row.0,
                    max,
                    types: row.2,
                    targets: row.3,
                    choice: row.4,
                    valueset: row.5,
                });
            }
            types.insert(
                name,
                TypeDef {
                    kind: rt.kind,
                    is_abstract: rt.is_abstract,
                    elements,
                    keys,
                },
            );
        }
        let valuesets = raw
            .valuesets
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        Definitions { types, valuesets }
    }

    /// A complex type, resource or backbone (`@Encounter.location` or `Encounter.location`).
    pub fn type_def(&self, code: &str) -> Option<&TypeDef> {
        self.types.get(code.strip_prefix('@').unwrap_or(code))
    }

    /// A concrete (non-abstract) resource type.
    pub fn is_resource_type(&self, name: &str) -> bool {
        self.types
            .get(name)
            .is_some_and(|t| t.kind == "resource" && !t.is_abstract)
    }

    /// The codes of a required value set, when it is a plain enumeration we carry.
    pub fn valueset_codes(&self, url: &str) -> Option<&HashSet<String>> {
        self.valuesets.get(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_embedded_definitions() {
        let d = get();
        assert!(d.is_resource_type("Encounter"));
        assert!(!d.is_resource_type("DomainResource"));
        assert!(!d.is_resource_type("Period"));
        let enc = d.type_def("Encounter").unwrap();
        let (status, t) = enc.property("status").unwrap();
        assert_eq!((status.min, status.max, t), (1, Some(1), "code"));
        let codes = d
            .valueset_codes(status.valueset.as_deref().unwrap())
            .unwrap();
        assert!(codes.contains("finished") && !codes.contains("done"));
        let ext = d.type_def("Extension").unwrap();
        let (value, t) = ext.property("valueDateTime").unwrap();
        assert!(value.choice && t == "dateTime");
        assert!(ext.property("value").is_none());
        assert!(d.type_def("@Encounter.location").is_some());
    }
}
