//! One differential element compiled into a [`Rule`]: its path resolved against the R4
//! definitions, and each constraint it sets checked to narrow (never widen) R4 and to
//! be one the gateway enforces.

use std::collections::HashMap;

use anyhow::{anyhow, bail};
use serde_json::Value;

use super::constraint::Constraint;
use super::{canonical, walk, Rule};
use crate::fhir::definitions::{self, ElementDef};
use crate::fhir::outcome::Severity;
use crate::fhir::primitives;

pub const R4_BASE: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Element properties that constrain instances in ways the gateway does not check.
const UNSUPPORTED: &[&str] = &[
    "slicing",
    "sliceName",
    "contentReference",
    "maxLength",
    "minValue",
    "maxValue",
];

pub fn element(
    el: &Value,
    rtype: &str,
    profile_types: &HashMap<String, String>,
) -> anyhow::Result<Rule> {
    let path = el["path"].as_str().unwrap_or_default();
    if let Some(key) = el
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .find(|k| UNSUPPORTED.iter().any(|u| k.starts_with(u)))
    {
        bail!("uses '{key}', which the gateway does not enforce");
    }
    if el["id"].as_str().is_some_and(|id| id.contains(':')) {
        bail!("slices are not supported");
    }
    let mut names: Vec<&str> = path.split('.').collect();
    if names.first() != Some(&rtype) {
        bail!("the path must start with {rtype}");
    }
    names.remove(0);
    let mut rule = Rule {
        path: path.to_owned(),
        steps: names
            .iter()
            .map(|n| n.trim_end_matches("[x]").to_owned())
            .collect(),
        ..Rule::default()
    };
    let constraints = el["constraint"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if names.is_empty() {
        let known = [
            "id",
            "path",
            "constraint",
            "short",
            "definition",
            "comment",
            "requirements",
            "label",
            "alias",
            "min",
            "max",
            "mustSupport",
        ];
        if let Some(k) = el
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .find(|k| !known.contains(&k.as_str()))
        {
            bail!("'{k}' on the resource element itself is not supported");
        }
        rule.constraints = constraints
            .iter()
            .map(|c| constraint(c, rtype))
            .collect::<Result<_, _>>()?;
        return Ok(rule);
    }
    let (base, tc) = walk::resolve(rtype, &names).map_err(|e| anyhow!(e))?;
    rule.base = Some(base);
    cardinality(el, base, &mut rule)?;
    types(el, base, profile_types, &mut rule)?;
    let allowed: Vec<String> = if rule.types.is_empty() {
        base.types.clone()
    } else {
        rule.types.clone()
    };
    fixed_or_pattern(el, &allowed, &mut rule)?;
    if el["binding"]["strength"] == "required" {
        if !allowed
            .iter()
            .any(|t| matches!(t.as_str(), "code" | "Coding" | "CodeableConcept"))
        {
            bail!("required bindings are checked on code, Coding and CodeableConcept only");
        }
        let vs = el["binding"]["valueSet"]
            .as_str()
            .ok_or_else(|| anyhow!("a required binding needs a valueSet"))?;
        rule.binding = Some(canonical(vs).to_owned());
    }
    if !constraints.is_empty() {
        let owner = if base.choice { "" } else { tc };
        rule.constraints = constraints
            .iter()
            .map(|c| constraint(c, owner))
            .collect::<Result<_, _>>()?;
    }
    Ok(rule)
}

fn cardinality(el: &Value, base: &ElementDef, rule: &mut Rule) -> anyhow::Result<()> {
    if let Some(min) = el.get("min") {
        let min = min
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| anyhow!("min is not a count"))?;
        if min < base.min {
            bail!("min {min} is below the R4 minimum {}", base.min);
        }
        rule.min = Some(min);
    }
    if let Some(max) = el.get("max") {
        let max = match max.as_str() {
            Some("*") => None,
            Some(m) => Some(
                m.parse::<u32>()
                    .map_err(|_| anyhow!("max '{m}' is neither a count nor *"))?,
            ),
            None => bail!("max must be a string"),
        };
        match (max, base.max) {
            (None, Some(b)) => bail!("max * exceeds the R4 maximum {b}"),
            (Some(m), Some(b)) if m > b => bail!("max {m} exceeds the R4 maximum {b}"),
            _ => {}
        }
        if let (Some(m), Some(min)) = (max, rule.min) {
            if min > m {
                bail!("min {min} exceeds max {m}");
            }
        }
        rule.max = max;
    }
    Ok(())
}

fn types(
    el: &Value,
    base: &ElementDef,
    profile_types: &HashMap<String, String>,
    rule: &mut Rule,
) -> anyhow::Result<()> {
    let Some(list) = el["type"].as_array() else {
        return Ok(());
    };
    for t in list {
        let code = t["code"].as_str().unwrap_or_default();
        let backbone = base.types.iter().any(|b| b.starts_with('@'))
            && matches!(code, "BackboneElement" | "Element");
        if !backbone && !base.types.iter().any(|b| b == code) {
            bail!(
                "type {code} is not one R4 allows here ({})",
                base.types.join(", ")
            );
        }
        if t.get("profile").is_some() || t.get("aggregation").is_some() {
            bail!("type.profile and type.aggregation are not supported");
        }
        if base.choice {
            rule.types.push(code.to_owned());
        }
        let Some(targets) = t["targetProfile"].as_array() else {
            continue;
        };
        if code != "Reference" {
            bail!("targetProfile is supported on Reference only");
        }
        for target in targets.iter().filter_map(Value::as_str) {
            let target_type = profile_types
                .get(canonical(target))
                .map(String::as_str)
                .or_else(|| target.strip_prefix(R4_BASE).filter(|t| definitions::get().is_resource_type(t)))
                .ok_or_else(|| anyhow!("targetProfile {target} is neither an R4 resource nor a profile in this directory"))?;
            if !base
                .targets
                .iter()
                .any(|b| b == target_type || b == "Resource")
            {
                bail!("R4 does not let this element refer to {target_type}");
            }
            rule.targets.push(target_type.to_owned());
        }
    }
    if base.choice && rule.types.len() == base.types.len() {
        rule.types.clear();
    }
    Ok(())
}

fn fixed_or_pattern(el: &Value, allowed: &[String], rule: &mut Rule) -> anyhow::Result<()> {
    let Some(o) = el.as_object() else {
        return Ok(());
    };
    for (key, value) in o {
        let (slot, suffix) = if let Some(s) = key.strip_prefix("fixed") {
            (&mut rule.fixed, s)
        } else if let Some(s) = key.strip_prefix("pattern") {
            (&mut rule.pattern, s)
        } else {
            continue;
        };
        let Some(t) = allowed.iter().find(|t| t.eq_ignore_ascii_case(suffix)) else {
            bail!(
                "{key} does not match the element's type ({})",
                allowed.join(", ")
            );
        };
        if definitions::is_primitive(t) {
            primitives::check(t, value).map_err(|e| anyhow!("{key} {e}"))?;
        }
        if slot.replace(value.clone()).is_some() {
            bail!("more than one fixed or pattern value");
        }
    }
    Ok(())
}

fn constraint(c: &Value, owner: &str) -> anyhow::Result<Constraint> {
    let key = c["key"].as_str().unwrap_or_default().to_owned();
    let severity = match c["severity"].as_str() {
        Some("error") => Severity::Error,
        Some("warning") => Severity::Warning,
        _ => bail!("constraint {key}: severity must be error or warning"),
    };
    let human = c["human"].as_str().unwrap_or_default().to_owned();
    let expression = c["expression"].as_str().unwrap_or_default().to_owned();
    Ok(Constraint::new(key, severity, human, expression, owner))
}
