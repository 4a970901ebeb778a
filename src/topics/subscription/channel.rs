//! `Subscription.channel`: its type, endpoint, payload and content level, the
//! Backport number extensions and the headers, with the Da Vinci message channel's
//! own rules (see the parent module's doc).

use serde_json::{Map, Value};

use super::{checks, extensions, required, text, Channel, Topic};
use super::{
    CHANNEL_TYPE_URL, CONTENT_CODES, HEARTBEAT_URL, MAX_COUNT_URL, PAYLOAD_CONTENT_URL, TIMEOUT_URL,
};
use crate::fhir::outcome::{Issue, IssueCode};

/// What the channel says, each part None when absent or unusable (an issue says why).
pub(super) struct Parts {
    pub channel: Option<Channel>,
    pub endpoint: Option<String>,
    pub payload: Option<String>,
    pub content: String,
    pub heartbeat_secs: Option<u32>,
    pub timeout_secs: Option<u32>,
    pub max_count: Option<u32>,
    pub headers: Vec<(String, String)>,
}

pub(super) fn read(
    channel: &Map<String, Value>,
    topic: Option<&Topic>,
    issues: &mut Vec<Issue>,
) -> Parts {
    let kind = channel_type(channel, topic, issues);
    let endpoint = checked(channel, "endpoint", "an endpoint", checks::endpoint, issues);
    let payload = checked(
        channel,
        "payload",
        "a payload MIME type (application/fhir+json or application/fhir+xml)",
        checks::payload,
        issues,
    );
    let content = content(channel, kind, issues);
    let [heartbeat_secs, timeout_secs, max_count] = [
        (HEARTBEAT_URL, "valueUnsignedInt"),
        (TIMEOUT_URL, "valueUnsignedInt"),
        (MAX_COUNT_URL, "valuePositiveInt"),
    ]
    .map(|(url, key)| checks::positive(channel, url, key, issues));
    if kind == Some(Channel::DaVinciMessage) {
        if let Some((i, _)) = extensions(channel.get("extension"), HEARTBEAT_URL).next() {
            let msg = "the Da Vinci message channel has no heartbeat message: remove backport-heartbeat-period";
            issues.push(
                Issue::error(IssueCode::NotSupported, msg)
                    .at(format!("Subscription.channel.extension[{i}]")),
            );
        }
    }
    let mut headers = Vec::new();
    let listed = channel
        .get("header")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (i, h) in listed.enumerate() {
        let at = format!("Subscription.channel.header[{i}]");
        headers.extend(checks::header(h.as_str().unwrap_or(""), &at, issues));
    }
    Parts {
        channel: kind,
        endpoint,
        payload,
        content,
        heartbeat_secs,
        timeout_secs,
        max_count,
        headers,
    }
}

/// A required string element of the channel, checked by `check` when present.
fn checked(
    channel: &Map<String, Value>,
    key: &str,
    what: &str,
    check: fn(&str, &str, &mut Vec<Issue>),
    issues: &mut Vec<Issue>,
) -> Option<String> {
    let at = format!("Subscription.channel.{key}");
    let value = text(channel, key);
    match &value {
        Some(v) => check(v, &at, issues),
        None => issues.push(required(&at, &format!("the channel needs {what}"))),
    }
    value
}

fn channel_type(
    channel: &Map<String, Value>,
    topic: Option<&Topic>,
    issues: &mut Vec<Issue>,
) -> Option<Channel> {
    for (i, _) in extensions(channel.get("_type"), CHANNEL_TYPE_URL) {
        let msg = "custom channel types are not supported: use rest-hook, or message for Da Vinci notifications";
        issues.push(
            Issue::error(IssueCode::NotSupported, msg)
                .at(format!("Subscription.channel._type.extension[{i}]")),
        );
    }
    let at = "Subscription.channel.type";
    let chosen = match text(channel, "type").as_deref() {
        Some("rest-hook") => Channel::RestHook,
        Some("message") => Channel::DaVinciMessage,
        Some(other) => {
            let msg = format!("channel type '{other}' is not supported: use rest-hook, or message for Da Vinci notifications");
            issues.push(Issue::error(IssueCode::NotSupported, msg).at(at));
            return None;
        }
        None => {
            issues.push(required(
                at,
                "the channel needs a type (rest-hook or message)",
            ));
            return None;
        }
    };
    if let (Channel::DaVinciMessage, Some(t)) = (chosen, topic) {
        if t.davinci_event.is_none() {
            let msg = format!("topic {} has no Da Vinci notification event, so it cannot be delivered as a Da Vinci message: use rest-hook", t.code);
            issues.push(Issue::error(IssueCode::NotSupported, msg).at(at));
        }
    }
    Some(chosen)
}

/// The content level: the `backport-payload-content` extension on `channel._payload`;
/// without one, `id-only` (rest-hook) or `full-resource` (Da Vinci message).
fn content(channel: &Map<String, Value>, kind: Option<Channel>, issues: &mut Vec<Issue>) -> String {
    let davinci = kind == Some(Channel::DaVinciMessage);
    let mut found = None;
    for (n, (i, e)) in extensions(channel.get("_payload"), PAYLOAD_CONTENT_URL).enumerate() {
        let at = format!("Subscription.channel._payload.extension[{i}]");
        if n > 0 {
            issues.push(
                Issue::error(
                    IssueCode::Structure,
                    "only one backport-payload-content extension is allowed",
                )
                .at(at),
            );
            continue;
        }
        match e.get("valueCode").and_then(Value::as_str) {
            Some(c) if CONTENT_CODES.contains(&c) => {
                if davinci && c != "full-resource" {
                    let msg = "the Da Vinci message channel carries the resources in the message: content must be full-resource";
                    issues.push(Issue::error(IssueCode::Value, msg).at(format!("{at}.valueCode")));
                }
                found = Some(c.to_owned());
            }
            Some(c) => {
                let msg = format!("content '{c}' is not one of {}", CONTENT_CODES.join(", "));
                issues
                    .push(Issue::error(IssueCode::CodeInvalid, msg).at(format!("{at}.valueCode")));
            }
            None => issues.push(required(
                &at,
                "backport-payload-content needs valueCode (empty, id-only or full-resource)",
            )),
        }
    }
    found.unwrap_or_else(|| if davinci { "full-resource" } else { "id-only" }.to_owned())
}
