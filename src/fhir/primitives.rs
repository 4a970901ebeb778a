//! R4 primitive types: their JSON shape, their regular expressions from the
//! specification, and the calendar checks a regex cannot make (no 30 February).
//!
//! Error messages name the expected form, never the offending value: a bad value may
//! be a patient's name typed into the wrong field.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use serde_json::Value;

const YEAR: &str = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)";
const TIME: &str = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?";
const ZONE: &str = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))";

fn anchored(s: &str) -> Regex {
    Regex::new(&format!("^(?:{s})$")).expect("static regex")
}

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        r"{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
    ))
});
static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        r"{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{TIME}{ZONE})?)?)?"
    ))
});
static INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        r"{YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{TIME}{ZONE}"
    ))
});
static TIME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(TIME));
static ID: LazyLock<Regex> = LazyLock::new(|| anchored(r"[A-Za-z0-9\-\.]{1,64}"));
static CODE: LazyLock<Regex> = LazyLock::new(|| anchored(r"[^\s]+(\s[^\s]+)*"));
static OID: LazyLock<Regex> = LazyLock::new(|| anchored(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"));
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    anchored(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
});
static BASE64: LazyLock<Regex> = LazyLock::new(|| anchored(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+"));

/// The largest string the gateway accepts in one primitive (the spec's 1 MB).
pub const MAX_STRING_BYTES: usize = 1024 * 1024;

/// A logical id: 1–64 of `A-Z a-z 0-9 - .`.
pub fn is_valid_id(s: &str) -> bool {
    ID.is_match(s)
}

/// Whether the calendar date at the start of `s` (YYYY, YYYY-MM or YYYY-MM-DD…) exists.
fn calendar_ok(s: &str) -> bool {
    if s.len() < 10 {
        return true; // a year or year-month: the regex is enough
    }
    let (y, m, d) = (s[0..4].parse(), s[5..7].parse(), s[8..10].parse());
    match (y, m, d) {
        (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d).is_some(),
        _ => false,
    }
}

fn string<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("must be a JSON string ({what})"))?;
    if s.is_empty() {
        return Err("must not be an empty string (leave the element out instead)".into());
    }
    if s.len() > MAX_STRING_BYTES {
        return Err(format!("is longer than {MAX_STRING_BYTES} bytes"));
    }
    Ok(s)
}

fn matching(v: &Value, re: &Regex, what: &str) -> Result<(), String> {
    let s = string(v, what)?;
    if re.is_match(s) {
        Ok(())
    } else {
        Err(format!("is not a valid {what}"))
    }
}

/// Check one JSON value against an R4 primitive type.
pub fn check(type_code: &str, v: &Value) -> Result<(), String> {
    match type_code {
        "boolean" => v
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "must be true or false".into()),
        "integer" => match v.as_i64() {
            Some(n) if i32::try_from(n).is_ok() => Ok(()),
            _ => Err("must be a whole JSON number within the 32-bit range (integer)".into()),
        },
        "positiveInt" => match v.as_i64() {
            Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(()),
            _ => Err("must be a whole JSON number of at least 1 (positiveInt)".into()),
        },
        "unsignedInt" => match v.as_i64() {
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(()),
            _ => Err("must be a whole JSON number of at least 0 (unsignedInt)".into()),
        },
        "decimal" => {
            if v.is_number() {
                Ok(())
            } else {
                Err("must be a JSON number (decimal)".into())
            }
        }
        "string" | "markdown" => string(v, type_code).map(|_| ()),
        "uri" | "url" | "canonical" => {
            let s = string(v, type_code)?;
            if s.chars().any(char::is_whitespace) {
                Err(format!(
                    "is not a valid {type_code} (it contains whitespace)"
                ))
            } else {
                Ok(())
            }
        }
        "id" => matching(v, &ID, "id (1-64 of A-Z a-z 0-9 - .)"),
        "code" => matching(v, &CODE, "code (no leading, trailing or double whitespace)"),
        "oid" => matching(v, &OID, "oid (urn:oid:...)"),
        "uuid" => matching(v, &UUID, "uuid (urn:uuid:, lower case)"),
        "base64Binary" => matching(v, &BASE64, "base64Binary"),
        "time" => matching(v, &TIME_RE, "time (hh:mm:ss)"),
        "date" => {
            matching(v, &DATE, "date (YYYY, YYYY-MM or YYYY-MM-DD)")?;
            if calendar_ok(v.as_str().unwrap_or_default()) {
                Ok(())
            } else {
                Err("is not a calendar date".into())
            }
        }
        "dateTime" => {
            matching(
                v,
                &DATE_TIME,
                "dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a zone)",
            )?;
            if calendar_ok(v.as_str().unwrap_or_default()) {
                Ok(())
            } else {
                Err("is not a calendar date".into())
            }
        }
        "instant" => {
            matching(v, &INSTANT, "instant (YYYY-MM-DDThh:mm:ss with a zone)")?;
            if calendar_ok(v.as_str().unwrap_or_default()) {
                Ok(())
            } else {
                Err("is not a calendar date".into())
            }
        }
        "xhtml" => {
            let s = string(v, "xhtml")?;
            if s.trim_start().starts_with("<div") {
                Ok(())
            } else {
                Err("must be an XHTML <div> element".into())
            }
        }
        other => Err(format!("has an unknown primitive type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates() {
        for ok in [
            "2024",
            "2024-02",
            "2024-02-29",
            "2024-02-29T10:00:00Z",
            "2024-02-29T10:00:00.123+14:00",
        ] {
            assert!(check("dateTime", &json!(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "2024-13",
            "24-01-01",
            "2024-01-01T10:00:00",
            "2024-01-01T25:00:00Z",
            "2024-04-31",
            "",
            "yesterday",
        ] {
            assert!(check("dateTime", &json!(bad)).is_err(), "{bad}");
        }
        assert!(check("date", &json!("2024-01-01T10:00:00Z")).is_err());
        assert!(check("instant", &json!("2024-01-01")).is_err());
        assert!(check("instant", &json!("2024-01-01T00:00:00+01:00")).is_ok());
        assert!(check("date", &json!(20240101)).is_err());
    }

    #[test]
    fn numbers_and_others() {
        assert!(check("integer", &json!(3)).is_ok());
        assert!(check("integer", &json!(3.5)).is_err());
        assert!(check("integer", &json!(3_000_000_000i64)).is_err());
        assert!(check("positiveInt", &json!(0)).is_err());
        assert!(check("unsignedInt", &json!(0)).is_ok());
        assert!(check("decimal", &json!("1.0")).is_err());
        assert!(check("boolean", &json!("true")).is_err());
        assert!(check("code", &json!("a  b")).is_err());
        assert!(check("code", &json!("in-progress")).is_ok());
        assert!(check("uri", &json!("http://x y")).is_err());
        assert!(check("string", &json!("")).is_err());
        assert!(check("id", &json!("a_b")).is_err());
        assert!(is_valid_id("abc-1.2") && !is_valid_id(&"a".repeat(65)));
        assert!(check(
            "uuid",
            &json!("urn:uuid:c757873d-ec9a-4326-a141-556f43239520")
        )
        .is_ok());
        assert!(check("xhtml", &json!("<p>x</p>")).is_err());
    }

    #[test]
    fn messages_do_not_echo_values() {
        let e = check("date", &json!("John Smith")).unwrap_err();
        assert!(!e.contains("John"), "{e}");
    }
}
