//! Who receives a subscription's notifications: the party whose disclosure the
//! patient's consent directives are checked against (issue #5, docs/consent.md).
//!
//! The Backport IG's R4 Subscription has no element for it. R5 has
//! `Subscription.managingEntity` (one reference, who manages the subscription; no
//! role, no purpose), which R4 carries as the cross-version extension
//! [`MANAGING_ENTITY_URL`]: the gateway reads it as one recipient reference. The
//! gateway's own extension [`RECIPIENT_URL`] says it all: one or more `actor`s
//! (valueReference: the practitioner, their PractitionerRole, their practice's
//! Organization...), the `role`s they receive in (valueCoding, default
//! v3-ParticipationType PRCP and IRCP) and the `purpose` of use (valueCoding
//! v3-ActReason, default TREAT). A subscription that names nobody has an unknown
//! recipient: only the no-consent policy can permit its notifications.

use serde_json::{Map, Value};

use super::extensions;
use crate::consent::{ACT_REASON, RECIPIENT_ROLES, TREATMENT};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::validate::reference_type;

pub const RECIPIENT_URL: &str =
    "http://handoff.example.org/fhir/StructureDefinition/subscription-recipient";
pub const MANAGING_ENTITY_URL: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Subscription.managingEntity";

/// The resource types a recipient reference may name.
const RECIPIENT_TYPES: [&str; 7] = [
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "CareTeam",
    "HealthcareService",
    "Patient",
    "RelatedPerson",
];

/// The recipient, checked. Stored in the subscription's spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecipientSpec {
    /// `Type/id` of every party the recipient answers to.
    pub references: Vec<String>,
    /// (system, code) of the roles the recipient receives in.
    pub roles: Vec<(String, String)>,
    /// The v3-ActReason purpose of use of the disclosures.
    pub purpose: String,
}

impl RecipientSpec {
    /// Whether `reference` (`Type/id`, as written) is one of the parties it answers to.
    pub fn answers_to(&self, reference: &str) -> bool {
        self.references.iter().any(|r| r == reference)
    }
}

/// Read the recipient extensions of a Subscription; problems go to `issues`.
pub fn read(root: &Map<String, Value>, issues: &mut Vec<Issue>) -> Option<RecipientSpec> {
    let mut references = Vec::new();
    let mut roles = Vec::new();
    let mut purpose = None;
    let mut found = false;
    for (i, e) in extensions(root.get("extension"), MANAGING_ENTITY_URL) {
        found = true;
        let at = format!("Subscription.extension[{i}].valueReference");
        if let Some(r) = reference(e, &at, issues) {
            references.push(r);
        }
    }
    for (n, (i, e)) in extensions(root.get("extension"), RECIPIENT_URL).enumerate() {
        found = true;
        let at = format!("Subscription.extension[{i}]");
        if n > 0 {
            issues.push(bad(&at, "a Subscription names its recipient once"));
            continue;
        }
        let parts = e.get("extension").and_then(Value::as_array);
        for (j, part) in parts.into_iter().flatten().enumerate() {
            let at = format!("{at}.extension[{j}]");
            match part.get("url").and_then(Value::as_str) {
                Some("actor") => {
                    if let Some(r) = reference(part, &format!("{at}.valueReference"), issues) {
                        references.push(r);
                    }
                }
                Some("role") => match coding(part) {
                    Some((Some(s), c)) => roles.push((s, c)),
                    _ => issues.push(bad(
                        &format!("{at}.valueCoding"),
                        "a recipient role is a valueCoding with system and code",
                    )),
                },
                Some("purpose") => match coding(part) {
                    Some((None, c)) => purpose = Some(c),
                    Some((Some(s), c)) if s == ACT_REASON => purpose = Some(c),
                    _ => issues.push(bad(
                        &format!("{at}.valueCoding"),
                        "the purpose of use is a valueCoding from v3-ActReason (e.g. TREAT)",
                    )),
                },
                _ => issues.push(bad(
                    &format!("{at}.url"),
                    "a recipient extension holds only actor, role and purpose",
                )),
            }
        }
        if references.is_empty() {
            issues.push(
                Issue::error(
                    IssueCode::Required,
                    "the recipient extension needs at least one actor (valueReference)",
                )
                .at(at),
            );
        }
    }
    if !found {
        return None;
    }
    if roles.is_empty() {
        roles = RECIPIENT_ROLES
            .iter()
            .map(|(s, c)| (s.to_string(), c.to_string()))
            .collect();
    }
    Some(RecipientSpec {
        references,
        roles,
        purpose: purpose.unwrap_or_else(|| TREATMENT.to_owned()),
    })
}

fn bad(at: &str, msg: &str) -> Issue {
    Issue::error(IssueCode::Value, msg).at(at)
}

/// A relative `Type/id` reference to a party that can receive.
fn reference(e: &Value, at: &str, issues: &mut Vec<Issue>) -> Option<String> {
    let r = e["valueReference"]["reference"].as_str().map(str::trim);
    let ok = r.filter(|r| {
        let parts: Vec<&str> = r.split('/').collect();
        parts.len() == 2
            && !parts[1].is_empty()
            && reference_type(r).is_some_and(|t| RECIPIENT_TYPES.contains(&t))
    });
    if ok.is_none() {
        issues.push(bad(
            at,
            &format!(
                "a recipient is a valueReference with a relative reference Type/id to one of {}",
                RECIPIENT_TYPES.join(", ")
            ),
        ));
    }
    ok.map(str::to_owned)
}

fn coding(e: &Value) -> Option<(Option<String>, String)> {
    let c = e.get("valueCoding")?;
    let code = c["code"].as_str()?.trim();
    if code.is_empty() {
        return None;
    }
    Some((c["system"].as_str().map(str::to_owned), code.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(exts: Value) -> (Option<RecipientSpec>, Vec<Issue>) {
        let root = json!({"resourceType": "Subscription", "extension": exts});
        let mut issues = Vec::new();
        let r = read(root.as_object().unwrap(), &mut issues);
        (r, issues)
    }

    #[test]
    fn actors_roles_and_purpose() {
        let (r, issues) = run(json!([{"url": RECIPIENT_URL, "extension": [
            {"url": "actor", "valueReference": {"reference": "Practitioner/pcp"}},
            {"url": "actor", "valueReference": {"reference": "Organization/practice"}},
            {"url": "purpose", "valueCoding": {"system": ACT_REASON, "code": "HOPERAT"}}
        ]}]));
        assert!(issues.is_empty(), "{issues:?}");
        let r = r.unwrap();
        assert_eq!(r.references, ["Practitioner/pcp", "Organization/practice"]);
        assert_eq!(r.purpose, "HOPERAT");
        assert_eq!(r.roles.len(), 2, "the default recipient roles");
    }

    #[test]
    fn managing_entity_is_a_recipient() {
        let (r, issues) = run(json!([{"url": MANAGING_ENTITY_URL,
            "valueReference": {"reference": "Organization/o"}}]));
        assert!(issues.is_empty());
        let r = r.unwrap();
        assert_eq!(r.references, ["Organization/o"]);
        assert_eq!(r.purpose, "TREAT");
    }

    #[test]
    fn none_named_is_none() {
        let (r, issues) = run(json!([]));
        assert!(r.is_none() && issues.is_empty());
    }

    #[test]
    fn malformed_recipients_name_the_path() {
        let (_, issues) = run(json!([{"url": RECIPIENT_URL, "extension": [
            {"url": "actor", "valueReference": {"reference": "Encounter/1"}},
            {"url": "role", "valueCoding": {"code": "PRCP"}},
            {"url": "purpose", "valueCoding": {"system": "http://x", "code": "TREAT"}},
            {"url": "colour", "valueString": "red"}
        ]}]));
        let paths: Vec<_> = issues.iter().map(|i| i.expression.clone()).collect();
        let text = format!("{paths:?}");
        for p in [
            "Subscription.extension[0].extension[0].valueReference",
            "Subscription.extension[0].extension[1].valueCoding",
            "Subscription.extension[0].extension[2].valueCoding",
            "Subscription.extension[0].extension[3].url",
        ] {
            assert!(text.contains(p), "{p} missing from {text}");
        }
        // No actor survived: that is said too.
        assert!(issues.len() >= 5, "{issues:?}");
    }
}
