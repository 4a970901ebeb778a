//! The accountability policy: how long each step of a handoff may take, and whom an
//! overdue handoff is escalated to. Read from the `[handoffs]` table of the
//! configuration (docs/accountability.md), validated once at load.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use serde::Deserialize;

/// `[handoffs]` as written in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HandoffSettings {
    /// A discharge's receiver (the PCP) accepts within this.
    pub discharge_accept: String,
    /// The follow-up visit a discharge asks for without saying when, counted from the
    /// discharge (a discharge that gives `withinDays` or `due` is taken at its word).
    pub discharge_follow_up: String,
    /// A transfer's receiver accepts within this.
    pub transfer_accept: String,
    /// A referral's receiver accepts (or declines) within this.
    pub referral_accept: String,
    /// After accepting, the referral's result (consult note) comes back within this.
    pub referral_result: String,
    /// How long the alternate recipient has before the handoff goes back to the sender.
    pub escalation_grace: String,
    /// Seconds between two deadline sweeps (0: no periodic sweep).
    pub sweep_interval_secs: u64,
    /// Receiving party (`Organization/…`, `Practitioner/…`) -> alternate recipient
    /// (practice pool, on-call) an overdue handoff is escalated to first.
    pub alternates: BTreeMap<String, String>,
    /// Sending party -> its care coordinator, to whom overdue and declined handoffs
    /// return (without an entry: the sender itself).
    pub coordinators: BTreeMap<String, String>,
    /// Tests and demos only: let `POST /api/v1/sweep?now=…` and `GET
    /// /api/v1/worklist?now=…` run at a time of the caller's choosing.
    pub test_clock: bool,
}

impl Default for HandoffSettings {
    fn default() -> Self {
        HandoffSettings {
            discharge_accept: "1 business day".into(),
            discharge_follow_up: "2 days".into(),
            transfer_accept: "4 hours".into(),
            referral_accept: "3 days".into(),
            referral_result: "30 days".into(),
            escalation_grace: "1 business day".into(),
            sweep_interval_secs: 60,
            alternates: BTreeMap::new(),
            coordinators: BTreeMap::new(),
            test_clock: false,
        }
    }
}

/// A length of time: exact, or in business days (Monday to Friday, UTC, no holidays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Micros(i64),
    BusinessDays(u32),
}

impl Span {
    /// `"30 minutes"`, `"4 hours"`, `"2 days"`, `"1 business day"` (singular or plural).
    pub fn parse(s: &str) -> Result<Span, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let bad =
            || format!("'{s}' is not a duration like \"4 hours\", \"2 days\", \"1 business day\"");
        let (n, unit) = match words.as_slice() {
            [n, unit] => (n, unit.to_string()),
            [n, "business", unit] => (n, format!("business {unit}")),
            _ => return Err(bad()),
        };
        let n: u32 = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(format!("'{s}': a deadline must be at least 1 unit"));
        }
        let micros = |secs: i64| Ok(Span::Micros(i64::from(n) * secs * 1_000_000));
        match unit.trim_end_matches('s') {
            "minute" => micros(60),
            "hour" => micros(3600),
            "day" => micros(86_400),
            "business day" => Ok(Span::BusinessDays(n)),
            _ => Err(bad()),
        }
    }

    /// The instant this long after `from` (microseconds since the epoch).
    pub fn after(self, from: i64) -> i64 {
        match self {
            Span::Micros(m) => from.saturating_add(m),
            Span::BusinessDays(n) => {
                let Some(mut t) = DateTime::<Utc>::from_timestamp_micros(from) else {
                    return from;
                };
                let mut left = n;
                while left > 0 {
                    t += Duration::days(1);
                    if !matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
                        left -= 1;
                    }
                }
                t.timestamp_micros()
            }
        }
    }
}

/// The policy the store applies, parsed from [`HandoffSettings`].
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub discharge_accept: Span,
    pub discharge_follow_up: Span,
    pub transfer_accept: Span,
    pub referral_accept: Span,
    pub referral_result: Span,
    pub escalation_grace: Span,
    pub alternates: BTreeMap<String, String>,
    pub coordinators: BTreeMap<String, String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_settings(&HandoffSettings::default()).expect("the defaults parse")
    }
}

impl Policy {
    pub fn from_settings(s: &HandoffSettings) -> Result<Policy, String> {
        let span =
            |name: &str, v: &str| Span::parse(v).map_err(|e| format!("handoffs.{name}: {e}"));
        for (k, v) in s.alternates.iter().chain(&s.coordinators) {
            for r in [k, v] {
                if crate::records::types::ref_id(r, r.split('/').next().unwrap_or("")).is_none() {
                    return Err(format!(
                        "handoffs: '{r}' is not a reference like Organization/123"
                    ));
                }
            }
        }
        Ok(Policy {
            discharge_accept: span("discharge_accept", &s.discharge_accept)?,
            discharge_follow_up: span("discharge_follow_up", &s.discharge_follow_up)?,
            transfer_accept: span("transfer_accept", &s.transfer_accept)?,
            referral_accept: span("referral_accept", &s.referral_accept)?,
            referral_result: span("referral_result", &s.referral_result)?,
            escalation_grace: span("escalation_grace", &s.escalation_grace)?,
            alternates: s.alternates.clone(),
            coordinators: s.coordinators.clone(),
        })
    }

    /// The alternate recipient configured for a receiving party.
    pub fn alternate(&self, receiver: Option<&str>) -> Option<&str> {
        receiver
            .and_then(|r| self.alternates.get(r))
            .map(String::as_str)
    }

    /// Where a handoff goes back to: the sender's coordinator, else the sender.
    pub fn coordinator<'a>(&'a self, sender: Option<&'a str>) -> Option<&'a str> {
        sender.map(|s| self.coordinators.get(s).map(String::as_str).unwrap_or(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn spans_parse_and_refuse() {
        assert_eq!(
            Span::parse("4 hours"),
            Ok(Span::Micros(4 * 3600 * 1_000_000))
        );
        assert_eq!(Span::parse("1 day"), Ok(Span::Micros(86_400_000_000)));
        assert_eq!(Span::parse("1 business day"), Ok(Span::BusinessDays(1)));
        assert_eq!(Span::parse("3 business days"), Ok(Span::BusinessDays(3)));
        for bad in [
            "",
            "days",
            "2",
            "0 days",
            "-1 days",
            "2 weeks",
            "x business days",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn business_days_skip_weekends() {
        // Friday 10:00 + 1 business day = Monday 10:00; Wednesday + 1 = Thursday.
        let fri = at("2026-11-27T10:00:00Z");
        assert_eq!(Span::BusinessDays(1).after(fri), at("2026-11-30T10:00:00Z"));
        let wed = at("2026-11-25T10:00:00Z");
        assert_eq!(Span::BusinessDays(1).after(wed), at("2026-11-26T10:00:00Z"));
        // Saturday + 1 = Monday.
        let sat = at("2026-11-28T08:00:00Z");
        assert_eq!(Span::BusinessDays(1).after(sat), at("2026-11-30T08:00:00Z"));
    }

    #[test]
    fn policy_from_settings() {
        let p = Policy::default();
        assert_eq!(p.discharge_accept, Span::BusinessDays(1));
        assert_eq!(p.referral_accept, Span::Micros(3 * 86_400_000_000));
        let s = HandoffSettings {
            referral_result: "soon".into(),
            ..Default::default()
        };
        assert!(Policy::from_settings(&s)
            .unwrap_err()
            .contains("referral_result"));
        let mut s = HandoffSettings::default();
        s.alternates
            .insert("nonsense".into(), "Practitioner/1".into());
        assert!(Policy::from_settings(&s).is_err());
        s.alternates.clear();
        s.alternates
            .insert("Organization/pcp".into(), "PractitionerRole/on-call".into());
        s.coordinators
            .insert("Organization/h".into(), "Practitioner/c".into());
        let p = Policy::from_settings(&s).unwrap();
        assert_eq!(
            p.alternate(Some("Organization/pcp")),
            Some("PractitionerRole/on-call")
        );
        assert_eq!(p.alternate(Some("Organization/x")), None);
        assert_eq!(
            p.coordinator(Some("Organization/h")),
            Some("Practitioner/c")
        );
        assert_eq!(
            p.coordinator(Some("Organization/x")),
            Some("Organization/x")
        );
    }
}
