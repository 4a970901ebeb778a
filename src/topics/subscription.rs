//! Reading an R4 Subscription in the Subscriptions Backport IG's profile
//! (`backport-subscription`) against the gateway's topics.
//!
//! [`parse`] takes a resource that already passed the R4 base validation and either
//! returns what the subscriber asked for as a [`SubscriptionSpec`] or every problem
//! found, each an [`Issue`] naming the element (`Subscription.criteria`,
//! `Subscription._criteria.extension[0].valueString`,
//! `Subscription.channel._payload.extension[0].valueCode`). Messages name codes,
//! parameters and elements, never the values a subscriber wrote (references, URLs,
//! header values).
//!
//! # Channels
//!
//! - `rest-hook` ([`Channel::RestHook`]): Backport notification Bundles POSTed to
//!   `channel.endpoint`, with `channel.header` as HTTP headers.
//! - `message` ([`Channel::DaVinciMessage`]): Da Vinci Unsolicited Notifications. The
//!   Da Vinci IG defines no subscription of its own (it pushes message Bundles to
//!   `$process-message`); the Backport IG's FHIR Messaging channel is the R4 channel
//!   type `message` with `endpoint` = the receiver's FHIR base URL. The gateway reads
//!   that channel as a request for Da Vinci message Bundles (MessageHeader.eventCoding
//!   = the topic's Da Vinci event) POSTed to `{endpoint}/$process-message` (an
//!   endpoint already ending in `/$process-message` is used as is). Because Da Vinci
//!   messages carry the focus and the resources it references inside the Bundle, the
//!   content is `full-resource` (the default on this channel; `empty` and `id-only`
//!   are refused), the topic must have a Da Vinci event, and heartbeats are refused
//!   (Da Vinci has no heartbeat message).
//!
//! Other channel types (websocket, email, sms, the Backport's custom channel-type
//! extension) are refused as not supported.

use serde_json::{Map, Value};

use super::catalog::{self, Topic};
use crate::fhir::outcome::{Issue, IssueCode};

mod channel;
mod checks;
#[cfg(test)]
mod error_tests;
pub mod recipient;
#[cfg(test)]
mod tests;

pub use checks::RESERVED_HEADERS;
pub use recipient::RecipientSpec;

pub const FILTER_CRITERIA_URL: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
pub const HEARTBEAT_URL: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";
pub const TIMEOUT_URL: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout";
pub const MAX_COUNT_URL: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count";
pub const PAYLOAD_CONTENT_URL: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
pub const CHANNEL_TYPE_URL: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-channel-type";

/// The notification content levels, least first.
pub const CONTENT_CODES: [&str; 3] = ["empty", "id-only", "full-resource"];

/// One filter: `Encounter?patient=Patient/123` is resource `Encounter`, param
/// `patient`, value `Patient/123`. A subscription's filters are ANDed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    pub resource: String,
    pub param: String,
    /// Percent-decoded; a bare id is made `Type/id` when the filter allows one type.
    pub value: String,
}

/// How notifications reach the subscriber (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Channel {
    /// Backport notification Bundles POSTed to the endpoint.
    RestHook,
    /// Da Vinci notification message Bundles POSTed to `{endpoint}/$process-message`.
    DaVinciMessage,
}

/// What a subscriber asked for, checked.
/// Stored as JSON in the `subscriptions` row (see `store::outbox`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionSpec {
    /// The topic's canonical URL (as the catalog spells it).
    pub topic: String,
    pub filters: Vec<Filter>,
    pub endpoint: String,
    /// `channel.header`, split into name and value (both trimmed).
    pub headers: Vec<(String, String)>,
    pub heartbeat_secs: Option<u32>,
    pub timeout_secs: Option<u32>,
    pub max_count: Option<u32>,
    /// `empty`, `id-only` or `full-resource`.
    pub content: String,
    /// The MIME type asked for, as given (trimmed), e.g. `application/fhir+json`.
    pub payload: String,
    /// Subscription.status as given (requested, active, error, off).
    pub status: String,
    /// Subscription.end, as given.
    pub end: Option<String>,
    pub channel: Channel,
    /// Who receives (recipient module); None: nobody named, an unknown recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientSpec>,
}

impl SubscriptionSpec {
    /// The topic in the catalog.
    pub fn topic_def(&self) -> Option<&'static Topic> {
        catalog::by_url(&self.topic)
    }

    /// Where notifications are POSTed.
    pub fn delivery_url(&self) -> String {
        match self.channel {
            Channel::RestHook => self.endpoint.clone(),
            Channel::DaVinciMessage if self.endpoint.ends_with("/$process-message") => {
                self.endpoint.clone()
            }
            Channel::DaVinciMessage => {
                format!("{}/$process-message", self.endpoint.trim_end_matches('/'))
            }
        }
    }

    /// Whether the payload asks for XML (otherwise JSON).
    pub fn wants_xml(&self) -> bool {
        checks::mime_base(&self.payload) == "application/fhir+xml"
    }
}

/// Check a Subscription resource (already valid R4) against the Backport profile and
/// the gateway's topics; every problem is an issue with its element path.
pub fn parse(resource: &Value) -> Result<SubscriptionSpec, Vec<Issue>> {
    let mut issues = Vec::new();
    let root = match resource.as_object() {
        Some(o) if o.get("resourceType").and_then(Value::as_str) == Some("Subscription") => o,
        _ => {
            let msg = "The body must be a Subscription resource";
            return Err(vec![
                Issue::error(IssueCode::Invalid, msg).at("Subscription")
            ]);
        }
    };
    let topic = criteria(root, &mut issues);
    let mut filters = Vec::new();
    for (i, e) in extensions(root.get("_criteria"), FILTER_CRITERIA_URL) {
        let at = format!("Subscription._criteria.extension[{i}]");
        match e.get("valueString").and_then(Value::as_str) {
            Some(s) => filters.extend(checks::filters(
                s,
                topic,
                &format!("{at}.valueString"),
                &mut issues,
            )),
            None => issues.push(required(
                &at,
                "a filter criteria extension needs valueString",
            )),
        }
    }
    let empty = Map::new();
    let channel_obj = root
        .get("channel")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let c = channel::read(channel_obj, topic, &mut issues);
    let recipient = recipient::read(root, &mut issues);
    let status = text(root, "status");
    if status.is_none() {
        issues.push(required(
            "Subscription.status",
            "a Subscription needs a status",
        ));
    }
    match (
        issues.is_empty(),
        topic,
        c.channel,
        c.endpoint,
        c.payload,
        status,
    ) {
        (true, Some(t), Some(channel), Some(endpoint), Some(payload), Some(status)) => {
            Ok(SubscriptionSpec {
                topic: t.url.to_owned(),
                filters,
                endpoint,
                headers: c.headers,
                heartbeat_secs: c.heartbeat_secs,
                timeout_secs: c.timeout_secs,
                max_count: c.max_count,
                content: c.content,
                payload,
                status,
                end: text(root, "end"),
                channel,
                recipient,
            })
        }
        _ => Err(issues),
    }
}

fn required(at: &str, msg: &str) -> Issue {
    Issue::error(IssueCode::Required, msg).at(at)
}

/// A string element, trimmed, if present and not blank.
fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    let s = o.get(key)?.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The extensions with `url` in an element's `extension` list (or the `extension` of
/// a primitive's `_element`), with their index in that list.
fn extensions<'a>(
    holder: Option<&'a Value>,
    url: &'a str,
) -> impl Iterator<Item = (usize, &'a Value)> + 'a {
    let list = match holder {
        Some(Value::Array(a)) => Some(a),
        Some(Value::Object(o)) => o.get("extension").and_then(Value::as_array),
        _ => None,
    };
    list.into_iter()
        .flatten()
        .enumerate()
        .filter(move |(_, e)| e.get("url").and_then(Value::as_str) == Some(url))
}

fn criteria(root: &Map<String, Value>, issues: &mut Vec<Issue>) -> Option<&'static Topic> {
    let Some(c) = text(root, "criteria") else {
        issues.push(required(
            "Subscription.criteria",
            "criteria must be the canonical URL of a topic",
        ));
        return None;
    };
    let topic = catalog::by_url(&c);
    if topic.is_none() {
        let known: Vec<&str> = catalog::all().iter().map(|t| t.url).collect();
        let msg = format!(
            "criteria is not a topic of this server: topic-based subscriptions name a topic's canonical URL, one of {}",
            known.join(", ")
        );
        issues.push(Issue::error(IssueCode::Value, msg).at("Subscription.criteria"));
    }
    topic
}
