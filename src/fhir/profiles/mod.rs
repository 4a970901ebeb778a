//! The gateway's own profiles: every StructureDefinition (differential form) and
//! ValueSet in the profiles directory, loaded once at start.
//!
//! On each differential element the registry enforces min/max cardinality (at every
//! occurrence of the parent), the types a choice element may take, reference targets
//! (`targetProfile`) when the target's type can be told, `fixed[x]` and `pattern[x]`
//! values, required bindings to the value sets shipped beside the profiles (a value
//! set not shipped gives a warning "cannot check codes", never a pass) and constraints
//! of the forms `a.exists()`, `a.b.exists()` and `or` of those (any other expression
//! gives a warning "not evaluated"). What it cannot enforce (slicing, maxLength,
//! min/maxValue, type profiles) it refuses at load, naming the file.

mod check;
mod constraint;
mod element;
mod load;
#[cfg(test)]
mod rule_tests;
#[cfg(test)]
mod tests;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use crate::fhir::definitions::{self, ElementDef};
use crate::fhir::outcome::{Issue, IssueCode};
use constraint::Constraint;

/// The profiles directory used when none is configured, relative to the working
/// directory; it may be absent.
pub const DEFAULT_DIR: &str = "profiles";

/// Issues cap per check, as for base validation.
const MAX_ISSUES: usize = 100;

/// Resource types of the other entries of a transaction, by fullUrl (`urn:uuid:…`), so
/// that references between entries can be checked against `targetProfile`.
pub type LocalRefs = HashMap<String, String>;

#[derive(Default)]
pub struct Profiles {
    profiles: BTreeMap<String, Profile>,
    valuesets: HashMap<String, ValueSet>,
    notes: Vec<String>,
}

pub struct Profile {
    pub url: String,
    pub name: String,
    /// The resource type it constrains.
    pub rtype: String,
    rules: Vec<Rule>,
}

/// One differential element, compiled.
#[derive(Default)]
struct Rule {
    /// As written: `Encounter.hospitalization.dischargeDisposition`.
    path: String,
    /// Element names after the resource type (`[x]` dropped); empty for the root.
    steps: Vec<String>,
    /// The R4 definition of the element (None for the root).
    base: Option<&'static ElementDef>,
    min: Option<u32>,
    /// None: no limit beyond R4's.
    max: Option<u32>,
    /// Types a choice element may take; empty: any R4 allows.
    types: Vec<String>,
    /// Resource types a Reference may point at; empty: any R4 allows.
    targets: Vec<String>,
    fixed: Option<Value>,
    pattern: Option<Value>,
    /// The value set of a required binding.
    binding: Option<String>,
    constraints: Vec<Constraint>,
}

impl Rule {
    /// Whether the R4 definitions carry the codes of `vs` and the element is a code.
    fn base_codes(&self, vs: &str) -> bool {
        self.base
            .is_some_and(|b| b.types.iter().any(|t| t == "code"))
            && definitions::get().valueset_codes(vs).is_some()
    }
}

struct ValueSet {
    /// (system, code), in file order.
    codes: Vec<(String, String)>,
}

impl ValueSet {
    /// A `code` element has no system of its own: its code alone is compared.
    fn contains(&self, system: Option<&str>, code: &str) -> bool {
        self.codes
            .iter()
            .any(|(s, c)| c == code && system.is_none_or(|sys| sys == s))
    }

    /// ": one of a, b, c" for messages, when the set is short enough to list.
    fn listing(&self) -> String {
        if self.codes.len() > 20 {
            return String::new();
        }
        let codes: Vec<&str> = self.codes.iter().map(|(_, c)| c.as_str()).collect();
        format!(": one of {}", codes.join(", "))
    }
}

/// A canonical URL without its `|version`.
pub fn canonical(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

/// The profiles a resource claims in `meta.profile`.
pub fn claimed(resource: &Value) -> Vec<&str> {
    resource["meta"]["profile"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Profiles {
    /// Every `*.json` in `dir`. Any file that is not valid JSON, not valid R4, or uses
    /// what the gateway cannot enforce is an error naming the file.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Profiles> {
        load::load_dir(dir)
    }

    /// The configured directory (which must exist), or [`DEFAULT_DIR`] when none is
    /// configured (absent: no profiles, and a note saying so).
    pub fn load_configured(dir: Option<&Path>) -> anyhow::Result<Profiles> {
        match dir {
            Some(d) if !d.is_dir() => {
                anyhow::bail!("profiles_dir {} is not a directory", d.display())
            }
            Some(d) => Self::load_dir(d),
            None if Path::new(DEFAULT_DIR).exists() => Self::load_dir(Path::new(DEFAULT_DIR)),
            None => Ok(Profiles {
                notes: vec![format!(
                    "no {DEFAULT_DIR}/ directory in the working directory: no profiles are enforced"
                )],
                ..Profiles::default()
            }),
        }
    }

    /// Things worth a warning in the log at start (value sets not shipped,
    /// constraints not evaluated, no profiles directory).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    pub fn valueset_count(&self) -> usize {
        self.valuesets.len()
    }

    pub fn get(&self, url: &str) -> Option<&Profile> {
        self.profiles.get(canonical(url))
    }

    /// Profile URLs by the resource type they constrain.
    pub fn by_type(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in self.profiles.values() {
            m.entry(p.rtype.as_str()).or_default().push(p.url.as_str());
        }
        m
    }

    /// Check `resource` against the profile `url`; an unknown URL is an error issue.
    pub fn validate(&self, resource: &Value, url: &str) -> Vec<Issue> {
        self.validate_with(resource, url, &LocalRefs::new())
    }

    pub fn validate_with(&self, resource: &Value, url: &str, local: &LocalRefs) -> Vec<Issue> {
        let Some(profile) = self.get(url) else {
            let msg = format!("Profile {url} is not known to this server");
            return vec![Issue::error(IssueCode::NotFound, msg)];
        };
        let mut issues = check::Checker {
            profiles: self,
            profile,
            resource,
            local,
            issues: Vec::new(),
        }
        .run();
        issues.truncate(MAX_ISSUES);
        issues
    }

    /// On write: the issues of every profile the resource claims that this server
    /// knows. Claims of unknown profiles are allowed (FHIR lets a resource claim
    /// profiles a server does not know) and not checked.
    pub fn check_claimed(&self, resource: &Value, local: &LocalRefs) -> Vec<Issue> {
        let mut issues = Vec::new();
        for url in claimed(resource) {
            if self.get(url).is_some() {
                issues.extend(self.validate_with(resource, url, local));
            }
        }
        issues
    }

    /// `$validate` and `handoff validate`: the profiles asked for (unknown: an error)
    /// and those claimed in meta.profile (unknown: a note), each checked once. Returns
    /// the issues and the URLs of the profiles checked.
    pub fn report(&self, resource: &Value, requested: &[String]) -> (Vec<Issue>, Vec<String>) {
        let (mut issues, mut checked) = (Vec::new(), Vec::<String>::new());
        let rtype = resource["resourceType"].as_str().unwrap_or_default();
        let claims = claimed(resource);
        let asked = requested.iter().map(|u| (u.as_str(), None));
        let claimed_at = claims.iter().enumerate().map(|(i, u)| (*u, Some(i)));
        for (url, claim) in asked.chain(claimed_at) {
            let Some(p) = self.get(url) else {
                match claim {
                    None => issues.extend(self.validate(resource, url)),
                    Some(i) => issues.push(
                        Issue::information(format!(
                            "Profile {url} is not known to this server: the claim was not checked"
                        ))
                        .at(format!("{rtype}.meta.profile[{i}]")),
                    ),
                }
                continue;
            };
            if !checked.contains(&p.url) {
                issues.extend(self.validate(resource, url));
                checked.push(p.url.clone());
            }
        }
        (issues, checked)
    }
}
