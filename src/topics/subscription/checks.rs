//! The element checks [`parse`](super::parse) applies: filter criteria strings, the
//! endpoint, the payload MIME type, the channel's number extensions and headers.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::{extensions, Filter};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::primitives::is_valid_id;
use crate::fhir::validate::reference_type;
use crate::topics::catalog::{FilterDef, Topic};

/// Headers the gateway sets itself on every delivery (framing, and the signature
/// headers in the Standard Webhooks style), which a subscriber may not override.
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The filters in one `backport-filter-criteria` string. Accepted forms (the
/// Backport IG's, several joined by `&`): `Encounter?patient=Patient/123`,
/// `patient=Patient/123` (the topic's focus resource), `Encounter.patient=…`.
/// Values are percent-decoded. Modifiers (`param:modifier`) and several values (`a,b`,
/// an OR) are refused.
pub fn filters(s: &str, topic: Option<&Topic>, at: &str, issues: &mut Vec<Issue>) -> Vec<Filter> {
    let mut bad = |code, msg: String| issues.push(Issue::error(code, msg).at(at));
    let (prefix, query) = match s.trim().split_once('?') {
        Some((r, q)) => (Some(r.trim()), q),
        None => (None, s.trim()),
    };
    if prefix == Some("") {
        bad(
            IssueCode::Value,
            "a filter criteria has a resource type before '?'".into(),
        );
        return Vec::new();
    }
    let parts: Vec<&str> = query.split('&').filter(|p| !p.trim().is_empty()).collect();
    if parts.is_empty() {
        bad(
            IssueCode::Value,
            "a filter criteria needs at least one param=value".into(),
        );
    }
    let mut out = Vec::new();
    for part in parts {
        let Some((key, raw)) = part.split_once('=') else {
            bad(
                IssueCode::Value,
                "each filter is param=value (e.g. Encounter?patient=Patient/123)".into(),
            );
            continue;
        };
        let (resource, param) = match key.trim().split_once('.') {
            Some((r, _)) if prefix.is_some_and(|p| p != r) => {
                bad(
                    IssueCode::Value,
                    "a filter names two different resource types".into(),
                );
                continue;
            }
            Some((r, p)) => (Some(r), p),
            None => (prefix, key.trim()),
        };
        if param.is_empty() {
            bad(
                IssueCode::Value,
                "a filter has no parameter name before '='".into(),
            );
            continue;
        }
        if let Some((p, _)) = param.split_once(':') {
            bad(
                IssueCode::NotSupported,
                format!("modifiers are not supported on filters: use '{p}=value'"),
            );
            continue;
        }
        let value = match percent_decode_str(raw).decode_utf8() {
            Ok(v) => v.trim().to_owned(),
            Err(_) => {
                bad(
                    IssueCode::Value,
                    format!("the value of filter '{param}' is not valid percent-encoded UTF-8"),
                );
                continue;
            }
        };
        if value.is_empty() {
            bad(
                IssueCode::Value,
                format!("filter '{param}' has an empty value"),
            );
            continue;
        }
        if value.contains(',') {
            let msg = format!("filter '{param}' has several values (an OR): give one value per filter, and one Subscription per value");
            bad(IssueCode::NotSupported, msg);
            continue;
        }
        let Some(topic) = topic else { continue };
        let resource = resource.unwrap_or(topic.resource);
        let Some(def) = topic.filter(resource, param) else {
            let msg = format!(
                "topic {} has no filter {resource}?{param}; allowed: {}",
                topic.code,
                topic.allowed_filters()
            );
            bad(IssueCode::NotSupported, msg);
            continue;
        };
        match reference_value(&value, def) {
            Ok(value) => out.push(Filter {
                resource: resource.to_owned(),
                param: param.to_owned(),
                value,
            }),
            Err(msg) => bad(IssueCode::Value, msg),
        }
    }
    out
}

/// A filter value as the reference the records hold: `Patient/123` as given (or an
/// absolute URL ending so); a bare id made `Patient/123` when the filter takes one type.
fn reference_value(value: &str, def: &FilterDef) -> Result<String, String> {
    let types = def.targets.join(" or ");
    let param = def.param;
    if !value.contains('/') {
        return match def.targets {
            [only] if is_valid_id(value) => Ok(format!("{only}/{value}")),
            [only] => Err(format!(
                "filter '{param}' takes a reference such as {only}/123"
            )),
            _ => Err(format!(
                "filter '{param}' takes a typed reference ({types}, e.g. {}/123)",
                def.targets[0]
            )),
        };
    }
    match reference_type(value) {
        Some(t) if def.targets.contains(&t) => Ok(value.to_owned()),
        _ => Err(format!("filter '{param}' takes a reference to {types}")),
    }
}

/// `channel.endpoint`: an absolute http(s) URL with a host and no credentials.
pub fn endpoint(e: &str, at: &str, issues: &mut Vec<Issue>) {
    let problem = match url::Url::parse(e) {
        Err(_) => Some("the endpoint is not an absolute URL"),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some("the endpoint must be an http or https URL")
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("the endpoint has no host"),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            Some("the endpoint must not carry credentials: send them in channel.header")
        }
        Ok(_) => None,
    };
    if let Some(msg) = problem {
        issues.push(Issue::error(IssueCode::Value, msg).at(at));
    }
}

/// The MIME type without parameters, lower case.
pub fn mime_base(p: &str) -> String {
    p.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `channel.payload`: `application/fhir+json` or `application/fhir+xml`, with at most
/// the parameters `fhirVersion=4.0` and `charset=utf-8`; other parameters are ignored.
pub fn payload(p: &str, at: &str, issues: &mut Vec<Issue>) {
    let mut bad = |code, msg: &str| issues.push(Issue::error(code, msg).at(at));
    if !matches!(
        mime_base(p).as_str(),
        "application/fhir+json" | "application/fhir+xml"
    ) {
        bad(
            IssueCode::Value,
            "the payload must be application/fhir+json or application/fhir+xml",
        );
    }
    for param in p.split(';').skip(1).filter(|s| !s.trim().is_empty()) {
        let Some((k, v)) = param.split_once('=') else {
            bad(IssueCode::Value, "a MIME type parameter is name=value");
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "fhirversion" if v != "4.0" => bad(
                IssueCode::NotSupported,
                "this server sends FHIR R4 notifications only (fhirVersion=4.0)",
            ),
            "charset" if !v.eq_ignore_ascii_case("utf-8") => {
                bad(IssueCode::Value, "the payload charset must be utf-8")
            }
            _ => {}
        }
    }
}

/// The value of the channel extension `url` (`valueUnsignedInt` / `valuePositiveInt`
/// as `key` says), which must be 1 or more; at most one such extension.
pub fn positive(
    channel: &Map<String, Value>,
    url: &str,
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<u32> {
    let name = url.rsplit('/').next().unwrap_or(url);
    let mut found = None;
    for (n, (i, e)) in extensions(channel.get("extension"), url).enumerate() {
        let at = format!("Subscription.channel.extension[{i}]");
        if n > 0 {
            let msg = format!("only one {name} extension is allowed");
            issues.push(Issue::error(IssueCode::Structure, msg).at(at));
            continue;
        }
        let Some(v) = e.get(key) else {
            issues.push(Issue::error(IssueCode::Required, format!("{name} needs {key}")).at(at));
            continue;
        };
        match v.as_u64().map(u32::try_from) {
            Some(Ok(n)) if n > 0 => found = Some(n),
            _ => {
                let msg = format!("{name} must be a whole number of 1 or more");
                issues.push(Issue::error(IssueCode::Value, msg).at(format!("{at}.{key}")));
            }
        }
    }
    found
}

/// A `channel.header` string `Name: value`: a token name, a non-empty value without
/// control characters, not a header the gateway sets ([`RESERVED_HEADERS`]).
pub fn header(h: &str, at: &str, issues: &mut Vec<Issue>) -> Option<(String, String)> {
    let mut bad = |msg: String| issues.push(Issue::error(IssueCode::Value, msg).at(at));
    let Some((name, value)) = h.split_once(':') else {
        bad("a header is 'Name: value'".into());
        return None;
    };
    let (name, value) = (name.trim(), value.trim());
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        bad("a header name is letters, digits and !#$%&'*+-.^_`|~ only".into());
        return None;
    }
    if value.is_empty() || value.chars().any(|c| c.is_control() && c != '\t') {
        bad("a header value must be non-empty, on one line, without control characters".into());
        return None;
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        bad(format!("the gateway sets the {name} header itself"));
        return None;
    }
    Some((name.to_owned(), value.to_owned()))
}
