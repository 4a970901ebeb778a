//! What `POST /fhir/$process-message` accepts: a FHIR message Bundle (Da Vinci or
//! not), read into the resources to store.

use std::collections::HashMap;

use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::primitives;

use super::links::references_mut;

#[cfg(test)]
mod tests;

/// The resource types the gateway stores, in the order a message's resources are
/// stored so that references resolve: Endpoint, Organization, Practitioner and
/// PractitionerRole before the Patient (its managingOrganization, generalPractitioner),
/// then the Encounter before the ServiceRequest, the ServiceRequest before its Task,
/// and CarePlan and Consent last.
pub const STORED_TYPES: [&str; 10] = [
    "Endpoint",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "Encounter",
    "ServiceRequest",
    "Task",
    "CarePlan",
    "Consent",
];

/// A message the gateway can process.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The MessageHeader's id (what a response's `response.identifier` names).
    pub message_id: String,
    /// `MessageHeader.eventCoding`: (system, code).
    pub event: (String, String),
    /// `MessageHeader.source.endpoint`.
    pub source_endpoint: Option<String>,
    /// The entries of a type in [`STORED_TYPES`], in that order (message order within
    /// a type). References to another such entry by its fullUrl (`urn:uuid:…`, an
    /// absolute URL) are rewritten to `Type/id`, where the gateway will store it.
    pub resources: Vec<Value>,
    /// `Type/id` of the other entries (after the MessageHeader): not stored.
    pub skipped: Vec<String>,
}

/// The key a processed message is kept under (in the receipt table HL7 v2 messages
/// use): its sender (`MessageHeader.source.endpoint`; a message without one shares
/// the key space of all such senders) and its id (`MessageHeader.id`, the id a
/// response names in `response.identifier`). The prefix keeps it apart from HL7 v2
/// senders (`MSH-3|MSH-4`).
pub fn receipt_key(m: &InboundMessage) -> (String, String) {
    let source = m.source_endpoint.as_deref().unwrap_or("");
    (format!("fhir-message {source}"), m.message_id.clone())
}

/// One entry as read: fullUrl, type and id (each None when missing or invalid).
struct Entry<'a> {
    full_url: Option<&'a str>,
    key: Option<(&'a str, &'a str)>,
    resource: Option<&'a Value>,
}

/// Reads a message Bundle. Checked, each problem an issue naming its element:
/// `Bundle.type` is `message`; `Bundle.entry` is not empty; each entry has a fullUrl
/// (absolute, or `urn:`; a RESTful one ending in its resource's `Type/id`) and a
/// resource with a resourceType and a valid id, no two with the same `Type/id`;
/// `entry[0]` is a MessageHeader with `eventCoding.system` and `.code` and a `focus`
/// whose every reference resolves to an entry (by fullUrl, or relative `Type/id`).
/// Entries of types the gateway does not store are listed in `skipped`, not refused.
/// The resources' contents are not validated here: storing them does that.
pub fn parse_message(bundle: &Value) -> Result<InboundMessage, Vec<Issue>> {
    let mut issues = Vec::new();
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        let issue = Issue::error(IssueCode::Structure, "The body must be a Bundle");
        return Err(vec![issue.at("Bundle")]);
    }
    if bundle.get("type").and_then(Value::as_str) != Some("message") {
        let msg = "A message is a Bundle of type message";
        issues.push(Issue::error(IssueCode::Value, msg).at("Bundle.type"));
    }
    let Some(list) = bundle
        .get("entry")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        let msg = "A message has entries, the MessageHeader first";
        issues.push(Issue::error(IssueCode::Required, msg).at("Bundle.entry"));
        return Err(issues);
    };
    let entries: Vec<Entry> = (list.iter().enumerate())
        .map(|(i, e)| entry(i, e, &mut issues))
        .collect();
    let index = Index::new(&entries, &mut issues);
    let header = header(&entries, &index, &mut issues);
    match header {
        Some(h) if issues.is_empty() => Ok(stored(&entries, &index, h)),
        _ => Err(issues),
    }
}

/// Where each fullUrl and each `Type/id` is among the entries (the first, when
/// several share one: an issue each).
struct Index<'a> {
    by_url: HashMap<&'a str, usize>,
    by_key: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Index<'a> {
    fn new(entries: &[Entry<'a>], issues: &mut Vec<Issue>) -> Self {
        let mut index = Index {
            by_url: HashMap::new(),
            by_key: HashMap::new(),
        };
        for (i, e) in entries.iter().enumerate() {
            if let Some(url) = e.full_url {
                if index.by_url.insert(url, i).is_some() {
                    let msg = "Another entry has the same fullUrl";
                    issues.push(Issue::error(IssueCode::Duplicate, msg).at(at(i, "fullUrl")));
                }
            }
            if let Some(key) = e.key {
                if index.by_key.insert(key, i).is_some() {
                    let msg = "Another entry has the same resource type and id";
                    issues.push(Issue::error(IssueCode::Duplicate, msg).at(at(i, "resource.id")));
                }
            }
        }
        index
    }

    /// The entry a reference names: the one with that fullUrl, or for a relative
    /// `Type/id` (a `/_history/n` suffix dropped) the one holding that resource.
    fn resolve(&self, reference: &str) -> Option<usize> {
        if let Some(&i) = self.by_url.get(reference) {
            return Some(i);
        }
        if reference.contains(':') || reference.starts_with('#') {
            return None;
        }
        let plain = reference.split("/_history/").next().unwrap_or(reference);
        self.by_key.get(&plain.split_once('/')?).copied()
    }
}

fn at(i: usize, path: &str) -> String {
    format!("Bundle.entry[{i}].{path}")
}

fn entry<'a>(i: usize, e: &'a Value, issues: &mut Vec<Issue>) -> Entry<'a> {
    let mut missing = |path: &str, msg: &str| {
        issues.push(Issue::error(IssueCode::Required, msg).at(at(i, path)));
    };
    let full_url = e
        .get("fullUrl")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    if full_url.is_none() {
        missing("fullUrl", "Every entry of a message needs a fullUrl");
    }
    let resource = e.get("resource").filter(|r| r.is_object());
    let Some(r) = resource else {
        missing("resource", "Every entry of a message carries a resource");
        return Entry {
            full_url,
            key: None,
            resource,
        };
    };
    let rtype = r
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    if rtype.is_none() {
        missing("resource.resourceType", "The resource has no resourceType");
    }
    let id = r.get("id").and_then(Value::as_str);
    match id {
        None => missing(
            "resource.id",
            "The resource needs an id (it is stored by it)",
        ),
        Some(id) if !primitives::is_valid_id(id) => {
            let msg = "id must be 1-64 characters of A-Z a-z 0-9 - .";
            issues.push(Issue::error(IssueCode::Value, msg).at(at(i, "resource.id")));
        }
        Some(_) => {}
    }
    let key = rtype.zip(id.filter(|id| primitives::is_valid_id(id)));
    if let (Some(url), Some((t, id))) = (full_url, key) {
        let restful = url.starts_with("http://") || url.starts_with("https://");
        let ok = url.starts_with("urn:") || (restful && url.ends_with(&format!("/{t}/{id}")));
        if !ok {
            let msg = "fullUrl must be urn:uuid:…, urn:oid:… or an absolute URL ending in the resource's Type/id";
            issues.push(Issue::error(IssueCode::Value, msg).at(at(i, "fullUrl")));
        }
    }
    Entry {
        full_url,
        key,
        resource,
    }
}

/// What the MessageHeader gives: (id, (system, code), source endpoint).
type Header = (String, (String, String), Option<String>);

/// The MessageHeader's checks; what it gives when they hold.
fn header(entries: &[Entry], index: &Index, issues: &mut Vec<Issue>) -> Option<Header> {
    let h = entries.first()?.resource?;
    if h.get("resourceType").and_then(Value::as_str)? != "MessageHeader" {
        let msg = "The first entry of a message must be its MessageHeader";
        issues.push(Issue::error(IssueCode::Invalid, msg).at(at(0, "resource")));
        return None;
    }
    let path = |p: &str| at(0, &format!("resource.{p}"));
    let mut problem = |code, p: &str, msg: &str| issues.push(Issue::error(code, msg).at(path(p)));
    let event = match h.get("eventCoding") {
        None => {
            let msg = "The MessageHeader needs an eventCoding (eventUri is not accepted)";
            problem(IssueCode::Required, "eventCoding", msg);
            None
        }
        Some(Value::Object(coding)) => {
            let mut part = |key: &str| {
                let value = coding
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty());
                if value.is_none() {
                    let msg = format!("eventCoding needs a {key}");
                    problem(IssueCode::Required, &format!("eventCoding.{key}"), &msg);
                }
                value
            };
            let system = part("system");
            system.zip(part("code"))
        }
        Some(_) => {
            problem(
                IssueCode::Structure,
                "eventCoding",
                "eventCoding must be a Coding",
            );
            None
        }
    };
    match h
        .get("focus")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty())
    {
        None => {
            let msg = "The MessageHeader needs a focus: the resource the message is about";
            problem(IssueCode::Required, "focus", msg);
        }
        Some(list) => {
            for (j, f) in list.iter().enumerate() {
                let reference = f.get("reference").and_then(Value::as_str);
                if reference.and_then(|r| index.resolve(r)).is_none() {
                    let msg = "focus.reference must name an entry of the Bundle";
                    problem(IssueCode::Value, &format!("focus[{j}].reference"), msg);
                }
            }
        }
    }
    let source = h
        .get("source")
        .and_then(|s| s.get("endpoint"))
        .and_then(Value::as_str);
    let (_, id) = entries.first()?.key?;
    let (system, code) = event?;
    Some((
        id.to_owned(),
        (system.to_owned(), code.to_owned()),
        source.map(str::to_owned),
    ))
}

fn stored(entries: &[Entry], index: &Index, header: Header) -> InboundMessage {
    let (message_id, event, source_endpoint) = header;
    let rank = |t: &str| STORED_TYPES.iter().position(|s| *s == t);
    let mut kept: Vec<(usize, Value)> = Vec::new();
    let mut skipped = Vec::new();
    for e in entries.iter().skip(1) {
        let (Some(r), Some((t, id))) = (e.resource, e.key) else {
            continue;
        };
        match rank(t) {
            Some(n) => {
                let mut body = r.clone();
                references_mut(&mut body, &mut |reference: &mut String| {
                    let target = index.by_url.get(reference.as_str()).map(|&i| &entries[i]);
                    if let Some((t, id)) =
                        target.and_then(|o| o.key.filter(|k| rank(k.0).is_some()))
                    {
                        *reference = format!("{t}/{id}");
                    }
                });
                kept.push((n, body));
            }
            None => skipped.push(format!("{t}/{id}")),
        }
    }
    kept.sort_by_key(|(n, _)| *n); // stable: message order within a type
    let resources = kept.into_iter().map(|(_, body)| body).collect();
    InboundMessage {
        message_id,
        event,
        source_endpoint,
        resources,
        skipped,
    }
}
