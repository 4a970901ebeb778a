//! The gateway's canonical SubscriptionTopics.
//!
//! A topic is a kind of coordination event a subscriber can ask to hear about. Each is
//! triggered by domain events (`records::EventKind`, by name), focuses on one resource
//! type (the resource the record is keyed by) and allows a fixed set of filters.
//!
//! # How a filter is evaluated
//!
//! A subscription's filter `param=value` matches an event when `value` equals one of
//! [`filter_values`]`(topic, param, record)` for the record the event is about (the
//! record as it is after the change). Several filters are ANDed. Values are the
//! references as the record holds them (`Patient/123`); references without a literal
//! `reference` (display only) give no value, so they match nothing.
//!
//! | param | on | values |
//! |---|---|---|
//! | `patient` | every topic | the record's patient (Encounter.subject, ServiceRequest.subject, CarePlan.subject, Consent.patient) |
//! | `practitioner` | encounter topics | every attending (participant `ATND`) and the PCP (participant v2-0443 `PP`) |
//! | `organization` | encounter topics | serviceProvider, hospitalization.origin and .destination, those that reference an Organization |
//! | `location` | encounter topics | every Encounter.location.location |
//! | `requester` | referral topics | the referrer (ServiceRequest.requester) |
//! | `performer` | referral topics | every receiver (ServiceRequest.performer) |
//! | `recipient`, `owner`, `requester` | handoff-escalation | the party escalated or returned to, the receiver, the sender |
//!
//! A record of another kind than the topic's focus has no values. The handoff topic's
//! events are not about a record: their values come from the handoff
//! (`handoffs::Handoff::filter_values`).

use crate::records::{Record, Transition};

mod basic;
mod data;
#[cfg(test)]
mod tests;

pub use basic::as_basic;

/// The canonical base of the gateway's topics.
pub const TOPIC_BASE: &str = "http://handoff.example.org/fhir/SubscriptionTopic/";
/// The code system of the gateway's domain events (codes = `EventKind::as_str()`).
pub const EVENT_SYSTEM: &str = "http://handoff.example.org/fhir/CodeSystem/domain-event";
/// The Da Vinci Unsolicited Notifications event code system.
pub const DAVINCI_EVENT_SYSTEM: &str =
    "http://hl7.org/fhir/us/davinci-alerts/CodeSystem/notification-event";

/// A filter a topic allows (R5 `SubscriptionTopic.canFilterBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterDef {
    /// The filter parameter a subscription names: `Encounter?practitioner=…`.
    pub param: &'static str,
    /// The resource type the filter applies to (the topic's focus).
    pub resource: &'static str,
    /// What it matches, in words (how it is evaluated: see the module doc).
    pub description: &'static str,
    /// The R4 search parameter on `resource` it corresponds to (`participant`).
    pub search: &'static str,
    /// That search parameter's canonical, when the filter is evaluated exactly as it
    /// (None: the filter is the topic's own key, wider or narrower than `search`).
    pub definition: Option<&'static str>,
    /// The resource types a value may reference (`Patient/123`); a bare id is read
    /// as a reference to the only one, when there is only one.
    pub targets: &'static [&'static str],
}

/// A SubscriptionTopic of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// The topic's code, also the id of its `Basic` form: `encounter-end`.
    pub code: &'static str,
    /// Its canonical URL: [`TOPIC_BASE`] + code.
    pub url: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The focus resource type: Encounter, ServiceRequest, CarePlan or Consent.
    pub resource: &'static str,
    /// The domain events (`EventKind::as_str()`) that trigger a notification.
    pub events: &'static [&'static str],
    /// The domain events that retract an earlier notification of this topic (an
    /// admission or discharge cancelled, HL7 v2 A11 / A13), so that subscribers who
    /// heard of the event hear of its retraction ([`for_event`] includes them).
    pub retractions: &'static [&'static str],
    /// The filters a subscription may use.
    pub filters: &'static [FilterDef],
    /// What travels with a notification besides the focus, in words.
    pub context: &'static [&'static str],
    /// R4 `_include` values for the resources that travel (notification shape).
    pub includes: &'static [&'static str],
    /// R4 `_revinclude` values for the resources that travel.
    pub rev_includes: &'static [&'static str],
    /// The Da Vinci notification event code (MessageHeader.eventCoding), when the
    /// event has one; only such topics can be delivered as Da Vinci messages.
    pub davinci_event: Option<&'static str>,
}

impl Topic {
    /// The filter `param` on `resource`, if the topic allows it.
    pub fn filter(&self, resource: &str, param: &str) -> Option<&'static FilterDef> {
        self.filters
            .iter()
            .find(|f| f.resource == resource && f.param == param)
    }

    /// The filters in subscription syntax, for messages: `Encounter?patient, …`.
    pub fn allowed_filters(&self) -> String {
        let names: Vec<String> = self
            .filters
            .iter()
            .map(|f| format!("{}?{}", f.resource, f.param))
            .collect();
        names.join(", ")
    }
}

/// Every topic, in a stable order.
pub fn all() -> &'static [Topic] {
    data::TOPICS
}

/// The topic with this canonical URL. A version suffix (`url|1.0`) is ignored: the
/// gateway serves one version of each topic.
pub fn by_url(url: &str) -> Option<&'static Topic> {
    let url = url.split('|').next().unwrap_or(url);
    all().iter().find(|t| t.url == url)
}

/// The topic with this code (`encounter-end`).
pub fn by_code(code: &str) -> Option<&'static Topic> {
    all().iter().find(|t| t.code == code)
}

/// The topics a domain event (by `EventKind::as_str()` name) triggers or retracts.
pub fn for_event(event: &str) -> Vec<&'static Topic> {
    all()
        .iter()
        .filter(|t| t.events.contains(&event) || t.retractions.contains(&event))
        .collect()
}

/// The values a filter parameter has for a record (the subscription's filter matches
/// when its value equals one of them). See the module doc for each parameter.
pub fn filter_values(topic: &Topic, param: &str, record: &Record) -> Vec<String> {
    if record.kind().resource_type() != topic.resource
        || !topic.filters.iter().any(|f| f.param == param)
    {
        return Vec::new();
    }
    let refs: Vec<Option<&str>> = match (param, record) {
        ("patient", r) => vec![r.patient()],
        ("practitioner", Record::Transition(t)) => practitioners(t),
        ("organization", Record::Transition(t)) => of_type(
            &[&t.service_provider, &t.origin, &t.destination],
            "Organization",
        ),
        ("location", Record::Transition(t)) => reference_list(&t.locations),
        ("requester", Record::Referral(r)) => {
            vec![r.referrer.as_ref().and_then(|p| p.reference.as_deref())]
        }
        ("performer", Record::Referral(r)) => reference_list(&r.receivers),
        _ => Vec::new(),
    };
    let mut values: Vec<String> = Vec::new();
    for r in refs.into_iter().flatten() {
        if !values.iter().any(|v| v == r) {
            values.push(r.to_owned());
        }
    }
    values
}

fn practitioners(t: &Transition) -> Vec<Option<&str>> {
    let mut refs = reference_list(&t.attending);
    refs.push(t.pcp.as_ref().and_then(|p| p.reference.as_deref()));
    refs
}

fn reference_list(parties: &[crate::records::types::Party]) -> Vec<Option<&str>> {
    parties.iter().map(|p| p.reference.as_deref()).collect()
}

fn of_type<'a>(
    parties: &[&'a Option<crate::records::types::Party>],
    rtype: &str,
) -> Vec<Option<&'a str>> {
    parties
        .iter()
        .map(|p| p.as_ref().and_then(|p| p.reference.as_deref()))
        .filter(|r| r.is_some_and(|r| crate::fhir::validate::reference_type(r) == Some(rtype)))
        .collect()
}
