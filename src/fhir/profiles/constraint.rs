//! Profile invariants (`ElementDefinition.constraint`). The gateway evaluates exactly
//! the simple forms its profiles need: `a.exists()`, `a.b.exists()` and `or` of such
//! terms. Anything else is kept and reported as "not evaluated" at every check, never
//! passed silently.

use crate::fhir::outcome::Severity;

use super::walk::{self, Node};

#[derive(Debug, Clone)]
pub struct Constraint {
    pub key: String,
    pub severity: Severity,
    pub human: String,
    pub expression: String,
    /// The terms of `t1 or t2 ...`, each a path of element names; None when the
    /// expression is not one the gateway evaluates.
    terms: Option<Vec<Vec<String>>>,
}

/// The outcome of evaluating a constraint at one node.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    /// Fails; `at` is where the missing element belongs when there is one place.
    Fails {
        at: Option<String>,
    },
    NotEvaluated,
}

impl Constraint {
    /// A constraint on elements of type `owner` (the resource type for the root).
    pub fn new(
        key: String,
        severity: Severity,
        human: String,
        expression: String,
        owner: &str,
    ) -> Constraint {
        let terms = parse(&expression, owner).filter(|terms| {
            terms.iter().all(|t| {
                let names: Vec<&str> = t.iter().map(String::as_str).collect();
                walk::resolve_fhirpath(owner, &names).is_ok()
            })
        });
        Constraint {
            key,
            severity,
            human,
            expression,
            terms,
        }
    }

    pub fn is_evaluated(&self) -> bool {
        self.terms.is_some()
    }

    pub fn evaluate(&self, node: &Node<'_>) -> Verdict {
        let Some(terms) = &self.terms else {
            return Verdict::NotEvaluated;
        };
        if terms.iter().any(|t| walk::exists(node, t)) {
            return Verdict::Holds;
        }
        let at = match terms.as_slice() {
            [only] => Some(format!("{}.{}", node.path, only.join("."))),
            _ => None,
        };
        Verdict::Fails { at }
    }
}

/// `a.exists() or b.c.exists()` → [[a], [b, c]]. A leading `Owner.` is dropped.
fn parse(expression: &str, owner: &str) -> Option<Vec<Vec<String>>> {
    let words: Vec<&str> = expression.split_whitespace().collect();
    let mut terms = Vec::new();
    for chunk in words.split(|w| *w == "or") {
        let [term] = chunk else { return None };
        let path = term.strip_suffix(".exists()")?;
        let mut names: Vec<&str> = path.split('.').collect();
        if names.len() > 1 && names[0] == owner {
            names.remove(0);
        }
        let identifier = |n: &&str| {
            n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && n.chars().all(|c| c.is_ascii_alphanumeric())
        };
        if !names.iter().all(identifier) {
            return None;
        }
        terms.push(names.into_iter().map(str::to_owned).collect());
    }
    Some(terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(expr: &str) -> Constraint {
        Constraint::new(
            "k".into(),
            Severity::Error,
            "h".into(),
            expr.into(),
            "ServiceRequest",
        )
    }

    #[test]
    fn parses_only_the_simple_forms() {
        assert_eq!(parse("a.exists()", "X"), Some(vec![vec!["a".to_owned()]]));
        assert_eq!(
            parse(" a.exists()  or b.c.exists() ", "X"),
            Some(vec![vec!["a".into()], vec!["b".into(), "c".into()]])
        );
        assert_eq!(parse("X.a.exists()", "X"), Some(vec![vec!["a".into()]]));
        for other in [
            "a.exists() and b.exists()",
            "a.empty()",
            "a.where(b = 'c').exists()",
            "a.exists() or",
            "or a.exists()",
            "",
            "a..exists()",
            "a.exists() or b.exists() implies c.exists()",
        ] {
            assert_eq!(parse(other, "X"), None, "{other}");
        }
    }

    #[test]
    fn evaluates_on_json() {
        let v = json!({"resourceType": "ServiceRequest", "reasonReference": [{"reference": "Condition/1"}]});
        let root = Node::root(&v, "ServiceRequest");
        assert_eq!(
            c("reasonCode.exists() or reasonReference.exists()").evaluate(&root),
            Verdict::Holds
        );
        assert_eq!(
            c("reasonCode.exists() or supportingInfo.exists()").evaluate(&root),
            Verdict::Fails { at: None }
        );
        assert_eq!(
            c("supportingInfo.exists()").evaluate(&root),
            Verdict::Fails {
                at: Some("ServiceRequest.supportingInfo".into())
            }
        );
        assert_eq!(
            c("reasonReference.reference.exists()").evaluate(&root),
            Verdict::Holds
        );
        let choice =
            json!({"resourceType": "ServiceRequest", "occurrencePeriod": {"start": "2024"}});
        assert_eq!(
            c("occurrence.exists()").evaluate(&Node::root(&choice, "ServiceRequest")),
            Verdict::Holds
        );
    }

    #[test]
    fn unknown_elements_and_forms_are_not_evaluated() {
        let v = json!({"resourceType": "ServiceRequest"});
        let root = Node::root(&v, "ServiceRequest");
        assert_eq!(c("wibble.exists()").evaluate(&root), Verdict::NotEvaluated);
        assert_eq!(
            c("reasonCode.count() > 1").evaluate(&root),
            Verdict::NotEvaluated
        );
        assert!(!c("reasonCode.count() > 1").is_evaluated());
    }
}
