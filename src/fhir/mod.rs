//! The FHIR R4 boundary: wire formats, validation, errors, search. fhirbolt types never
//! leave this module.

pub mod capability;
pub mod definitions;
pub mod format;
pub mod outcome;
pub mod primitives;
pub mod profiles;
pub mod search;
pub mod validate;

/// `handoff validate FILE`: the OperationOutcome for a file's content and whether it
/// is free of errors. XML when the name ends in `.xml` or the content starts with `<`.
pub fn validate_file(body: &[u8], name: &std::path::Path) -> (serde_json::Value, bool) {
    let starts_with_lt = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    let xml = name
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        || starts_with_lt;
    let fmt = if xml {
        format::Format::Xml
    } else {
        format::Format::Json
    };
    let issues = validation_report(format::parse(body, fmt).err().unwrap_or_default());
    let ok = !issues.iter().any(outcome::Issue::is_error);
    (outcome::operation_outcome(&issues), ok)
}

/// A validation's issues as reported (`$validate`, `handoff validate`): an empty list
/// becomes one informational issue saying what was checked.
pub fn validation_report(issues: Vec<outcome::Issue>) -> Vec<outcome::Issue> {
    if issues.is_empty() {
        vec![outcome::Issue::information(
            "No issues found (validated against the FHIR R4 base definitions)",
        )]
    } else {
        issues
    }
}
