//! Reading an ADT message: its header (who sent it, which event, its control id) and
//! the v2 data types the mapping needs (timestamps, HD, CX, XCN), each failure a
//! [`Rejection`] naming the field.

use super::ack::{err, Rejection};
use super::message::{Message, Rep};

/// The ADT events the gateway takes.
pub const EVENTS: [&str; 7] = ["A01", "A02", "A03", "A04", "A08", "A11", "A13"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// MSH-3 and MSH-4 (namespace id, else universal id).
    pub sending_app: String,
    pub sending_facility: String,
    /// The trigger event: A01 ... A13.
    pub event: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12.
    pub version: String,
}

impl Header {
    /// The sender, as idempotency keys and identifier scopes use it: `APP|FACILITY`.
    pub fn sender(&self) -> String {
        format!("{}|{}", self.sending_app, self.sending_facility)
    }
}

fn hd_text(r: Option<Rep<'_>>) -> Option<String> {
    let r = r?;
    r.get(1).or_else(|| r.get(2))
}

pub fn header(msg: &Message) -> Result<Header, Rejection> {
    let d = &msg.delims;
    let msh = msg.segment("MSH").ok_or_else(|| {
        Rejection::ar(err::SEGMENT_SEQUENCE, "the message has no MSH segment").at("MSH", 1)
    })?;
    let control_id = msh.value(d, 10, 1).ok_or_else(|| {
        Rejection::ar(
            err::REQUIRED_FIELD_MISSING,
            "MSH-10 (message control id) is missing",
        )
        .at("MSH", 10)
    })?;
    let version = msh.value(d, 12, 1).unwrap_or_default();
    if !version.is_empty() && !version.starts_with("2.") {
        return Err(Rejection::ar(
            err::UNSUPPORTED_VERSION,
            "MSH-12 (version id) is not an HL7 v2 version",
        )
        .at("MSH", 12));
    }
    let kind = msh.value(d, 9, 1).ok_or_else(|| {
        Rejection::ar(
            err::REQUIRED_FIELD_MISSING,
            "MSH-9 (message type) is missing",
        )
        .at("MSH", 9)
    })?;
    if kind != "ADT" {
        return Err(Rejection::ar(
            err::UNSUPPORTED_MESSAGE_TYPE,
            "MSH-9 (message type) is not ADT: only ADT messages are taken",
        )
        .at("MSH", 9));
    }
    let event = msh
        .value(d, 9, 2)
        .or_else(|| msg.value("EVN", 1, 1))
        .unwrap_or_default()
        .to_ascii_uppercase();
    if !EVENTS.contains(&event.as_str()) {
        return Err(Rejection::ar(
            err::UNSUPPORTED_EVENT,
            format!(
                "MSH-9.2 (trigger event) is not one of {}",
                EVENTS.join(", ")
            ),
        )
        .at("MSH", 9));
    }
    Ok(Header {
        sending_app: hd_text(msh.first(d, 3)).unwrap_or_default(),
        sending_facility: hd_text(msh.first(d, 4)).unwrap_or_default(),
        event,
        control_id,
        version,
    })
}

/// A v2 timestamp (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`) as a FHIR date or
/// dateTime. A time without an offset is read as UTC; minutes and seconds missing are
/// zero. None: not a timestamp.
pub fn timestamp(v: &str) -> Option<String> {
    let v = v.trim();
    let (main, zone) = match v.find(['+', '-']) {
        Some(i) => (&v[..i], Some(&v[i..])),
        None => (v, None),
    };
    let (digits, frac) = match main.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (main, None),
    };
    let zone = match zone {
        None => "Z".to_owned(),
        Some(z) if z.len() == 5 && z[1..].bytes().all(|b| b.is_ascii_digit()) => {
            let (zh, zm) = (z[1..3].parse::<u32>().ok()?, z[3..5].parse::<u32>().ok()?);
            if zh > 14 || zm > 59 {
                return None;
            }
            format!("{}{:02}:{:02}", &z[..1], zh, zm)
        }
        Some(_) => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![4, 6, 8, 10, 12, 14].contains(&digits.len())
    {
        return None;
    }
    let n = |a: usize, b: usize| digits.get(a..b).and_then(|s| s.parse::<u32>().ok());
    let (year, month, day) = (n(0, 4)?, n(4, 6), n(6, 8));
    if let Some(m) = month {
        if !(1..=12).contains(&m) {
            return None;
        }
    }
    if let (Some(m), Some(dd)) = (month, day) {
        chrono::NaiveDate::from_ymd_opt(year as i32, m, dd)?;
    }
    if digits.len() <= 8 {
        return Some(match (month, day) {
            (Some(m), Some(dd)) => format!("{year:04}-{m:02}-{dd:02}"),
            (Some(m), None) => format!("{year:04}-{m:02}"),
            _ => format!("{year:04}"),
        });
    }
    let (h, mi, s) = (n(8, 10)?, n(10, 12).unwrap_or(0), n(12, 14).unwrap_or(0));
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let frac = match frac {
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!(".{f}")
        }
        Some(_) => return None,
        None => String::new(),
    };
    Some(format!(
        "{year:04}-{:02}-{:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}",
        month?, day?
    ))
}

/// The timestamp in `SEG-field` (component 1), if any; an unreadable one is an AE.
pub fn time_field(
    msg: &Message,
    seg: &'static str,
    field: usize,
    what: &str,
) -> Result<Option<String>, Rejection> {
    match msg.value(seg, field, 1) {
        None => Ok(None),
        Some(v) => timestamp(&v).map(Some).ok_or_else(|| {
            Rejection::ae(
                err::DATA_TYPE,
                seg,
                field,
                format!("{seg}-{field} ({what}) is not a valid timestamp"),
            )
        }),
    }
}

/// An identifier's scope: the assigning authority (HD) when sent, else the sender.
pub fn authority(rep: &Rep<'_>, component: usize, sender: &str) -> String {
    rep.sub(component, 1)
        .or_else(|| rep.sub(component, 2))
        .unwrap_or_else(|| format!("facility:{sender}"))
}

/// A URI for an identifier system from an assigning authority HD (`ns&uid&type`).
pub fn system_uri(rep: &Rep<'_>, component: usize, sender: &str) -> String {
    let uid = rep.sub(component, 2);
    let kind = rep.sub(component, 3).unwrap_or_default();
    match uid {
        Some(u) if kind.eq_ignore_ascii_case("ISO") => format!("urn:oid:{u}"),
        Some(u) if u.contains("://") || u.starts_with("urn:") => u,
        _ => format!(
            "urn:handoff:v2:{}",
            uri_safe(&authority(rep, component, sender))
        ),
    }
}

fn uri_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._:".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A stable resource id for what `parts` name: the same parts, the same id, across
/// messages; no PHI in it (a hash).
pub fn stable_id(kind: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0x1f]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("v2-{hex}")
}
