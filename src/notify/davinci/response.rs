//! The response message to an inbound message.

use serde_json::{json, Value};
use uuid::Uuid;

use super::InboundMessage;
use crate::fhir::primitives;
use crate::notify::bundle;

#[cfg(test)]
mod tests;

/// `MessageHeader.response.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCode {
    Ok,
    TransientError,
    FatalError,
}

impl ResponseCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::TransientError => "transient-error",
            Self::FatalError => "fatal-error",
        }
    }
}

/// The response message to an inbound message: a MessageHeader with the inbound
/// event, `destination` = the inbound `source.endpoint` (when it is a URL), `source` =
/// `base`, `response.identifier` = the inbound message id, `response.code`, and, when
/// `outcome` is an OperationOutcome, `response.details` referencing it as the second
/// entry (with an id of its own). Both entries have `urn:uuid:` fullUrls; no Da Vinci
/// profile is claimed (it forbids `response`).
pub fn response_bundle(
    base: &str,
    inbound: &InboundMessage,
    code: ResponseCode,
    outcome: Option<&Value>,
) -> Value {
    let header_id = Uuid::new_v4().to_string();
    let outcome = outcome
        .filter(|o| o["resourceType"] == "OperationOutcome")
        .map(|o| {
            let mut o = o.clone();
            o["id"] = json!(Uuid::new_v4().to_string());
            o
        });
    let (system, event_code) = &inbound.event;
    let mut header = json!({"resourceType": "MessageHeader", "id": header_id});
    header["eventCoding"] = json!({"system": system, "code": event_code});
    let source = inbound.source_endpoint.as_deref();
    if let Some(endpoint) = source.filter(|e| primitives::check("url", &json!(e)).is_ok()) {
        header["destination"] = json!([{ "endpoint": endpoint }]);
    }
    header["source"] = json!({"endpoint": bundle::trim(base)});
    let mut response = json!({"identifier": inbound.message_id, "code": code.as_str()});
    let mut entries = Vec::new();
    if let Some(o) = outcome {
        let url = format!("urn:uuid:{}", o["id"].as_str().unwrap_or_default());
        response["details"] = json!({ "reference": url });
        entries.push(json!({"fullUrl": url, "resource": o}));
    }
    header["response"] = response;
    entries.insert(
        0,
        json!({"fullUrl": format!("urn:uuid:{header_id}"), "resource": header}),
    );
    json!({
        "resourceType": "Bundle",
        "id": Uuid::new_v4().to_string(),
        "type": "message",
        "timestamp": bundle::now(),
        "entry": entries,
    })
}
