//! Consent enforced inside store transactions (issue #5): a notification's disclosure
//! is decided when the event is matched and again when its row is claimed for each
//! delivery attempt, from the consent records and the Patient as they are in that
//! transaction; the ledger entry (an AuditEvent) is written in the transaction that
//! records the outcome. Rules: docs/consent.md.

use serde_json::Value;

use super::executor::{self, Tx};
use super::sql::{Bind, Sql};
use super::StoreError;
use crate::consent::ledger::{self, Disclosure, Effect};
use crate::consent::{self, DataItem, Decision, Outcome, Policy, Recipient, Request};
use crate::records::{ConsentDirective, Record, RecordKind};
use crate::topics::subscription::RecipientSpec;

/// One data item: (reference, resource type, security labels as (system, code)).
pub type Item = (String, String, Vec<(String, String)>);

/// What consent is checked against, loaded by the caller (in a transaction, or from
/// the store for `$evaluate`).
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub consents: Vec<ConsentDirective>,
    /// The patient's Patient.generalPractitioner references.
    pub pcps: Vec<String>,
    pub items: Vec<Item>,
}

/// Decide one disclosure. `recipient` None: unknown (no references, the default
/// roles).
pub fn decide(
    facts: &Facts,
    patient: &str,
    recipient: Option<&RecipientSpec>,
    purpose: &str,
    at: &str,
    policy: &Policy,
) -> Outcome {
    let refs: Vec<&str> = recipient
        .map(|r| r.references.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let roles: Vec<(&str, &str)> = match recipient {
        Some(r) => r
            .roles
            .iter()
            .map(|(s, c)| (s.as_str(), c.as_str()))
            .collect(),
        None => consent::RECIPIENT_ROLES.to_vec(),
    };
    let labels: Vec<Vec<(&str, &str)>> = facts
        .items
        .iter()
        .map(|(_, _, l)| l.iter().map(|(s, c)| (s.as_str(), c.as_str())).collect())
        .collect();
    let data: Vec<DataItem> = facts
        .items
        .iter()
        .zip(&labels)
        .map(|((r, t, _), l)| DataItem {
            reference: r,
            resource_type: t,
            security_labels: l,
            date: None,
        })
        .collect();
    let directives: Vec<&ConsentDirective> = facts.consents.iter().collect();
    let is_pcp = refs.iter().any(|r| facts.pcps.iter().any(|p| p == r));
    let req = Request {
        patient,
        recipient: Recipient {
            references: &refs,
            roles: &roles,
        },
        purpose,
        data: &data,
        at,
    };
    consent::evaluate(&directives, &req, policy, is_pcp)
}

/// A notification about a withheld focus would disclose it: nothing is sent.
fn focus_rule(out: Outcome, focus: &str) -> Outcome {
    if out.decision != Decision::Permit || !out.excluded.iter().any(|x| x == focus) {
        return out;
    }
    Outcome {
        decision: Decision::Deny,
        reason: format!(
            "{}; the notification's focus {focus} is withheld, so nothing is sent",
            out.reason
        ),
        consent: out.consent,
        excluded: Vec::new(),
    }
}

/// The consent records of `patient` and its PCPs, as this transaction sees them.
pub async fn load_patient<T: Tx>(tx: &mut T, patient: &str) -> Result<Facts, StoreError> {
    let rows = tx
        .fetch_rows(&Sql::with(
            "SELECT body FROM records WHERE kind = $1 AND patient = $2",
            vec![
                Bind::Text(RecordKind::Consent.as_str().into()),
                Bind::Text(patient.into()),
            ],
        ))
        .await?;
    let consents = consents_of(rows.iter().filter_map(|r| r[0].text()));
    let pcps = match patient.split_once('/') {
        Some(("Patient", id)) => tx
            .load("Patient", id)
            .await?
            .and_then(|p| p.json())
            .map(|p| pcps_of(&p))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(Facts {
        consents,
        pcps,
        items: Vec::new(),
    })
}

/// The consent directives among stored record bodies (unreadable ones skipped).
fn consents_of<'a>(bodies: impl Iterator<Item = &'a str>) -> Vec<ConsentDirective> {
    bodies
        .filter_map(|b| match Record::parse(RecordKind::Consent, b) {
            Ok(Record::Consent(c)) => Some(c),
            _ => None,
        })
        .collect()
}

pub fn pcps_of(patient: &Value) -> Vec<String> {
    patient["generalPractitioner"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["reference"].as_str().map(str::to_owned))
        .collect()
}

/// (type, security labels) of a resource body.
pub fn item_of(reference: &str, body: Option<&Value>) -> Item {
    let rtype = reference.split('/').next().unwrap_or("").to_owned();
    let labels = body
        .and_then(|b| b["meta"]["security"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["system"].as_str().unwrap_or("").to_owned(),
                c["code"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (reference.to_owned(), rtype, labels)
}

mod facts;
pub use facts::{EventFacts, FactsMemo};

/// Write the ledger entry for a disclosure (or its denial).
pub async fn record<T: Tx>(
    tx: &mut T,
    d: &Disclosure,
    effect: &Effect,
    at: i64,
) -> Result<(), StoreError> {
    entry(d, effect, at)?.write(tx).await
}

/// A ledger entry made ready outside the transaction that writes it: building,
/// serialising and indexing its AuditEvent is a delivery worker's work, not the
/// (single, on SQLite) writer's.
#[derive(Debug, Clone)]
pub struct Entry {
    audit: executor::Prepared,
    subscription: String,
    webhook_id: String,
    decision: Decision,
    effect: &'static str,
}

/// The ledger entry for a disclosure (or its denial), `effect` known at `at`.
pub fn entry(d: &Disclosure, effect: &Effect, at: i64) -> Result<Entry, StoreError> {
    Ok(Entry {
        audit: executor::prepare_new(ledger::disclosure_event(d, effect, at), at)?,
        subscription: d.subscription.clone(),
        webhook_id: d.webhook_id.clone(),
        decision: d.decision.decision,
        effect: effect_name(effect),
    })
}

impl Entry {
    pub async fn write<T: Tx>(&self, tx: &mut T) -> Result<(), StoreError> {
        Self::write_all(tx, std::slice::from_ref(self)).await
    }

    /// Write several entries (an attempt's, one per event it carried) at once.
    pub async fn write_all<T: Tx>(tx: &mut T, entries: &[Entry]) -> Result<(), StoreError> {
        for e in entries {
            tracing::info!(
                subscription = %e.subscription, webhook_id = %e.webhook_id,
                decision = ?e.decision, effect = e.effect, audit = %e.audit.stored.id,
                "disclosure ledger"
            );
        }
        let audits: Vec<_> = entries.iter().map(|e| &e.audit).collect();
        tx.write_new_many(&audits).await
    }
}

fn effect_name(e: &Effect) -> &'static str {
    match e {
        Effect::Delivered => "delivered",
        Effect::Unacknowledged(_) => "unacknowledged",
        Effect::Denied => "denied",
    }
}

/// A question asked outside a delivery: `POST /fhir/Consent/$evaluate` and
/// `handoff consent check`.
#[derive(Debug, Clone)]
pub struct Question {
    pub patient: String,
    pub recipient: RecipientSpec,
    /// `Type/id` of stored resources, or bare resource types (a class of data).
    pub data: Vec<String>,
    /// FHIR instant, dateTime or date.
    pub at: String,
}

/// Answer a [`Question`] from the store as it is now, with the same rules as a
/// delivery (the patient's PCPs from Patient.generalPractitioner).
pub async fn evaluate(
    store: &dyn super::Store,
    q: &Question,
    policy: &Policy,
) -> Result<Outcome, StoreError> {
    let stored: Vec<String> = q.data.iter().filter(|d| d.contains('/')).cloned().collect();
    let found = store.read_many(&stored).await?;
    let items = q
        .data
        .iter()
        .map(|d| {
            let body = found
                .iter()
                .find(|s| s.reference() == *d)
                .and_then(|s| s.json());
            item_of(d, body.as_ref())
        })
        .collect();
    evaluate_items(store, &q.patient, &q.recipient, items, &q.at, policy).await
}

/// Decide disclosing `items` (their labels already read) about `patient` to
/// `recipient` at `at`, from the store as it is now: `$evaluate` and API reads.
pub async fn evaluate_items(
    store: &dyn super::Store,
    patient: &str,
    recipient: &RecipientSpec,
    items: Vec<Item>,
    at: &str,
    policy: &Policy,
) -> Result<Outcome, StoreError> {
    let query = super::RecordQuery {
        kind: RecordKind::Consent,
        patient: Some(patient.to_owned()),
        status: None,
        limit: 10_000,
        offset: 0,
    };
    let (rows, _) = store.records(&query).await?;
    let consents = rows
        .iter()
        .filter_map(|b| match Record::parse(RecordKind::Consent, b) {
            Ok(Record::Consent(c)) => Some(c),
            _ => None,
        })
        .collect();
    let pcps = match patient.split_once('/') {
        Some(("Patient", id)) => store
            .read("Patient", id)
            .await?
            .and_then(|p| p.json())
            .map(|p| pcps_of(&p))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let facts = Facts {
        consents,
        pcps,
        items,
    };
    Ok(decide(
        &facts,
        patient,
        Some(recipient),
        &recipient.purpose,
        at,
        policy,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn directive(kind: &str, actor: &str) -> ConsentDirective {
        let c = json!({"resourceType": "Consent", "id": "c", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p"},
            "provision": {"type": kind, "actor": [{"role": {"coding": [{"system": consent::PARTICIPATION, "code": "PRCP"}]},
                "reference": {"reference": actor}}]}});
        match Record::from_resource(&c, None) {
            Some(Record::Consent(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    fn facts(consents: Vec<ConsentDirective>) -> Facts {
        Facts {
            consents,
            pcps: vec!["Practitioner/pcp".into()],
            items: vec![
                item_of("Encounter/e", None),
                item_of(
                    "Patient/p",
                    Some(&json!({"meta": {"security": [{"system": "s", "code": "PSY"}]}})),
                ),
            ],
        }
    }

    fn to(refs: &[&str]) -> RecipientSpec {
        RecipientSpec {
            references: refs.iter().map(|r| r.to_string()).collect(),
            roles: vec![(consent::PARTICIPATION.into(), "PRCP".into())],
            purpose: "TREAT".into(),
        }
    }

    const AT: &str = "2026-11-30T00:00:00Z";

    #[test]
    fn the_pcp_by_policy_others_not() {
        let policy = Policy::gateway_default();
        let f = facts(Vec::new());
        let pcp = decide(
            &f,
            "Patient/p",
            Some(&to(&["Practitioner/pcp"])),
            "TREAT",
            AT,
            &policy,
        );
        assert_eq!(pcp.decision, Decision::Permit);
        let other = decide(
            &f,
            "Patient/p",
            Some(&to(&["Organization/x"])),
            "TREAT",
            AT,
            &policy,
        );
        assert_eq!(other.decision, Decision::Deny);
        let unknown = decide(&f, "Patient/p", None, "TREAT", AT, &policy);
        assert_eq!(unknown.decision, Decision::Deny);
    }

    #[test]
    fn a_deny_reaches_an_unknown_recipient_even_under_a_permissive_policy() {
        let policy = Policy::with_default(Decision::Permit);
        let f = facts(vec![directive("deny", "Organization/x")]);
        let unknown = decide(&f, "Patient/p", None, "TREAT", AT, &policy);
        assert_eq!(unknown.decision, Decision::Deny, "{unknown:?}");
        assert_eq!(unknown.consent.as_deref(), Some("Consent/c"));
        let stranger = decide(
            &f,
            "Patient/p",
            Some(&to(&["Organization/y"])),
            "TREAT",
            AT,
            &policy,
        );
        assert_eq!(stranger.decision, Decision::Permit);
    }

    #[test]
    fn a_withheld_focus_denies_the_notification() {
        let permit = Outcome {
            decision: Decision::Permit,
            reason: "r".into(),
            consent: None,
            excluded: vec!["Encounter/e".into()],
        };
        assert_eq!(
            focus_rule(permit.clone(), "Encounter/e").decision,
            Decision::Deny
        );
        assert_eq!(
            focus_rule(permit, "Encounter/other").decision,
            Decision::Permit
        );
    }
}
