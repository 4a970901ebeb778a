//! A FHIR search request parsed into a typed query. Parse, don't validate: the store
//! only ever sees a [`SearchQuery`] whose parameters are known and whose values are
//! well formed. Unknown parameters are an error unless the client asked for lenient
//! handling, in which case they are ignored and reported back.

use super::dates;
use super::params::{self, normalize, ParamKind};
use crate::fhir::outcome::{Issue, IssueCode};

pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `_id`
    Id(String),
    /// `_lastUpdated`, on the resource's own column.
    LastUpdated {
        prefix: Prefix,
        lo: i64,
        hi: i64,
    },
    /// `system|code`: `system` None = any system; Some("") = no system (`|code`);
    /// `code` None = any code in the system (`system|`).
    Token {
        system: Option<String>,
        code: Option<String>,
        negate: bool,
    },
    /// Normalized value; prefix match unless `exact`, substring with `contains`.
    Str {
        value: String,
        mode: StrMode,
    },
    Date {
        prefix: Prefix,
        lo: i64,
        hi: i64,
    },
    /// `Type/id`, or a bare id matching any type when the type is unknown.
    Ref {
        target: String,
        any_type: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrMode {
    Prefix,
    Exact,
    Contains,
}

/// One search parameter occurrence: its alternatives (comma-separated values) are ORed;
/// filters are ANDed.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub param: &'static str,
    pub any_of: Vec<Cond>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    LastUpdatedAsc,
    LastUpdatedDesc,
    IdAsc,
    IdDesc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The reference parameter, e.g. `patient`.
    pub param: &'static str,
    /// Optional target type filter (`ServiceRequest:performer:Practitioner`).
    pub target: Option<String>,
    pub spec: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub rtype: String,
    pub filters: Vec<Filter>,
    pub count: usize,
    pub offset: usize,
    pub sort: Sort,
    pub include: Vec<Include>,
    /// Parameters ignored under `Prefer: handling=lenient`, reported in the Bundle.
    pub ignored: Vec<Issue>,
    /// The query's own parameters, for self/next links (paging and format excluded).
    pub canonical: Vec<(String, String)>,
}

impl SearchQuery {
    pub fn new(rtype: &str) -> Self {
        SearchQuery {
            rtype: rtype.to_owned(),
            filters: Vec::new(),
            count: DEFAULT_COUNT,
            offset: 0,
            sort: Sort::LastUpdatedAsc,
            include: Vec::new(),
            ignored: Vec::new(),
            canonical: Vec::new(),
        }
    }
}

/// Parameters that change the presentation, not the result set: accepted everywhere.
const PRESENTATION: &[&str] = &["_format", "_pretty"];

pub fn parse(
    rtype: &str,
    pairs: &[(String, String)],
    lenient: bool,
) -> Result<SearchQuery, Vec<Issue>> {
    let mut q = SearchQuery::new(rtype);
    let mut errors = Vec::new();
    for (raw_name, value) in pairs {
        let (name, modifier) = match raw_name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (raw_name.as_str(), None),
        };
        let expr = format!("{rtype}?{raw_name}");
        let mut fail = |code, msg: String| {
            let issue = Issue::error(code, msg).at(expr.clone());
            if lenient && code == IssueCode::NotSupported {
                q_ignored_push(&mut errors, issue, true);
            } else {
                q_ignored_push(&mut errors, issue, false);
            }
        };
        if PRESENTATION.contains(&name) {
            continue;
        }
        match name {
            "_count" => match value.parse::<usize>() {
                Ok(n) => q.count = n.min(MAX_COUNT),
                Err(_) => fail(
                    IssueCode::Value,
                    "_count must be a non-negative integer".into(),
                ),
            },
            "_offset" => match value.parse::<usize>() {
                Ok(n) => q.offset = n,
                Err(_) => fail(
                    IssueCode::Value,
                    "_offset must be a non-negative integer".into(),
                ),
            },
            "_sort" => match value.as_str() {
                "_lastUpdated" => q.sort = Sort::LastUpdatedAsc,
                "-_lastUpdated" => q.sort = Sort::LastUpdatedDesc,
                "_id" => q.sort = Sort::IdAsc,
                "-_id" => q.sort = Sort::IdDesc,
                _ => fail(
                    IssueCode::NotSupported,
                    "_sort supports _lastUpdated, -_lastUpdated, _id and -_id".into(),
                ),
            },
            "_include" => match parse_include(rtype, value) {
                Ok(inc) => q.include.push(inc),
                Err(msg) => fail(IssueCode::NotSupported, msg),
            },
            "_id" => {
                if modifier.is_some() {
                    fail(IssueCode::NotSupported, "_id takes no modifier".into());
                    continue;
                }
                let any_of = value.split(',').map(|v| Cond::Id(v.to_owned())).collect();
                q.filters.push(Filter {
                    param: "_id",
                    any_of,
                });
            }
            "_lastUpdated" => {
                let mut any_of = Vec::new();
                for v in value.split(',') {
                    match parse_date_value(v) {
                        Ok((prefix, lo, hi)) => any_of.push(Cond::LastUpdated { prefix, lo, hi }),
                        Err(msg) => fail(IssueCode::Value, msg),
                    }
                }
                q.filters.push(Filter {
                    param: "_lastUpdated",
                    any_of,
                });
            }
            _ => {
                let Some(def) = params::lookup(rtype, name) else {
                    fail(
                        IssueCode::NotSupported,
                        format!("Search parameter '{name}' is not supported for {rtype}"),
                    );
                    continue;
                };
                let mut any_of = Vec::new();
                for v in split_values(value) {
                    match parse_value(def, modifier, &v) {
                        Ok(c) => any_of.push(c),
                        Err((code, msg)) => fail(code, msg),
                    }
                }
                if !any_of.is_empty() {
                    // In the rows that serve it: a typed parameter with none of its
                    // own is matched in its untyped twin's (every value parsed above
                    // is a target of its types).
                    q.filters.push(Filter {
                        param: def.rows_of(),
                        any_of,
                    });
                }
            }
        }
        if !matches!(name, "_count" | "_offset") {
            q.canonical.push((raw_name.clone(), value.clone()));
        }
    }
    let (ignored, hard): (Vec<_>, Vec<_>) = errors.into_iter().partition(|(soft, _)| *soft);
    if !hard.is_empty() {
        return Err(hard.into_iter().map(|(_, i)| i).collect());
    }
    q.ignored = ignored
        .into_iter()
        .map(|(_, mut i)| {
            i.severity = crate::fhir::outcome::Severity::Warning;
            i.message = format!("{} (ignored: Prefer handling=lenient)", i.message);
            i
        })
        .collect();
    Ok(q)
}

fn q_ignored_push(errors: &mut Vec<(bool, Issue)>, issue: Issue, soft: bool) {
    errors.push((soft, issue));
}

/// Comma separates alternatives; `\,` is a literal comma.
fn split_values(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some(',') | Some('|') | Some('$') | Some('\\')) => {
                out.last_mut().unwrap().push(chars.next().unwrap());
            }
            ',' => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn parse_include(rtype: &str, spec: &str) -> Result<Include, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 || parts[0] != rtype {
        return Err(format!("_include must be {rtype}:param[:Type]"));
    }
    match params::lookup(rtype, parts[1]) {
        Some(def) if def.kind == ParamKind::Reference => Ok(Include {
            param: def.name,
            target: parts.get(2).map(|s| s.to_string()),
            spec: spec.to_owned(),
        }),
        _ => Err(format!(
            "_include: '{}' is not a reference parameter of {rtype}",
            parts[1]
        )),
    }
}

fn parse_value(
    def: &params::ParamDef,
    modifier: Option<&str>,
    v: &str,
) -> Result<Cond, (IssueCode, String)> {
    let (kind, targets) = (def.kind, def.targets);
    let unsupported = |m: &str| {
        (
            IssueCode::NotSupported,
            format!("Modifier ':{m}' is not supported here"),
        )
    };
    if v.is_empty() {
        return Err((IssueCode::Value, "Search value is empty".into()));
    }
    match kind {
        ParamKind::Token => {
            let negate = match modifier {
                None => false,
                Some("not") => true,
                Some(m) => return Err(unsupported(m)),
            };
            let (system, code) = match v.split_once('|') {
                None => (None, Some(v.to_owned())),
                Some((s, c)) => (
                    Some(s.to_owned()),
                    if c.is_empty() {
                        None
                    } else {
                        Some(c.to_owned())
                    },
                ),
            };
            Ok(Cond::Token {
                system,
                code,
                negate,
            })
        }
        ParamKind::String => {
            let mode = match modifier {
                None => StrMode::Prefix,
                Some("exact") => StrMode::Exact,
                Some("contains") => StrMode::Contains,
                Some(m) => return Err(unsupported(m)),
            };
            let value = if mode == StrMode::Exact {
                v.trim().to_owned()
            } else {
                normalize(v)
            };
            Ok(Cond::Str { value, mode })
        }
        ParamKind::Date => {
            if let Some(m) = modifier {
                return Err(unsupported(m));
            }
            let (prefix, lo, hi) = parse_date_value(v).map_err(|m| (IssueCode::Value, m))?;
            Ok(Cond::Date { prefix, lo, hi })
        }
        ParamKind::Reference => {
            let typed = match modifier {
                None => None,
                Some(t) if targets.contains(&t) => Some(t),
                Some(m) => return Err(unsupported(m)),
            };
            if let Some(t) = typed {
                return Ok(Cond::Ref {
                    target: format!("{t}/{v}"),
                    any_type: false,
                });
            }
            if let Some(target) = params::normalize_reference(v) {
                let rtype = target.split_once('/').map_or("", |(t, _)| t);
                if !def.allows(&target) {
                    return Err((
                        IssueCode::Value,
                        format!(
                            "A reference to {rtype} can never match: this parameter refers only to {}",
                            targets.join(", ")
                        ),
                    ));
                }
                return Ok(Cond::Ref {
                    target,
                    any_type: false,
                });
            }
            if v.contains('/') {
                return Err((
                    IssueCode::Value,
                    "Reference search value must be Type/id or an id".into(),
                ));
            }
            match targets {
                [only] => Ok(Cond::Ref {
                    target: format!("{only}/{v}"),
                    any_type: false,
                }),
                _ => Ok(Cond::Ref {
                    target: v.to_owned(),
                    any_type: true,
                }),
            }
        }
    }
}

fn parse_date_value(v: &str) -> Result<(Prefix, i64, i64), String> {
    let (prefix, rest) = match v.get(..2) {
        Some("eq") => (Prefix::Eq, &v[2..]),
        Some("ne") => (Prefix::Ne, &v[2..]),
        Some("gt") => (Prefix::Gt, &v[2..]),
        Some("lt") => (Prefix::Lt, &v[2..]),
        Some("ge") => (Prefix::Ge, &v[2..]),
        Some("le") => (Prefix::Le, &v[2..]),
        Some(p) if p.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(format!(
                "Date prefix '{p}' is not supported (use eq, ne, gt, lt, ge, le)"
            ))
        }
        _ => (Prefix::Eq, v),
    };
    // A '+' in a query string arrives as a space when the client did not encode it.
    let rest = rest.replace(' ', "+");
    let (lo, hi) = dates::range(&rest)
        .ok_or_else(|| "Date search value is not a valid FHIR date or dateTime".to_owned())?;
    Ok((prefix, lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_typical_coordinator_query() {
        let q = parse(
            "ServiceRequest",
            &pairs(&[
                ("patient", "p1"),
                ("status", "active,draft"),
                ("_count", "5"),
                ("_sort", "-_lastUpdated"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(q.count, 5);
        assert_eq!(q.sort, Sort::LastUpdatedDesc);
        assert_eq!(
            q.filters[0].any_of,
            vec![Cond::Ref {
                target: "Patient/p1".into(),
                any_type: false
            }]
        );
        assert_eq!(q.filters[1].any_of.len(), 2);
        // `patient` is matched in `subject`'s rows (it keeps none of its own).
        assert_eq!(q.filters[0].param, "subject");
    }

    #[test]
    fn unknown_parameter_is_an_error_unless_lenient() {
        let p = pairs(&[("colour", "red")]);
        let err = parse("Encounter", &p, false).unwrap_err();
        assert_eq!(err[0].code, IssueCode::NotSupported);
        let q = parse("Encounter", &p, true).unwrap();
        assert_eq!(q.ignored.len(), 1);
        assert!(q.filters.is_empty());
    }

    #[test]
    fn bad_values_are_errors_even_when_lenient() {
        let err = parse("Encounter", &pairs(&[("date", "ge2024-13-01")]), true).unwrap_err();
        assert_eq!(err[0].code, IssueCode::Value);
        assert!(parse("Encounter", &pairs(&[("_count", "x")]), true).is_err());
    }

    #[test]
    fn a_reference_of_a_type_the_parameter_never_holds_is_an_error() {
        let err = parse("AuditEvent", &pairs(&[("patient", "Encounter/e1")]), true).unwrap_err();
        assert_eq!(err[0].code, IssueCode::Value);
        assert!(
            err[0].message.contains("refers only to Patient"),
            "{:?}",
            err[0]
        );
        assert!(parse("AuditEvent", &pairs(&[("patient", "Patient/p1")]), false).is_ok());
        // No target types listed: any type.
        assert!(parse("AuditEvent", &pairs(&[("entity", "Encounter/e1")]), false).is_ok());
        // Not restricted by type in FHIR: a type outside the gateway's list is searched.
        assert!(parse(
            "ServiceRequest",
            &pairs(&[("performer", "CareTeam/ct")]),
            false
        )
        .is_ok());
        let p = pairs(&[("practitioner", "PractitionerRole/r")]);
        assert!(parse("Encounter", &p, false).is_err());
    }

    #[test]
    fn token_forms() {
        let q = parse(
            "Task",
            &pairs(&[
                ("identifier", "urn:a|1"),
                ("status", "|x"),
                ("code", "urn:b|"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(
            q.filters[0].any_of[0],
            Cond::Token {
                system: Some("urn:a".into()),
                code: Some("1".into()),
                negate: false
            }
        );
        assert_eq!(
            q.filters[1].any_of[0],
            Cond::Token {
                system: Some("".into()),
                code: Some("x".into()),
                negate: false
            }
        );
        assert_eq!(
            q.filters[2].any_of[0],
            Cond::Token {
                system: Some("urn:b".into()),
                code: None,
                negate: false
            }
        );
    }

    #[test]
    fn include_must_name_a_reference_param() {
        assert!(parse(
            "ServiceRequest",
            &pairs(&[("_include", "ServiceRequest:patient")]),
            false
        )
        .is_ok());
        assert!(parse(
            "ServiceRequest",
            &pairs(&[("_include", "ServiceRequest:status")]),
            false
        )
        .is_err());
    }
}
