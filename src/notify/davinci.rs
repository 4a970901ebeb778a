//! Da Vinci Unsolicited Notifications (STU 1.1): the message Bundles the gateway sends
//! on the `message` channel, and what its own `$process-message` accepts.
//!
//! Sending ([`message_bundle`]) follows the IG's profiles: the Bundle
//! (`notifications-bundle`: `id`, `timestamp`, type `message`, at least two entries,
//! no request/response/search) starts with a MessageHeader (`notifications-messageheader`,
//! plus `admit-`, `discharge-` or `transfer-notification-messageheader` for those events:
//! `id`, `eventCoding`, `source`, `destination.endpoint`, `focus` on an entry). The
//! IG's references from the MessageHeader and the focus are `bundled`: `sender` and
//! `responsible` are set only when their body travels with the event, and the entries
//! are the focus and every resource of the event linked to it or to the MessageHeader
//! by references either way (the IG's "traversal path"). Resource bodies go as they
//! are; their fullUrls are `{base}/{Type}/{id}`, so their relative references resolve
//! to each other. The MessageHeader, which the gateway does not store, has a
//! `urn:uuid:` fullUrl; its references are absolute, equal to the entries' fullUrls.
//!
//! Receiving ([`parse_message`], in `inbound`) reads any FHIR message Bundle, Da Vinci
//! or not, into the resources to store; [`response_bundle`] is the answer.

use serde_json::{json, Value};
use uuid::Uuid;

use super::bundle::{self, split_ref, EventItem};
use crate::fhir::primitives;
use crate::topics::catalog::DAVINCI_EVENT_SYSTEM;
use links::{local_key, receiver, Pool};

mod inbound;
mod links;
mod response;
#[cfg(test)]
mod samples;
#[cfg(test)]
mod tests;

pub use inbound::{parse_message, receipt_key, InboundMessage, STORED_TYPES};
pub use response::{response_bundle, ResponseCode};

/// `meta.profile` of a notification Bundle.
pub const BUNDLE_PROFILE: &str =
    "http://hl7.org/fhir/us/davinci-alerts/StructureDefinition/notifications-bundle";
/// `meta.profile` of every notification MessageHeader.
pub const HEADER_PROFILE: &str =
    "http://hl7.org/fhir/us/davinci-alerts/StructureDefinition/notifications-messageheader";
const PROFILE_BASE: &str = "http://hl7.org/fhir/us/davinci-alerts/StructureDefinition/";

/// The codes of the Da Vinci `notification-event` code system, with their display.
#[rustfmt::skip]
const EVENTS: &[(&str, &str)] = &[
    ("notification-refill-request", "Prescription Refill Request Notification"),
    ("notification-progress-update", "Progress Update Notification"),
    ("notification-appointment-reminder", "Appointment Reminder Notification"),
    ("notification-phone-consult", "Phone Consult Notification"),
    ("notification-summary-report", "Summary Report Notification"),
    ("notification-admit", "Admit Notification"),
    ("notification-discharge", "Discharge Notification"),
    ("notification-transfer", "Transfer Notification"),
    ("notification-referral", "Referral Notification"),
    ("notification-tx-change", "Treatment Change Notification"),
    ("notification-lab-report", "Laboratory Report Notification"),
    ("notification-tx-issue", "Treatment Issue Notification"),
    ("notification-ordered-device", "Ordered Device Notification"),
    ("notification-prior-auth-notice", "Prior Authorization Notice Notification"),
    ("notification-new-condition", "New Condition Notification"),
    ("notification-care-team-change", "Care Team Change Notification"),
    ("notification-coverage-change", "Coverage Change Notification"),
    ("notification-social-determinants-change", "Social Determinants Change Notification"),
    ("notification-public-health", "Public Health Notification"),
    ("notification-outpatient-visit", "Outpatient Visit Notification"),
    ("notification-vitals", "Vital Statistics Notification"),
    ("notification-pharmacy", "Pharmacy Notification"),
    ("notification-workers-comp", "Workers Comp Notification"),
];

/// The events whose MessageHeader profile (`{PROFILE_BASE}{name}-notification-messageheader`)
/// requires an Encounter focus (`adt-notification-encounter`: its Patient bundled).
const ENCOUNTER_EVENTS: &[(&str, &str)] = &[
    ("notification-admit", "admit"),
    ("notification-discharge", "discharge"),
    ("notification-transfer", "transfer"),
];

/// What R4 allows `sender`, `responsible` and `destination.receiver` to reference.
const PARTY_TYPES: &[&str] = &["Organization", "Practitioner", "PractitionerRole"];

/// Who sends a message, to whom, about what. References are `Type/id` (or absolute
/// on `base`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageContext<'a> {
    /// This gateway's FHIR base (`…/fhir`): `source.endpoint` and the entries' fullUrls.
    pub base: &'a str,
    /// A code of [`DAVINCI_EVENT_SYSTEM`] (`notification-discharge`).
    pub event_code: &'a str,
    /// The sending organization (or practitioner), e.g. the Encounter's serviceProvider.
    pub sender: Option<&'a str>,
    /// The party responsible for the event.
    pub responsible: Option<&'a str>,
    /// The receiver's URL (`destination.endpoint`).
    pub destination_endpoint: &'a str,
    /// The receiving party (`destination.receiver`), e.g. the patient's PCP; need not
    /// travel in the Bundle.
    pub destination_receiver: Option<&'a str>,
}

/// A Da Vinci notification message Bundle for one event (see the module doc). Err,
/// saying why, when the IG cannot be met: an unknown event code, a `destination_endpoint`
/// that is not a URL, no focus or no focus body among `event.resources`, and for admit,
/// discharge and transfer a focus that is not an Encounter or whose subject Patient's
/// body is not among them. A `sender` or `responsible` that is not an Organization,
/// Practitioner or PractitionerRole, or whose body is not among `event.resources`, is
/// left out (the IG requires them bundled); so is a receiver of another type.
pub fn message_bundle(ctx: &MessageContext, event: &EventItem) -> Result<Value, String> {
    let base = bundle::trim(ctx.base);
    let display = EVENTS
        .iter()
        .find(|(c, _)| *c == ctx.event_code)
        .map(|(_, d)| *d)
        .ok_or("the event code is not in the Da Vinci notification-event code system")?;
    let url = |u: &str| primitives::check("url", &json!(u)).is_ok();
    if !url(base) || !url(ctx.destination_endpoint) {
        return Err("the base and the destination endpoint must be URLs".into());
    }
    let pool = Pool::new(base, &event.resources);
    let (ft, fid) = (event.focus.as_deref())
        .and_then(split_ref)
        .ok_or("the event has no focus (Type/id)")?;
    let focus = pool
        .find(ft, fid)
        .ok_or("the focus resource's body is not in the event")?;
    let adt_profile = ENCOUNTER_EVENTS.iter().find(|(c, _)| *c == ctx.event_code);
    if let Some((code, _)) = adt_profile {
        if ft != "Encounter" {
            return Err(format!("a {code} message's focus must be an Encounter"));
        }
        let subject = pool.bodies[focus]
            .get("subject")
            .and_then(|s| s.get("reference"));
        let patient = subject
            .and_then(Value::as_str)
            .and_then(|r| local_key(r, base));
        if !patient.is_some_and(|(t, id)| t == "Patient" && pool.find(t, id).is_some()) {
            return Err("the Encounter's subject Patient must travel with the event".into());
        }
    }
    let bundled_party = |r: Option<&str>| {
        let (t, id) = r.and_then(|r| local_key(r, base))?;
        PARTY_TYPES.contains(&t).then(|| pool.find(t, id)).flatten()
    };
    let sender = bundled_party(ctx.sender);
    let responsible = bundled_party(ctx.responsible);
    let chosen = pool.linked(focus, sender.into_iter().chain(responsible));

    let header_id = Uuid::new_v4().to_string();
    let mut profiles = vec![HEADER_PROFILE.to_owned()];
    profiles.extend(adt_profile.map(|(_, name)| header_profile(name)));
    let mut header = json!({"resourceType": "MessageHeader", "id": header_id});
    header["meta"] = json!({ "profile": profiles });
    header["eventCoding"] =
        json!({"system": DAVINCI_EVENT_SYSTEM, "code": ctx.event_code, "display": display});
    let mut destination = json!({"endpoint": ctx.destination_endpoint});
    if let Some(r) = ctx.destination_receiver.and_then(|r| receiver(r, base)) {
        destination["receiver"] = json!({ "reference": r });
    }
    header["destination"] = json!([destination]);
    if let Some(i) = sender {
        header["sender"] = json!({"reference": pool.full_url(i)});
    }
    header["source"] = json!({ "endpoint": base });
    if let Some(i) = responsible {
        header["responsible"] = json!({"reference": pool.full_url(i)});
    }
    header["focus"] = json!([{"reference": pool.full_url(focus)}]);

    let mut entries = vec![json!({"fullUrl": format!("urn:uuid:{header_id}"), "resource": header})];
    entries.extend(
        chosen
            .into_iter()
            .map(|i| json!({"fullUrl": pool.full_url(i), "resource": pool.bodies[i]})),
    );
    Ok(json!({
        "resourceType": "Bundle",
        "id": Uuid::new_v4().to_string(),
        "meta": {"profile": [BUNDLE_PROFILE]},
        "type": "message",
        "timestamp": bundle::now(),
        "entry": entries,
    }))
}

/// The IG's MessageHeader profile for `admit`, `discharge` or `transfer`.
fn header_profile(name: &str) -> String {
    format!("{PROFILE_BASE}{name}-notification-messageheader")
}
