//! The search parameters the gateway serves, per resource type, and the extraction of
//! index rows from a resource. Searches are answered from these rows (written in the
//! same transaction as each version), never by scanning resource bodies.

use serde_json::Value;

use super::dates;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Token,
    String,
    Date,
    Reference,
}

#[derive(Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    /// Dot paths into the resource; arrays are walked through. Choice elements are
    /// listed by their concrete JSON names (`occurrenceDateTime`).
    pub paths: &'static [&'static str],
    /// For reference parameters: the resource types the reference may point to
    /// (used to complete a bare id in a search value and for `_include`).
    pub targets: &'static [&'static str],
    /// The parameter holds only references of its target types: FHIR defines it with
    /// `.where(resolve() is X)` (every `patient`: the subject *where it is a
    /// Patient*). Other reference parameters hold whatever the element refers to.
    pub typed: bool,
    /// A typed parameter whose element another (untyped) parameter of the type already
    /// indexes (`patient` and `subject`): it has no rows of its own. Searches on it
    /// read that parameter's rows, whose targets of this parameter's types are exactly
    /// the rows it would have (every value it accepts is such a target; see
    /// [`ParamDef::rows_of`]). One reference, one index row: an A08 that changes the
    /// attending rewrote two entries in `search_ref`'s value index, one per name.
    pub stored_as: Option<&'static str>,
}

impl ParamDef {
    /// Whether this parameter holds a reference to `target` (`Type/id`).
    pub fn allows(&self, target: &str) -> bool {
        !self.typed
            || target
                .split_once('/')
                .is_some_and(|(t, _)| self.targets.contains(&t))
    }

    /// The parameter whose index rows serve this one: itself, or the one it is
    /// [`stored_as`](ParamDef::stored_as).
    pub fn rows_of(&self) -> &'static str {
        self.stored_as.unwrap_or(self.name)
    }
}

const fn p(name: &'static str, kind: ParamKind, paths: &'static [&'static str]) -> ParamDef {
    ParamDef {
        name,
        kind,
        paths,
        targets: &[],
        typed: false,
        stored_as: None,
    }
}
const fn r(
    name: &'static str,
    paths: &'static [&'static str],
    targets: &'static [&'static str],
) -> ParamDef {
    ParamDef {
        name,
        kind: ParamKind::Reference,
        paths,
        targets,
        typed: false,
        stored_as: None,
    }
}
/// A reference parameter that keeps only references of its target types (`typed`).
const fn typed(
    name: &'static str,
    paths: &'static [&'static str],
    targets: &'static [&'static str],
) -> ParamDef {
    let mut def = r(name, paths, targets);
    def.typed = true;
    def
}
/// A typed parameter over the element of the untyped parameter `of` (same paths):
/// searched in `of`'s rows, none of its own ([`ParamDef::stored_as`]).
const fn typed_of(
    name: &'static str,
    of: &'static str,
    paths: &'static [&'static str],
    targets: &'static [&'static str],
) -> ParamDef {
    let mut def = typed(name, paths, targets);
    def.stored_as = Some(of);
    def
}

use ParamKind::{Date, String as Str, Token};

const PARTY: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Patient",
    "RelatedPerson",
    "Device",
];

static CAREPLAN: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("status", Token, &["status"]),
    p("intent", Token, &["intent"]),
    p("category", Token, &["category"]),
    p("date", Date, &["period"]),
    r("subject", &["subject"], &["Patient", "Group"]),
    typed_of("patient", "subject", &["subject"], &["Patient"]),
    r("encounter", &["encounter"], &["Encounter"]),
    r("care-team", &["careTeam"], &["CareTeam"]),
    r("performer", &["activity.detail.performer"], PARTY),
    r("based-on", &["basedOn"], &["CarePlan"]),
];

static SERVICEREQUEST: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("status", Token, &["status"]),
    p("intent", Token, &["intent"]),
    p("priority", Token, &["priority"]),
    p("category", Token, &["category"]),
    p("code", Token, &["code"]),
    p("authored", Date, &["authoredOn"]),
    p(
        "occurrence",
        Date,
        &["occurrenceDateTime", "occurrencePeriod"],
    ),
    r(
        "subject",
        &["subject"],
        &["Patient", "Group", "Location", "Device"],
    ),
    typed_of("patient", "subject", &["subject"], &["Patient"]),
    r("encounter", &["encounter"], &["Encounter"]),
    r("requester", &["requester"], PARTY),
    r("performer", &["performer"], PARTY),
    r(
        "based-on",
        &["basedOn"],
        &["ServiceRequest", "CarePlan", "MedicationRequest"],
    ),
];

static CONSENT: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("status", Token, &["status"]),
    p("scope", Token, &["scope"]),
    p("category", Token, &["category"]),
    p("action", Token, &["provision.action"]),
    p("purpose", Token, &["provision.purpose"]),
    p("date", Date, &["dateTime"]),
    p("period", Date, &["provision.period"]),
    typed("patient", &["patient"], &["Patient"]),
    r("actor", &["provision.actor.reference"], PARTY),
    r("organization", &["organization"], &["Organization"]),
];

static ENCOUNTER: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("status", Token, &["status"]),
    p("class", Token, &["class"]),
    p("type", Token, &["type"]),
    p("date", Date, &["period"]),
    r("subject", &["subject"], &["Patient", "Group"]),
    typed_of("patient", "subject", &["subject"], &["Patient"]),
    r("location", &["location.location"], &["Location"]),
    r("service-provider", &["serviceProvider"], &["Organization"]),
    r(
        "participant",
        &["participant.individual"],
        &["Practitioner", "PractitionerRole", "RelatedPerson"],
    ),
    typed_of(
        "practitioner",
        "participant",
        &["participant.individual"],
        &["Practitioner"],
    ),
    r("episode-of-care", &["episodeOfCare"], &["EpisodeOfCare"]),
    r("based-on", &["basedOn"], &["ServiceRequest"]),
];

static TASK: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("status", Token, &["status"]),
    p("intent", Token, &["intent"]),
    p("priority", Token, &["priority"]),
    p("code", Token, &["code"]),
    p("business-status", Token, &["businessStatus"]),
    p("authored-on", Date, &["authoredOn"]),
    p("modified", Date, &["lastModified"]),
    p("period", Date, &["executionPeriod"]),
    // Not an R4 parameter: the handoff deadline (docs/accountability.md).
    p("deadline", Date, &["restriction.period.end"]),
    r("subject", &["for"], &["Patient", "Group"]),
    typed_of("patient", "subject", &["for"], &["Patient"]),
    r(
        "focus",
        &["focus"],
        &["ServiceRequest", "Encounter", "CarePlan", "Task"],
    ),
    r("owner", &["owner"], PARTY),
    r("requester", &["requester"], PARTY),
    r("encounter", &["encounter"], &["Encounter"]),
    r(
        "based-on",
        &["basedOn"],
        &["ServiceRequest", "CarePlan", "Task"],
    ),
    r("part-of", &["partOf"], &["Task"]),
];

static PATIENT: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("active", Token, &["active"]),
    p("name", Str, &["name"]),
    p("family", Str, &["name.family"]),
    p("given", Str, &["name.given"]),
    p("gender", Token, &["gender"]),
    p("birthdate", Date, &["birthDate"]),
    r(
        "general-practitioner",
        &["generalPractitioner"],
        &["Practitioner", "PractitionerRole", "Organization"],
    ),
    r("organization", &["managingOrganization"], &["Organization"]),
];

static PRACTITIONER: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("active", Token, &["active"]),
    p("name", Str, &["name"]),
    p("family", Str, &["name.family"]),
    p("given", Str, &["name.given"]),
];

static PRACTITIONERROLE: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("active", Token, &["active"]),
    p("role", Token, &["code"]),
    p("specialty", Token, &["specialty"]),
    p("date", Date, &["period"]),
    r("practitioner", &["practitioner"], &["Practitioner"]),
    r("organization", &["organization"], &["Organization"]),
    r("location", &["location"], &["Location"]),
    r("endpoint", &["endpoint"], &["Endpoint"]),
];

static ORGANIZATION: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("active", Token, &["active"]),
    p("name", Str, &["name", "alias"]),
    p("type", Token, &["type"]),
    r("partof", &["partOf"], &["Organization"]),
    r("endpoint", &["endpoint"], &["Endpoint"]),
];

static ENDPOINT: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("status", Token, &["status"]),
    p("name", Str, &["name"]),
    p("connection-type", Token, &["connectionType"]),
    p("payload-type", Token, &["payloadType"]),
    r("organization", &["managingOrganization"], &["Organization"]),
];

static SUBSCRIPTION: &[ParamDef] = &[
    p("status", Token, &["status"]),
    p("url", Token, &["channel.endpoint"]),
    p("criteria", Str, &["criteria"]),
    p("type", Token, &["channel.type"]),
];

/// The disclosure ledger (written by the server only, see `consent::ledger`).
static AUDITEVENT: &[ParamDef] = &[
    p("date", Date, &["recorded"]),
    r("agent", &["agent.who"], PARTY),
    typed("patient", &["agent.who", "entity.what"], &["Patient"]),
    r("entity", &["entity.what"], &[]),
    p("type", Token, &["type"]),
    p("subtype", Token, &["subtype"]),
    p("outcome", Token, &["outcome"]),
    p("action", Token, &["action"]),
];

/// HL7 v2 ADT maps DG1 to Condition, PV1-3 / PV1-37 to Location, MSH to Provenance.
static CONDITION: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("clinical-status", Token, &["clinicalStatus"]),
    p("category", Token, &["category"]),
    p("code", Token, &["code"]),
    p("onset-date", Date, &["onsetDateTime", "onsetPeriod"]),
    r("subject", &["subject"], &["Patient", "Group"]),
    typed_of("patient", "subject", &["subject"], &["Patient"]),
    r("encounter", &["encounter"], &["Encounter"]),
];

static LOCATION: &[ParamDef] = &[
    p("identifier", Token, &["identifier"]),
    p("name", Str, &["name", "alias"]),
    p("status", Token, &["status"]),
    p("type", Token, &["type"]),
    r("organization", &["managingOrganization"], &["Organization"]),
    r("partof", &["partOf"], &["Location"]),
];

static PROVENANCE: &[ParamDef] = &[
    p("recorded", Date, &["recorded"]),
    r(
        "target",
        &["target"],
        &[
            "Patient",
            "Encounter",
            "Condition",
            "Practitioner",
            "Organization",
            "Location",
        ],
    ),
    r("agent", &["agent.who"], PARTY),
];

/// The gateway's SubscriptionTopics in their R4 form (read-only, see `topics`).
static BASIC: &[ParamDef] = &[
    p("code", Token, &["code"]),
    p("identifier", Token, &["identifier"]),
];

/// The resource types the REST API serves, with their search parameters.
pub static SUPPORTED: &[(&str, &[ParamDef])] = &[
    ("CarePlan", CAREPLAN),
    ("ServiceRequest", SERVICEREQUEST),
    ("Consent", CONSENT),
    ("Encounter", ENCOUNTER),
    ("Task", TASK),
    ("Patient", PATIENT),
    ("Practitioner", PRACTITIONER),
    ("PractitionerRole", PRACTITIONERROLE),
    ("Organization", ORGANIZATION),
    ("Endpoint", ENDPOINT),
    ("Subscription", SUBSCRIPTION),
    ("Basic", BASIC),
    ("AuditEvent", AUDITEVENT),
    ("Condition", CONDITION),
    ("Location", LOCATION),
    ("Provenance", PROVENANCE),
];

/// Types the API serves read-only: the server writes them (topics, the ledger).
pub fn is_read_only(rtype: &str) -> bool {
    matches!(rtype, "Basic" | "AuditEvent")
}

pub fn is_supported(rtype: &str) -> bool {
    SUPPORTED.iter().any(|(t, _)| *t == rtype)
}

pub fn params_for(rtype: &str) -> &'static [ParamDef] {
    SUPPORTED
        .iter()
        .find(|(t, _)| *t == rtype)
        .map(|(_, p)| *p)
        .unwrap_or(&[])
}

pub fn lookup(rtype: &str, name: &str) -> Option<&'static ParamDef> {
    params_for(rtype).iter().find(|d| d.name == name)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexValue {
    Token {
        system: Option<String>,
        code: String,
    },
    /// Normalized form (for prefix/contains) and the original text (for `:exact`).
    Str { value: String, exact: String },
    /// Half-open range [lo, hi) in microseconds since the Unix epoch.
    Date { lo: i64, hi: i64 },
    /// `Type/id`
    Ref(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub param: &'static str,
    pub value: IndexValue,
}

/// Every parameter's entries for one resource version, those [`stored_as`] another's
/// included (what `_include` and the patient compartment read).
///
/// [`stored_as`]: ParamDef::stored_as
pub fn index_entries(rtype: &str, resource: &Value) -> Vec<IndexEntry> {
    entries(rtype, resource, true)
}

/// The index rows stored for one resource version: [`index_entries`] without the
/// parameters searched in another's rows.
pub fn stored_entries(rtype: &str, resource: &Value) -> Vec<IndexEntry> {
    entries(rtype, resource, false)
}

fn entries(rtype: &str, resource: &Value, all: bool) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    for def in params_for(rtype)
        .iter()
        .filter(|d| all || d.stored_as.is_none())
    {
        for path in def.paths {
            let mut leaves = Vec::new();
            collect(resource, path, &mut leaves);
            for leaf in leaves {
                extract(def, leaf, &mut out);
            }
        }
    }
    out.dedup();
    out
}

fn collect<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, path, out)),
        _ if path.is_empty() => out.push(v),
        Value::Object(map) => {
            let (head, rest) = path.split_once('.').unwrap_or((path, ""));
            if let Some(child) = map.get(head) {
                collect(child, rest, out);
            }
        }
        _ => {}
    }
}

fn extract(def: &'static ParamDef, v: &Value, out: &mut Vec<IndexEntry>) {
    let mut push = |value| {
        out.push(IndexEntry {
            param: def.name,
            value,
        })
    };
    match def.kind {
        ParamKind::Token => match v {
            Value::String(code) => push(IndexValue::Token {
                system: None,
                code: code.clone(),
            }),
            Value::Bool(b) => push(IndexValue::Token {
                system: None,
                code: b.to_string(),
            }),
            Value::Object(m) => {
                let system = m.get("system").and_then(Value::as_str).map(str::to_owned);
                if let Some(code) = m
                    .get("code")
                    .or_else(|| m.get("value"))
                    .and_then(Value::as_str)
                {
                    push(IndexValue::Token {
                        system,
                        code: code.to_owned(),
                    });
                }
                if let Some(Value::Array(codings)) = m.get("coding") {
                    for c in codings {
                        if let Some(code) = c.get("code").and_then(Value::as_str) {
                            let system = c.get("system").and_then(Value::as_str).map(str::to_owned);
                            push(IndexValue::Token {
                                system,
                                code: code.to_owned(),
                            });
                        }
                    }
                }
            }
            _ => {}
        },
        ParamKind::String => match v {
            Value::String(s) => push(str_value(s)),
            Value::Object(m) => {
                // HumanName / Address: every part, and the whole text.
                for key in [
                    "text",
                    "family",
                    "given",
                    "prefix",
                    "suffix",
                    "line",
                    "city",
                    "state",
                    "postalCode",
                    "country",
                ] {
                    match m.get(key) {
                        Some(Value::String(s)) => push(str_value(s)),
                        Some(Value::Array(parts)) => parts
                            .iter()
                            .filter_map(Value::as_str)
                            .for_each(|s| push(str_value(s))),
                        _ => {}
                    }
                }
            }
            _ => {}
        },
        ParamKind::Date => match v {
            Value::String(s) => {
                if let Some((lo, hi)) = dates::range(s) {
                    push(IndexValue::Date { lo, hi });
                }
            }
            Value::Object(m) => {
                let start = m
                    .get("start")
                    .and_then(Value::as_str)
                    .and_then(dates::range);
                let end = m.get("end").and_then(Value::as_str).and_then(dates::range);
                if start.is_some() || end.is_some() {
                    let lo = start.map(|r| r.0).unwrap_or(i64::MIN);
                    let hi = end.map(|r| r.1).unwrap_or(i64::MAX);
                    push(IndexValue::Date { lo, hi });
                }
            }
            _ => {}
        },
        ParamKind::Reference => {
            if let Some(reference) = v.get("reference").and_then(Value::as_str) {
                // Only references of the parameter's target types: `patient` is the
                // subject *where it is a Patient* (AuditEvent's names the Patient among
                // its entities, not the Encounter or Subscription beside it).
                if let Some(target) = normalize_reference(reference).filter(|t| def.allows(t)) {
                    push(IndexValue::Ref(target));
                }
            }
        }
    }
}

fn str_value(s: &str) -> IndexValue {
    IndexValue::Str {
        value: normalize(s),
        exact: s.trim().to_owned(),
    }
}

/// Case-insensitive form used for string search (prefix match on this).
pub fn normalize(s: &str) -> String {
    s.trim().to_lowercase()
}

/// `Type/id` from a relative or absolute literal reference (version suffix dropped).
/// Local (`#x`) and `urn:` references have no stored target and give `None`.
pub fn normalize_reference(reference: &str) -> Option<String> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let trimmed = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut parts = trimmed.rsplit('/');
    let id = parts.next()?;
    let rtype = parts.next()?;
    if id.is_empty() || !rtype.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
        return None;
    }
    Some(format!("{rtype}/{id}"))
}

#[cfg(test)]
mod tests;
