//! The FHIR wire formats. Bodies come in as JSON or XML and leave the same way; inside,
//! a resource is a `serde_json::Value` that has passed [`validate`].
//!
//! fhirbolt is the R4 model: it converts XML to and from JSON and gives a second,
//! model-level opinion on every body. It panics on some inputs, so each call runs
//! under `catch_unwind`; it recurses on nesting, so depth is bounded before it sees a
//! body. Its generic calls stay in this file (each crate that instantiates them
//! recompiles the whole model).

use std::panic::{catch_unwind, AssertUnwindSafe};

use fhirbolt::model::r4::Resource;
use serde_json::Value;

use super::outcome::{Issue, IssueCode};
use super::validate::{self, MAX_DEPTH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json; charset=utf-8",
            Format::Xml => "application/fhir+xml; charset=utf-8",
        }
    }

    /// From a Content-Type or `_format` value; None when it is neither.
    pub fn from_mime(s: &str) -> Option<Format> {
        let base = s
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "json" | "application/fhir+json" | "application/json" | "application/json+fhir" => {
                Some(Format::Json)
            }
            "xml"
            | "application/fhir+xml"
            | "application/xml"
            | "text/xml"
            | "application/xml+fhir" => Some(Format::Xml),
            _ => None,
        }
    }
}

fn structure(msg: impl Into<String>) -> Vec<Issue> {
    vec![Issue::error(IssueCode::Structure, msg)]
}

/// Parse and check a request body. On success the value is a structurally valid R4
/// resource (any type; the caller checks it is the one expected).
pub fn parse(body: &[u8], format: Format) -> Result<Value, Vec<Issue>> {
    match check(body, format) {
        (Some(value), issues) if !issues.iter().any(Issue::is_error) => Ok(value),
        (_, issues) => Err(issues),
    }
}

/// Decode and check a body: the resource as JSON whenever the body could be read as
/// one, even an invalid one (so that `$validate` can check it against profiles too),
/// and every issue found. fhirbolt's model check runs on JSON bodies our validator
/// accepted (XML ones went through the model already).
pub fn check(body: &[u8], format: Format) -> (Option<Value>, Vec<Issue>) {
    let value = match decode(body, format) {
        Ok(v) => v,
        Err(issues) => return (None, issues),
    };
    let mut issues = validate::validate(&value);
    if format == Format::Json && !issues.iter().any(Issue::is_error) {
        if let Err(mut model) = model_check(&value) {
            issues.append(&mut model);
        }
    }
    (Some(value), issues)
}

/// The body as JSON, unchecked.
fn decode(body: &[u8], format: Format) -> Result<Value, Vec<Issue>> {
    match format {
        Format::Json => serde_json::from_slice(body).map_err(|e| {
            if e.to_string().contains("recursion limit") {
                structure(format!("The JSON nests deeper than {MAX_DEPTH} levels"))
            } else {
                structure(format!("The body is not valid JSON: {e}"))
            }
        }),
        Format::Xml => {
            if xml_depth(body) > MAX_DEPTH {
                return Err(structure(format!(
                    "The XML nests deeper than {MAX_DEPTH} levels"
                )));
            }
            let resource =
                guarded(|| fhirbolt::xml::from_slice::<Resource>(body, None))?.map_err(|e| {
                    structure(format!("The body is not a valid FHIR R4 XML resource: {e}"))
                })?;
            guarded(|| fhirbolt::json::to_json_value(resource, None))?
                .map_err(|e| structure(format!("The XML resource could not be converted: {e}")))
        }
    }
}

/// fhirbolt's opinion of a JSON resource our validator accepted.
fn model_check(value: &Value) -> Result<(), Vec<Issue>> {
    let v = value.clone();
    guarded(|| fhirbolt::json::from_json_value::<Resource>(v, None))?
        .map(|_| ())
        .map_err(|e| structure(format!("The resource does not fit the FHIR R4 model: {e}")))
}

fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Vec<Issue>> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| structure("The FHIR parser could not process this body (malformed content)"))
}

/// Render a stored JSON resource (or a Bundle of them) in the requested format.
pub fn render(value: &Value, format: Format, pretty: bool) -> Result<Vec<u8>, String> {
    match format {
        Format::Json if pretty => serde_json::to_vec_pretty(value).map_err(|e| e.to_string()),
        Format::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        Format::Xml => {
            let v = value.clone();
            let resource = catch_unwind(AssertUnwindSafe(|| {
                fhirbolt::json::from_json_value::<Resource>(v, None)
            }))
            .map_err(|_| "the FHIR model panicked while rendering XML".to_owned())?
            .map_err(|e| e.to_string())?;
            let xml = catch_unwind(AssertUnwindSafe(|| fhirbolt::xml::to_vec(&resource, None)))
                .map_err(|_| "the FHIR model panicked while rendering XML".to_owned())?
                .map_err(|e| e.to_string())?;
            Ok(xml)
        }
    }
}

/// Nesting depth of an XML document, approximated from its tags: enough to keep a
/// recursive parser away from pathological input.
fn xml_depth(body: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'<' {
            match body.get(i + 1) {
                Some(b'/') => depth = depth.saturating_sub(1),
                Some(b'?') | Some(b'!') => {}
                Some(_) => {
                    depth += 1;
                    max = max.max(depth);
                }
                None => {}
            }
        } else if body[i] == b'/' && body.get(i + 1) == Some(&b'>') {
            depth = depth.saturating_sub(1);
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENT_XML: &str = r#"<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><active value="true"/><birthDate value="1970-01-01"/></Patient>"#;

    #[test]
    fn xml_round_trip() {
        let v = parse(PATIENT_XML.as_bytes(), Format::Xml).unwrap();
        assert_eq!(v["resourceType"], "Patient");
        assert_eq!(v["birthDate"], "1970-01-01");
        let xml = String::from_utf8(render(&v, Format::Xml, false).unwrap()).unwrap();
        assert!(xml.contains(r#"<birthDate value="1970-01-01"/>"#), "{xml}");
    }

    #[test]
    fn empty_array_is_an_error_not_a_panic() {
        let err = parse(
            br#"{"resourceType":"Patient","identifier":[]}"#,
            Format::Json,
        )
        .unwrap_err();
        assert!(err[0].is_error());
    }

    #[test]
    fn deep_xml_is_refused_before_parsing() {
        let body = format!(
            "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
            "<a>".repeat(5000),
            "</a>".repeat(5000)
        );
        let err = parse(body.as_bytes(), Format::Xml).unwrap_err();
        assert!(err[0].message.contains("deeper"));
    }

    #[test]
    fn formats_from_mime() {
        assert_eq!(
            Format::from_mime("application/fhir+json; fhirVersion=4.0"),
            Some(Format::Json)
        );
        assert_eq!(Format::from_mime("text/xml"), Some(Format::Xml));
        assert_eq!(Format::from_mime("text/plain"), None);
    }
}
