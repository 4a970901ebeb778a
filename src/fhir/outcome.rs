//! OperationOutcome: the one shape every FHIR error takes.
//!
//! An [`Issue`] names what is wrong and, when the problem is in the body, where
//! (`expression`, a FHIRPath-like element path such as `Encounter.period.start`).

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The subset of http://hl7.org/fhir/issue-type the gateway reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    Conflict,
    BusinessRule,
    TooCostly,
    Transient,
    Exception,
    Informational,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::Invariant => "invariant",
            IssueCode::Security => "security",
            IssueCode::Login => "login",
            IssueCode::Forbidden => "forbidden",
            IssueCode::Processing => "processing",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Duplicate => "duplicate",
            IssueCode::MultipleMatches => "multiple-matches",
            IssueCode::NotFound => "not-found",
            IssueCode::Deleted => "deleted",
            IssueCode::TooLong => "too-long",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::Conflict => "conflict",
            IssueCode::BusinessRule => "business-rule",
            IssueCode::TooCostly => "too-costly",
            IssueCode::Transient => "transient",
            IssueCode::Exception => "exception",
            IssueCode::Informational => "informational",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    /// Human-readable diagnostics. Never contains resource content beyond the offending
    /// primitive's shape (no names, no free text).
    pub message: String,
    /// Element path, e.g. `Encounter.period.start` or `Bundle.entry[2].resource.subject`.
    pub expression: Option<String>,
}

impl Issue {
    pub fn error(code: IssueCode, message: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            message: message.into(),
            expression: None,
        }
    }
    pub fn warning(code: IssueCode, message: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Warning,
            code,
            message: message.into(),
            expression: None,
        }
    }
    pub fn information(message: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            code: IssueCode::Informational,
            message: message.into(),
            expression: None,
        }
    }
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }
    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Error | Severity::Fatal)
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "severity": self.severity.as_str(),
            "code": self.code.as_str(),
            "diagnostics": self.message,
        });
        if let Some(e) = &self.expression {
            v["expression"] = json!([e]);
        }
        v
    }
}

/// Move issues found in a resource checked on its own (`Encounter.period.end`) to
/// where that resource sits in a larger body (`Bundle.entry[2].resource.period.end`).
pub fn rebase(issues: &mut [Issue], root: &str, to: &str) {
    for issue in issues {
        let Some(e) = &issue.expression else { continue };
        if let Some(rest) = e.strip_prefix(root) {
            if rest.is_empty() || rest.starts_with(['.', '[']) {
                issue.expression = Some(format!("{to}{rest}"));
            }
        }
    }
}

/// An OperationOutcome resource carrying `issues` (at least one: an empty list becomes
/// an informational "All OK").
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issue: Vec<Value> = if issues.is_empty() {
        vec![Issue::information("All OK").to_json()]
    } else {
        issues.iter().map(Issue::to_json).collect()
    };
    json!({ "resourceType": "OperationOutcome", "issue": issue })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_carries_code_and_expression() {
        let o = operation_outcome(&[
            Issue::error(IssueCode::Value, "bad date").at("Encounter.period.start")
        ]);
        assert_eq!(o["issue"][0]["code"], "value");
        assert_eq!(o["issue"][0]["severity"], "error");
        assert_eq!(o["issue"][0]["expression"][0], "Encounter.period.start");
    }

    #[test]
    fn rebase_moves_only_paths_under_the_root() {
        let mut issues = vec![
            Issue::error(IssueCode::Value, "a").at("Encounter.period.end"),
            Issue::error(IssueCode::Value, "b").at("Encounter"),
            Issue::error(IssueCode::Value, "c").at("EncounterHistory.x"),
            Issue::error(IssueCode::Value, "d"),
        ];
        rebase(&mut issues, "Encounter", "Bundle.entry[1].resource");
        let got: Vec<_> = issues.iter().map(|i| i.expression.as_deref()).collect();
        assert_eq!(
            got,
            [
                Some("Bundle.entry[1].resource.period.end"),
                Some("Bundle.entry[1].resource"),
                Some("EncounterHistory.x"),
                None
            ]
        );
    }

    #[test]
    fn empty_outcome_is_informational() {
        let o = operation_outcome(&[]);
        assert_eq!(o["issue"][0]["severity"], "information");
    }
}
