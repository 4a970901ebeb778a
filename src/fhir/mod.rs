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

/// `handoff validate FILE [--profile URL]`: the OperationOutcome for a file's content
/// and whether it is free of errors. XML when the name ends in `.xml` or the content
/// starts with `<`. As `$validate`: R4 base definitions, the profiles asked for, and the
/// loaded profiles the resource claims.
pub fn validate_file(
    body: &[u8],
    name: &std::path::Path,
    profiles: &profiles::Profiles,
    requested: &[String],
) -> (serde_json::Value, bool) {
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
    let (value, mut issues) = format::check(body, fmt);
    let mut checked = Vec::new();
    if let Some(value) = &value {
        let (found, names) = profiles.report(value, requested);
        issues.extend(found);
        checked = names;
    }
    let issues = validation_report(issues, &checked);
    let ok = !issues.iter().any(outcome::Issue::is_error);
    (outcome::operation_outcome(&issues), ok)
}

/// A validation's issues as reported (`$validate`, `handoff validate`): an empty list
/// becomes one informational issue saying what was checked.
pub fn validation_report(issues: Vec<outcome::Issue>, profiles: &[String]) -> Vec<outcome::Issue> {
    if !issues.is_empty() {
        return issues;
    }
    let against = if profiles.is_empty() {
        String::new()
    } else {
        format!(" and the profile(s) {}", profiles.join(", "))
    };
    vec![outcome::Issue::information(format!(
        "No issues found (validated against the FHIR R4 base definitions{against})"
    ))]
}
