//! Reading profiles/: every `*.json` is a StructureDefinition (differential form) or a
//! ValueSet (an enumeration in `compose.include.concept`). Each file must be valid R4
//! and use only what the gateway enforces: a profile it could only half check is a
//! start-up error naming the file, not a silent gap.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use super::element::{element, R4_BASE};
use super::{canonical, Profile, Profiles, Rule, ValueSet};
use crate::fhir::definitions;
use crate::fhir::outcome::Issue;
use crate::fhir::validate;

pub fn load_dir(dir: &Path) -> anyhow::Result<Profiles> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the profiles directory {}", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .collect();
    files.sort();
    let mut docs = Vec::with_capacity(files.len());
    for f in files {
        let text = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        let value = read(&text).with_context(|| format!("profile file {}", f.display()))?;
        docs.push((f.display().to_string(), value));
    }
    compile(docs)
}

/// JSON, valid R4, and a StructureDefinition or a ValueSet.
fn read(text: &[u8]) -> anyhow::Result<Value> {
    let value: Value = serde_json::from_slice(text).map_err(|e| anyhow!("not JSON: {e}"))?;
    let rtype = value["resourceType"].as_str().unwrap_or_default();
    if rtype != "StructureDefinition" && rtype != "ValueSet" {
        bail!("is neither a StructureDefinition nor a ValueSet");
    }
    let errors: Vec<String> = validate::validate(&value)
        .into_iter()
        .filter(Issue::is_error)
        .map(|i| format!("{}: {}", i.expression.unwrap_or_default(), i.message))
        .collect();
    if !errors.is_empty() {
        bail!("is not a valid R4 {rtype}: {}", errors.join("; "));
    }
    Ok(value)
}

/// Build the registry from (file name, content) pairs: value sets first, so that
/// profiles can be checked against what is shipped.
pub fn compile(docs: Vec<(String, Value)>) -> anyhow::Result<Profiles> {
    let mut p = Profiles::default();
    let mut profile_types = HashMap::new();
    for (file, doc) in &docs {
        let url = canonical(doc["url"].as_str().unwrap_or_default()).to_owned();
        if doc["resourceType"] == "ValueSet" {
            let vs = valueset(doc).with_context(|| format!("ValueSet in {file}"))?;
            if p.valuesets.insert(url.clone(), vs).is_some() {
                bail!("{file}: a second ValueSet with url {url}");
            }
        } else if let Some(t) = doc["type"].as_str() {
            if profile_types.insert(url.clone(), t.to_owned()).is_some() {
                bail!("{file}: a second StructureDefinition with url {url}");
            }
        }
    }
    for (file, doc) in &docs {
        if doc["resourceType"] == "StructureDefinition" {
            let profile = structure_definition(doc, &profile_types, &p.valuesets, &mut p.notes)
                .with_context(|| format!("StructureDefinition in {file}"))?;
            p.profiles.insert(profile.url.clone(), profile);
        }
    }
    Ok(p)
}

fn valueset(doc: &Value) -> anyhow::Result<ValueSet> {
    let compose = &doc["compose"];
    if compose.get("exclude").is_some() {
        bail!("compose.exclude is not supported");
    }
    let mut codes = Vec::new();
    let includes = compose["include"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, inc) in includes.iter().enumerate() {
        let system = inc["system"].as_str();
        let concepts = inc["concept"].as_array().filter(|c| !c.is_empty());
        let (Some(system), Some(concepts), None, None) =
            (system, concepts, inc.get("filter"), inc.get("valueSet"))
        else {
            bail!("compose.include[{i}] must list its codes: a system and concept[], no filter or valueSet");
        };
        for c in concepts {
            codes.push((
                system.to_owned(),
                c["code"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    if codes.is_empty() {
        bail!("has no codes (compose.include.concept)");
    }
    Ok(ValueSet { codes })
}

fn structure_definition(
    doc: &Value,
    profile_types: &HashMap<String, String>,
    valuesets: &HashMap<String, ValueSet>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Profile> {
    let url = canonical(doc["url"].as_str().unwrap_or_default()).to_owned();
    let rtype = doc["type"].as_str().unwrap_or_default().to_owned();
    if doc["kind"] != "resource" || !definitions::get().is_resource_type(&rtype) {
        bail!("{url}: only profiles of resources (kind resource) are supported");
    }
    if doc["derivation"] != "constraint"
        || doc["baseDefinition"].as_str() != Some(&format!("{R4_BASE}{rtype}"))
    {
        bail!("{url}: must be a constraint on {R4_BASE}{rtype} (derivation constraint)");
    }
    let elements = doc["differential"]["element"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if elements.is_empty() {
        bail!("{url}: has no differential.element (the gateway reads differentials only)");
    }
    let mut rules: Vec<Rule> = Vec::new();
    for el in elements {
        let path = el["path"].as_str().unwrap_or_default();
        let rule =
            element(el, &rtype, profile_types).with_context(|| format!("{url}: element {path}"))?;
        if rules.iter().any(|r| r.path == rule.path) {
            bail!("{url}: element {path} is given twice");
        }
        if let Some(vs) = &rule.binding {
            if !valuesets.contains_key(vs) && !rule.base_codes(vs) {
                notes.push(format!("profile {url} binds {path} to {vs}, which is not shipped: its codes will be reported as not checked"));
            }
        }
        for c in rule.constraints.iter().filter(|c| !c.is_evaluated()) {
            notes.push(format!(
                "profile {url}: constraint {} ({}) will be reported as not evaluated",
                c.key, c.expression
            ));
        }
        rules.push(rule);
    }
    let name = doc["name"].as_str().unwrap_or_default().to_owned();
    Ok(Profile {
        url,
        name,
        rtype,
        rules,
    })
}
