//! Checking one resource against one profile: for every differential element, at
//! every occurrence of its parent, cardinality; at every occurrence of the element,
//! type, reference target, fixed and pattern values, required binding and
//! constraints. Each issue names the profile and the element path.

use serde_json::Value;

use super::constraint::Verdict;
use super::walk::{self, Node};
use super::{LocalRefs, Profile, Profiles, Rule};
use crate::fhir::definitions;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::validate::reference_type;

pub struct Checker<'a> {
    pub profiles: &'a Profiles,
    pub profile: &'a Profile,
    pub resource: &'a Value,
    pub local: &'a LocalRefs,
    pub issues: Vec<Issue>,
}

impl<'a> Checker<'a> {
    pub fn run(mut self) -> Vec<Issue> {
        let p = self.profile;
        let rtype = self.resource["resourceType"].as_str().unwrap_or_default();
        if rtype != p.rtype {
            let what = if rtype.is_empty() {
                "a resource without resourceType"
            } else {
                rtype
            };
            let msg = format!("Profile {} is for {} resources, not {what}", p.url, p.rtype);
            return vec![Issue::error(IssueCode::Invalid, msg)];
        }
        let root = Node::root(self.resource, &p.rtype);
        for rule in &p.rules {
            let Some((last, inner)) = rule.steps.split_last() else {
                self.constraints(rule, &root);
                continue;
            };
            for parent in walk::descend(vec![root.clone()], inner) {
                let (kids, count) = walk::children(&parent, last);
                self.cardinality(rule, &format!("{}.{last}", parent.path), count);
                for kid in &kids {
                    self.occurrence(rule, kid);
                }
            }
        }
        self.issues
    }

    fn error(&mut self, code: IssueCode, at: &str, msg: String) {
        self.issues.push(Issue::error(code, msg).at(at));
    }

    fn cardinality(&mut self, rule: &Rule, at: &str, count: usize) {
        let url = &self.profile.url;
        let min = rule.min.unwrap_or(0) as usize;
        if count < min {
            let msg = if count == 0 {
                format!("{at} is missing: profile {url} requires it")
            } else {
                format!("{at} has {count} entries: profile {url} requires at least {min}")
            };
            self.error(IssueCode::Required, at, msg);
        }
        match rule.max.map(|m| m as usize) {
            Some(0) if count > 0 => self.error(
                IssueCode::Structure,
                at,
                format!("{at} is not allowed by profile {url}"),
            ),
            Some(max) if count > max => self.error(
                IssueCode::Structure,
                at,
                format!("{at} has {count} entries: profile {url} allows at most {max}"),
            ),
            _ => {}
        }
    }

    fn occurrence(&mut self, rule: &Rule, node: &Node<'_>) {
        let url = &self.profile.url;
        let at = node.path.as_str();
        if !rule.types.is_empty() && !rule.types.iter().any(|t| t == node.type_code) {
            let msg = format!(
                "{at}: type {} is not allowed by profile {url} (allowed: {})",
                node.type_code,
                rule.types.join(", ")
            );
            return self.error(IssueCode::Structure, at, msg);
        }
        if node.type_code == "Reference" && !rule.targets.is_empty() {
            if let Some(t) = self.target_type(node.value) {
                if !rule.targets.iter().any(|x| *x == t) {
                    let msg = format!(
                        "{at} refers to a {t}: profile {url} allows {}",
                        rule.targets.join(", ")
                    );
                    self.error(IssueCode::Value, at, msg);
                }
            }
        }
        if let Some(fixed) = &rule.fixed {
            if node.value != fixed {
                let msg = format!("{at} must be exactly {fixed} (fixed by profile {url})");
                self.error(IssueCode::Value, at, msg);
            }
        }
        if let Some(pattern) = &rule.pattern {
            if !matches_pattern(node.value, pattern) {
                let msg = format!("{at} does not match the pattern {pattern} of profile {url}");
                self.error(IssueCode::Value, at, msg);
            }
        }
        if let Some(vs) = &rule.binding {
            self.binding(vs, node);
        }
        self.constraints(rule, node);
    }

    /// The resource type a Reference points at, when it can be told: a literal
    /// `Type/id`, a contained `#id`, a `urn:` of the same transaction, or `type`.
    fn target_type(&self, reference: &'a Value) -> Option<&'a str> {
        let r = reference["reference"].as_str();
        if let Some(id) = r.and_then(|r| r.strip_prefix('#')) {
            let contained = self.resource["contained"].as_array()?;
            let c = contained.iter().find(|c| c["id"].as_str() == Some(id))?;
            return c["resourceType"].as_str();
        }
        r.and_then(|r| {
            self.local
                .get(r)
                .map(String::as_str)
                .or_else(|| reference_type(r))
        })
        .or_else(|| {
            let t = reference["type"].as_str()?;
            Some(t.rsplit('/').next().unwrap_or(t))
        })
    }

    fn constraints(&mut self, rule: &Rule, node: &Node<'_>) {
        let url = &self.profile.url;
        for c in &rule.constraints {
            match c.evaluate(node) {
                Verdict::Holds => {}
                Verdict::Fails { at } => {
                    let msg = format!("Constraint {} of profile {url} failed: {}", c.key, c.human);
                    let issue = Issue {
                        severity: c.severity,
                        ..Issue::error(IssueCode::Invariant, msg)
                    };
                    self.issues
                        .push(issue.at(at.unwrap_or_else(|| node.path.clone())));
                }
                Verdict::NotEvaluated => {
                    let msg = format!(
                        "Constraint {} of profile {url} not evaluated: the gateway evaluates only \
                         'a.exists()', 'a.b.exists()' and 'or' of those, not '{}'",
                        c.key, c.expression
                    );
                    self.issues
                        .push(Issue::warning(IssueCode::NotSupported, msg).at(&node.path));
                }
            }
        }
    }

    fn binding(&mut self, vs: &str, node: &Node<'_>) {
        let url = &self.profile.url;
        let at = node.path.as_str();
        let shipped = self.profiles.valuesets.get(vs);
        let base = definitions::get()
            .valueset_codes(vs)
            .filter(|_| node.type_code == "code");
        if shipped.is_none() && base.is_none() {
            let msg = format!("{at}: cannot check codes against {vs} (bound by profile {url}): the value set is not shipped with the gateway");
            return self
                .issues
                .push(Issue::warning(IssueCode::NotSupported, msg).at(at));
        }
        // `system` None: a `code` element, whose system is implied.
        let allowed = |system: Option<&str>, code: &str| match (shipped, base) {
            (Some(s), _) => s.contains(system, code),
            (None, Some(b)) => b.contains(code),
            (None, None) => false,
        };
        let listing = shipped.map(|s| s.listing()).unwrap_or_default();
        let refuse = |me: &mut Self, at: &str, what: String| {
            let msg = format!(
                "{at}: {what} is not in the value set {vs} required by profile {url}{listing}"
            );
            me.error(IssueCode::CodeInvalid, at, msg);
        };
        match node.type_code {
            "code" => {
                let code = node.value.as_str().unwrap_or_default();
                if !allowed(None, code) {
                    refuse(self, at, format!("code '{code}'"));
                }
            }
            "Coding" => {
                let (s, c) = (node.value["system"].as_str(), node.value["code"].as_str());
                if !c.is_some_and(|c| allowed(Some(s.unwrap_or_default()), c)) {
                    refuse(self, at, describe(s, c));
                }
            }
            "CodeableConcept" => {
                let codings = node.value["coding"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if codings.is_empty() {
                    let msg = format!("{at} has no coding: profile {url} requires one from the value set {vs}{listing}");
                    return self.error(IssueCode::CodeInvalid, at, msg);
                }
                let ok = |c: &Value| {
                    c["code"].as_str().is_some_and(|code| {
                        allowed(Some(c["system"].as_str().unwrap_or_default()), code)
                    })
                };
                if !codings.iter().any(ok) {
                    for (i, c) in codings.iter().enumerate() {
                        let what = describe(c["system"].as_str(), c["code"].as_str());
                        refuse(self, &format!("{at}.coding[{i}]"), what);
                    }
                }
            }
            other => {
                let msg = format!(
                    "{at}: cannot check codes of a {other} against {vs} (bound by profile {url})"
                );
                self.issues
                    .push(Issue::warning(IssueCode::NotSupported, msg).at(at));
            }
        }
    }
}

/// A Coding for a message: codes may be quoted, they are not patient data.
fn describe(system: Option<&str>, code: Option<&str>) -> String {
    match (code, system) {
        (Some(c), Some(s)) => format!("code '{c}' (system {s})"),
        (Some(c), None) => format!("code '{c}' (no system)"),
        (None, _) => "a coding without a code".to_owned(),
    }
}

/// FHIR pattern matching: every property of the pattern is in the value, recursively;
/// a pattern array is matched when each of its items matches some item of the value.
pub fn matches_pattern(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| v.get(k).is_some_and(|vv| matches_pattern(vv, pv))),
        (Value::Array(v), Value::Array(p)) => p
            .iter()
            .all(|pi| v.iter().any(|vi| matches_pattern(vi, pi))),
        (v, p) => v == p,
    }
}
