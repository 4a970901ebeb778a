//! What consent decides a notification of a domain event on, loaded once per event and
//! transaction whatever the number of subscribers, and on PostgreSQL for all the events
//! of a claim at once.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{consents_of, decide, focus_rule, item_of, pcps_of, Facts};
use crate::consent::ledger::Disclosure;
use crate::consent::{self, Policy};
use crate::fhir::search::dates;
use crate::records::RecordKind;
use crate::store::executor::{Cell, Tx};
use crate::store::sql::{Bind, Sql};
use crate::store::StoreError;
use crate::topics::subscription::RecipientSpec;

/// The event, its patient, the resources the notification names (focus first) and
/// the patient's facts. Loaded once per event and transaction ([`EventFacts::memo`],
/// [`EventFacts::load_all`]).
#[derive(Debug, Clone)]
pub struct EventFacts {
    event: String,
    patient: String,
    refs: Vec<String>,
    facts: Facts,
}

/// Facts of events already loaded in this transaction, by `seq` (None: the event is
/// gone or about no patient).
pub type FactsMemo = HashMap<i64, Option<EventFacts>>;

const EVENT_COLUMNS: &str = "event, record_kind, record_id, rtype, rid, patient";

/// An event row's name, patient and the references its notification names: the same
/// focus and context as the notification (`notify::worker::item_of`). None: no patient.
fn head_of(row: &[Cell]) -> Option<(String, String, Vec<String>)> {
    let text = |i: usize| row.get(i).and_then(Cell::text).unwrap_or("").to_owned();
    let patient = row.get(5).and_then(Cell::text)?.to_owned();
    let rtype = RecordKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text(1))
        .map(|k| k.resource_type())
        .unwrap_or("Basic");
    let mut refs = vec![format!("{rtype}/{}", text(2)), patient.clone()];
    let raised_by = format!("{}/{}", text(3), text(4));
    if !refs.contains(&raised_by) {
        refs.push(raised_by);
    }
    Some((text(0), patient, refs))
}

impl EventFacts {
    /// The facts of event `seq`, loaded on first use in `memo`.
    pub async fn memo<'m, T: Tx>(
        tx: &mut T,
        memo: &'m mut FactsMemo,
        seq: i64,
    ) -> Result<Option<&'m EventFacts>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(e) = memo.entry(seq) {
            e.insert(EventFacts::load(tx, seq).await?);
        }
        Ok(memo.get(&seq).and_then(Option::as_ref))
    }

    /// Load into `memo` the facts of every event of `seqs` it does not hold yet. Where
    /// each statement is a round trip (PostgreSQL) that is three statements whatever
    /// the number of events (the events, the patients' consent records, every resource
    /// named, one more per 200 resources past the first 200), not five per event: a claim's transaction was mostly these round trips,
    /// and one claim runs at a time (README, "The claim's round trips"). Elsewhere one
    /// event at a time, as [`EventFacts::memo`] does.
    pub async fn load_all<T: Tx>(
        tx: &mut T,
        memo: &mut FactsMemo,
        seqs: impl IntoIterator<Item = i64>,
    ) -> Result<(), StoreError> {
        let mut missing: Vec<i64> = seqs.into_iter().filter(|s| !memo.contains_key(s)).collect();
        missing.sort_unstable();
        missing.dedup();
        if !tx.round_trips() || missing.len() < 2 {
            for seq in missing {
                let f = EventFacts::load(tx, seq).await?;
                memo.insert(seq, f);
            }
            return Ok(());
        }
        let rows = tx
            .fetch_rows(&Sql::with(
                &format!(
                    "SELECT seq, {EVENT_COLUMNS} FROM domain_events \
                     WHERE seq = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint))"
                ),
                vec![Bind::Text(Value::from(missing.clone()).to_string())],
            ))
            .await?;
        let heads: HashMap<i64, (String, String, Vec<String>)> = rows
            .iter()
            .filter_map(|r| Some((r.first()?.int()?, head_of(&r[1..])?)))
            .collect();
        let patients: Vec<&str> = heads
            .values()
            .map(|(_, p, _)| p.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut consents: HashMap<String, Vec<String>> = HashMap::new();
        if !patients.is_empty() {
            let rows = tx
                .fetch_rows(&Sql::with(
                    "SELECT patient, body FROM records WHERE kind = $1 \
                     AND patient = ANY(ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))",
                    vec![
                        Bind::Text(RecordKind::Consent.as_str().into()),
                        Bind::Text(Value::from(patients.clone()).to_string()),
                    ],
                ))
                .await?;
            for r in rows {
                if let (Some(p), Some(b)) = (r[0].text(), r[1].text()) {
                    consents.entry(p.to_owned()).or_default().push(b.to_owned());
                }
            }
        }
        // Every resource named, and each patient's Patient (its PCPs).
        let mut keys: Vec<(String, String)> = Vec::new();
        let mut seen = HashSet::new();
        for r in heads.values().flat_map(|(_, _, refs)| refs) {
            if let Some((t, id)) = r.split_once('/') {
                if seen.insert(r.as_str()) {
                    keys.push((t.to_owned(), id.to_owned()));
                }
            }
        }
        let bodies: HashMap<String, Value> = tx
            .load_many(&keys)
            .await?
            .into_iter()
            .filter_map(|s| Some((format!("{}/{}", s.rtype, s.id), s.json()?)))
            .collect();
        for seq in missing {
            let facts = heads.get(&seq).map(|(event, patient, refs)| {
                let pcps = match patient.split_once('/') {
                    Some(("Patient", _)) => bodies.get(patient).map(pcps_of).unwrap_or_default(),
                    _ => Vec::new(),
                };
                let bodies_of = consents.get(patient).into_iter().flatten();
                EventFacts {
                    event: event.clone(),
                    patient: patient.clone(),
                    refs: refs.clone(),
                    facts: Facts {
                        consents: consents_of(bodies_of.map(String::as_str)),
                        pcps,
                        items: refs.iter().map(|r| item_of(r, bodies.get(r))).collect(),
                    },
                }
            });
            memo.insert(seq, facts);
        }
        Ok(())
    }

    async fn load<T: Tx>(tx: &mut T, seq: i64) -> Result<Option<EventFacts>, StoreError> {
        let row = tx
            .fetch_rows(&Sql::with(
                &format!("SELECT {EVENT_COLUMNS} FROM domain_events WHERE seq = $1"),
                vec![Bind::Int(seq)],
            ))
            .await?
            .pop();
        let Some((event, patient, refs)) = row.as_deref().and_then(head_of) else {
            return Ok(None);
        };
        let mut facts = super::load_patient(tx, &patient).await?;
        for r in &refs {
            let (t, id) = r.split_once('/').unwrap_or((r, ""));
            let body = tx.load(t, id).await?.and_then(|s| s.json());
            facts.items.push(item_of(r, body.as_ref()));
        }
        Ok(Some(EventFacts {
            event,
            patient,
            refs,
            facts,
        }))
    }

    /// Who, what and why of notifying this event to a subscription.
    pub fn decide(
        &self,
        subscription: &str,
        recipient: Option<&RecipientSpec>,
        webhook_id: &str,
        event_number: Option<i64>,
        now: i64,
        policy: &Policy,
    ) -> Disclosure {
        let purpose = recipient
            .map(|r| r.purpose.clone())
            .unwrap_or_else(|| consent::TREATMENT.to_owned());
        let at = dates::format_instant(now);
        let decision = focus_rule(
            decide(&self.facts, &self.patient, recipient, &purpose, &at, policy),
            &self.refs[0],
        );
        Disclosure {
            patient: self.patient.clone(),
            recipient: recipient.map(|r| r.references.clone()).unwrap_or_default(),
            purpose,
            items: self.refs.clone(),
            decision,
            subscription: subscription.to_owned(),
            webhook_id: webhook_id.to_owned(),
            event_number,
            event: self.event.clone(),
        }
    }
}
