//! An ADT message as the FHIR resources it says (v2-to-FHIR IG): Patient (PID, PD1-4 /
//! ROL PP as generalPractitioner), Encounter (PV1/PV2), Condition (DG1), the
//! Practitioners, Organizations and Locations they reference, and a Provenance naming
//! the message (MSH-10). Ids are stable (hashes of the identifiers that name each
//! thing), so A01 ... A08 for one visit write the same Encounter and Patient.

use serde_json::{json, Value};

use super::ack::{err, Rejection};
use super::adt::{authority, stable_id, system_uri, time_field, Header};
use super::message::Message;
use super::people;
use crate::store::Correction;

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const PROVIDER_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0443";

/// Where the visit and patient of a message live (their stable ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub patient: String,
    pub encounter: String,
}

/// The ids the message's PID-3 and PV1-19 give; AE naming the field when either is
/// missing.
pub fn keys(msg: &Message, h: &Header) -> Result<Keys, Rejection> {
    let d = &msg.delims;
    let sender = h.sender();
    let pid = msg.segment("PID").ok_or_else(|| {
        Rejection::ae(
            err::SEGMENT_SEQUENCE,
            "PID",
            0,
            "the message has no PID segment",
        )
        .at("PID", 3)
    })?;
    let reps = pid.reps(d, 3);
    let chosen = reps
        .iter()
        .find(|r| r.get(5).as_deref() == Some("MR") && r.get(1).is_some())
        .or_else(|| reps.iter().find(|r| r.get(1).is_some()))
        .ok_or_else(|| {
            Rejection::ae(
                err::REQUIRED_FIELD_MISSING,
                "PID",
                3,
                "PID-3 (patient identifier list) has no identifier",
            )
        })?;
    let patient = stable_id(
        "Patient",
        &[
            &authority(chosen, 4, &sender),
            &chosen.get(1).unwrap_or_default(),
        ],
    );
    let pv1 = msg.segment("PV1").ok_or_else(|| {
        Rejection::ae(
            err::SEGMENT_SEQUENCE,
            "PV1",
            19,
            "the message has no PV1 segment",
        )
    })?;
    let visit = pv1
        .first(d, 19)
        .filter(|r| r.get(1).is_some())
        .ok_or_else(|| {
            Rejection::ae(
                err::REQUIRED_FIELD_MISSING,
                "PV1",
                19,
                "PV1-19 (visit number) is missing: the gateway keys an encounter by it",
            )
        })?;
    let encounter = stable_id(
        "Encounter",
        &[
            &authority(&visit, 4, &sender),
            &visit.get(1).unwrap_or_default(),
        ],
    );
    Ok(Keys { patient, encounter })
}

/// What a message writes.
#[derive(Debug, Clone)]
pub struct Mapped {
    /// Every resource, with its id; the Encounter and Patient among them.
    pub resources: Vec<Value>,
    pub correction: Option<Correction>,
}

fn class(code: Option<String>) -> Value {
    let (c, display) = match code.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("E") => ("EMER", "emergency"),
        Some("I") | Some("B") => ("IMP", "inpatient encounter"),
        Some("O") | Some("R") | Some("C") => ("AMB", "ambulatory"),
        Some("P") => ("PRENC", "pre-admission"),
        Some(other) => {
            return json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": other})
        }
        None => ("IMP", "inpatient encounter"),
    };
    json!({"system": ACT_CODE, "code": c, "display": display})
}

/// A participant of `system`/`code`: the Practitioner with id `who`.
fn participant(system: &str, code: &str, who: &str) -> Value {
    json!({"type": [{"coding": [{"system": system, "code": code}]}],
        "individual": {"reference": format!("Practitioner/{who}")}})
}

fn id_of(r: &Value) -> &str {
    r["id"].as_str().unwrap_or("")
}

fn reference(r: &Value) -> Value {
    json!({"reference": format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""))})
}

/// The PCPs a message names: PD1-4, and ROL segments whose role (ROL-3) is PP.
fn pcps(msg: &Message, sender: &str) -> Vec<Value> {
    let d = &msg.delims;
    let mut out: Vec<Value> = Vec::new();
    if let Some(pd1) = msg.segment("PD1") {
        for r in pd1.reps(d, 4) {
            out.extend(people::practitioner(&r, sender));
        }
    }
    for rol in msg.all("ROL") {
        if rol.value(d, 3, 1).as_deref() == Some("PP") {
            for r in rol.reps(d, 4) {
                out.extend(people::practitioner(&r, sender));
            }
        }
    }
    out.dedup_by(|a, b| a["id"] == b["id"]);
    out
}

/// Map `msg` (header `h`, keys `k`). `stored` is the current Encounter, if any: A11 and
/// A13 change it; other events overlay what they say on it.
pub fn map(
    msg: &Message,
    h: &Header,
    k: &Keys,
    stored: Option<&Value>,
    now: &str,
) -> Result<Mapped, Rejection> {
    let sender = h.sender();
    let mut extra: Vec<Value> = Vec::new();

    let (encounter, correction) = match h.event.as_str() {
        "A11" | "A13" => {
            let Some(stored) = stored else {
                return Err(Rejection::ae(
                    err::UNKNOWN_KEY,
                    "PV1",
                    19,
                    "PV1-19 (visit number) names no visit the gateway has: nothing to cancel",
                ));
            };
            let mut e = stored.clone();
            if h.event == "A11" {
                e["status"] = json!("cancelled");
                (e, Some(Correction::CancelAdmit))
            } else {
                e["status"] = json!("in-progress");
                if let Some(p) = e.get_mut("period").and_then(Value::as_object_mut) {
                    p.remove("end");
                }
                if let Some(hz) = e.get_mut("hospitalization").and_then(Value::as_object_mut) {
                    hz.remove("dischargeDisposition");
                    hz.remove("destination");
                }
                // No empty objects left behind (FHIR forbids them).
                if let Some(o) = e.as_object_mut() {
                    o.retain(|_, v| v.as_object().is_none_or(|m| !m.is_empty()));
                }
                (e, Some(Correction::CancelDischarge))
            }
        }
        _ => (encounter(msg, h, k, stored, &mut extra)?, None),
    };

    let pid = msg.segment("PID").expect("keys() checked PID");
    let mut patient = people::patient(msg, pid, &k.patient, &sender).map_err(|text| {
        let field = if text.starts_with("PID-7") { 7 } else { 29 };
        Rejection::ae(err::DATA_TYPE, "PID", field, text)
    })?;
    let gps = pcps(msg, &sender);
    if !gps.is_empty() {
        patient["generalPractitioner"] = json!(gps.iter().map(reference).collect::<Vec<_>>());
    }

    let mut resources = vec![patient, encounter];
    if correction.is_none() {
        let ids: Vec<&str> = gps.iter().map(id_of).collect();
        name_pcps(&mut resources[1], &ids);
    }
    resources.extend(gps);
    resources.extend(extra);
    let targets: Vec<Value> = resources.iter().map(reference).collect();
    let msh_type = format!("ADT^{}", h.event);
    resources.push(json!({
        "resourceType": "Provenance",
        // Time-ordered (UUIDv7, as the server gives any created resource): each
        // message's Provenance is new, and ids in the order they are made put a
        // group commit's Provenance rows side by side in every B-tree keyed by id,
        // not each on a page of its own (README "The Provenance's id and the
        // readers' page cache"). A resend is told by its receipt, not by this id.
        "id": crate::store::executor::new_id(),
        "target": targets,
        "recorded": now,
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": h.event}]},
        "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]},
                   "who": {"display": sender}}],
        "entity": [{"role": "source", "what": {
            "identifier": {"system": format!("urn:handoff:v2:message:{}", sender.replace(['|', ' '], "-")), "value": h.control_id},
            "display": format!("{msh_type} message {}", h.control_id)}}]
    }));
    Ok(Mapped {
        resources,
        correction,
    })
}

/// `first`, the message mapped with no stored visit, as [`map`] would have mapped it
/// over `stored`: only the Encounter depends on what is stored (the Patient, the
/// PCPs, the practitioners, places and conditions the message names, and the
/// Provenance's targets do not), so only the Encounter is mapped again. Not for A11
/// and A13, which cannot be mapped without the stored visit.
pub fn over_stored(
    mut first: Mapped,
    msg: &Message,
    h: &Header,
    k: &Keys,
    stored: &Value,
) -> Result<Mapped, Rejection> {
    let mut e = encounter(msg, h, k, Some(stored), &mut Vec::new())?;
    let gps: Vec<&str> = first.resources[0]["generalPractitioner"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["reference"].as_str()?.strip_prefix("Practitioner/"))
        .collect();
    name_pcps(&mut e, &gps);
    first.resources[1] = e;
    Ok(first)
}

/// The Encounter names the message's PCPs (their Practitioner ids) too (participant
/// PP, in place of those it named), so subscriptions filtered by practitioner reach
/// the PCP. None named: the Encounter's stay.
fn name_pcps(e: &mut Value, gps: &[&str]) {
    if gps.is_empty() {
        return;
    }
    let parts = e["participant"].as_array().cloned().unwrap_or_default();
    let mut parts: Vec<Value> = parts
        .into_iter()
        .filter(|p| !p.to_string().contains(PROVIDER_ROLE))
        .collect();
    for g in gps {
        parts.push(participant(PROVIDER_ROLE, "PP", g));
    }
    e["participant"] = json!(parts);
}

/// The Encounter an A01, A02, A03, A04 or A08 says, laid over the stored one.
fn encounter(
    msg: &Message,
    h: &Header,
    k: &Keys,
    stored: Option<&Value>,
    extra: &mut Vec<Value>,
) -> Result<Value, Rejection> {
    let d = &msg.delims;
    let sender = h.sender();
    let pv1 = msg.segment("PV1").expect("keys() checked PV1");
    let mut e = stored.cloned().unwrap_or_else(|| json!({}));
    e["resourceType"] = json!("Encounter");
    e["id"] = json!(k.encounter);
    if let Some(m) = e.get_mut("meta").and_then(Value::as_object_mut) {
        m.remove("versionId");
        m.remove("lastUpdated");
        if m.is_empty() {
            e.as_object_mut().expect("an object").remove("meta");
        }
    }
    let visit = pv1.first(d, 19).expect("keys() checked PV1-19");
    e["identifier"] = json!([{
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]},
        "system": system_uri(&visit, 4, &sender),
        "value": visit.get(1).unwrap_or_default()}]);
    if pv1.value(d, 2, 1).is_some() || stored.is_none() {
        e["class"] = class(pv1.value(d, 2, 1));
    }
    e["subject"] = json!({"reference": format!("Patient/{}", k.patient)});

    let start = match time_field(msg, "PV1", 44, "admit date/time")? {
        Some(t) => Some(t),
        None if matches!(h.event.as_str(), "A01" | "A04") => time_field(
            msg,
            "EVN",
            6,
            "event occurred",
        )?
        .or(time_field(msg, "EVN", 2, "recorded date/time")?),
        None => None,
    };
    let mut end = time_field(msg, "PV1", 45, "discharge date/time")?;
    if end.is_none() && h.event == "A03" {
        end = time_field(msg, "EVN", 6, "event occurred")?.or(time_field(
            msg,
            "EVN",
            2,
            "recorded date/time",
        )?);
        if end.is_none() {
            return Err(Rejection::ae(
                err::REQUIRED_FIELD_MISSING,
                "PV1",
                45,
                "PV1-45 (discharge date/time) is missing, and EVN-6/EVN-2 give no time: a discharge needs an end",
            ));
        }
    }
    if start.is_some() || end.is_some() {
        let mut period = e["period"].as_object().cloned().unwrap_or_default();
        if let Some(s) = start {
            period.insert("start".into(), json!(s));
        }
        if let Some(t) = &end {
            period.insert("end".into(), json!(t));
        }
        e["period"] = Value::Object(period);
    }
    let prior = stored.and_then(|s| s["status"].as_str()).map(str::to_owned);
    e["status"] = json!(match h.event.as_str() {
        "A03" => "finished".to_owned(),
        "A08" => match (end.is_some(), prior) {
            (true, _) => "finished".to_owned(),
            (false, Some(p)) => p,
            (false, None) => "in-progress".to_owned(),
        },
        _ if end.is_some() => "finished".to_owned(),
        _ => "in-progress".to_owned(),
    });

    // Hospitalization: discharge disposition (PV1-36), destination (PV1-37), admit
    // source (PV1-14).
    let mut hosp = e["hospitalization"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(c) = pv1.value(d, 36, 1) {
        hosp.insert(
            "dischargeDisposition".into(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0112", "code": c}]}),
        );
    }
    if let Some(dest) = pv1
        .first(d, 37)
        .and_then(|r| people::destination(&r, &sender))
    {
        hosp.insert("destination".into(), reference(&dest));
        extra.push(dest);
    }
    if let Some(c) = pv1.value(d, 14, 1) {
        hosp.insert(
            "admitSource".into(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0023", "code": c}]}),
        );
    }
    if !hosp.is_empty() {
        e["hospitalization"] = Value::Object(hosp);
    }

    // Locations: the assigned one (PV1-3) active and first; the prior one (PV1-6) completed.
    let current = pv1.first(d, 3).and_then(|r| people::location(&r, &sender));
    let prior_loc = pv1.first(d, 6).and_then(|r| people::location(&r, &sender));
    if current.is_some() || prior_loc.is_some() {
        let mut locs = Vec::new();
        if let Some(l) = current {
            locs.push(json!({"location": reference(&l), "status": "active"}));
            extra.push(l);
        }
        if let Some(l) = prior_loc {
            if !locs.iter().any(|x| x["location"] == reference(&l)) {
                locs.push(json!({"location": reference(&l), "status": "completed"}));
                extra.push(l);
            }
        }
        e["location"] = json!(locs);
    }

    // The hospital: the assigned location's facility, else PV1-39, else MSH-4.
    let facility = pv1
        .first(d, 3)
        .and_then(|r| r.sub(4, 1).or_else(|| r.sub(4, 2)))
        .map(|name| people::organization_named(&name))
        .or_else(|| pv1.first(d, 39).and_then(|r| people::organization(&r)))
        .or_else(|| {
            msg.segment("MSH")
                .and_then(|m| m.first(d, 4))
                .and_then(|r| people::organization(&r))
        });
    if let Some(org) = facility {
        e["serviceProvider"] = reference(&org);
        extra.push(org);
    }

    // Participants: attending (PV1-7), referring (PV1-8), consulting (PV1-9),
    // admitting (PV1-17); a PCP participant (PP) stays as stored unless the message
    // names one (see map()).
    let mut parts: Vec<Value> = e["participant"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p.to_string().contains(PROVIDER_ROLE))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut named = false;
    for (field, code) in [(7, "ATND"), (8, "REF"), (9, "CON"), (17, "ADM")] {
        for r in pv1.reps(d, field) {
            if let Some(p) = people::practitioner(&r, &sender) {
                parts.push(participant(PARTICIPATION, code, id_of(&p)));
                extra.push(p);
                named = true;
            }
        }
    }
    if named || stored.is_none() {
        if parts.is_empty() {
            if let Some(o) = e.as_object_mut() {
                o.remove("participant");
            }
        } else {
            e["participant"] = json!(parts);
        }
    }

    // Diagnoses (DG1): one Condition each, keyed by the visit and the code.
    let mut diagnoses = Vec::new();
    for dg1 in msg.all("DG1") {
        let Some(code) = dg1.first(d, 3) else {
            continue;
        };
        let Some(value) = code.get(1).or_else(|| code.get(2)) else {
            continue;
        };
        let system = match code
            .get(3)
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("I10") | Some("I10C") | Some("ICD10") => "http://hl7.org/fhir/sid/icd-10-cm",
            Some("I9") | Some("I9C") => "http://hl7.org/fhir/sid/icd-9-cm",
            Some("SCT") | Some("SNM") => "http://snomed.info/sct",
            _ => "urn:handoff:v2:diagnosis-code",
        };
        let mut coding = json!({"system": system, "code": value});
        if let Some(t) = code.get(2) {
            coding["display"] = json!(t);
        }
        let mut c = json!({
            "resourceType": "Condition",
            "id": stable_id("Condition", &[&k.encounter, system, &value]),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
            "code": {"coding": [coding]},
            "subject": {"reference": format!("Patient/{}", k.patient)},
            "encounter": {"reference": format!("Encounter/{}", k.encounter)},
        });
        if let Some(t) = code.get(2).or_else(|| dg1.value(d, 4, 1)) {
            c["code"]["text"] = json!(t);
        }
        if let Some(t) = dg1.value(d, 5, 1).and_then(|v| super::adt::timestamp(&v)) {
            c["onsetDateTime"] = json!(t);
        }
        let mut entry = json!({"condition": reference(&c)});
        match dg1.value(d, 6, 1).as_deref() {
            Some("A") => {
                entry["use"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/diagnosis-role", "code": "AD"}]})
            }
            Some("F") => {
                entry["use"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/diagnosis-role", "code": "DD"}]})
            }
            _ => {}
        }
        if let Some(rank) = dg1
            .value(d, 15, 1)
            .and_then(|r| r.parse::<u32>().ok())
            .filter(|r| *r > 0)
        {
            entry["rank"] = json!(rank);
        }
        diagnoses.push(entry);
        extra.push(c);
    }
    if !diagnoses.is_empty() {
        e["diagnosis"] = json!(diagnoses);
    }

    // PV2-3 admit reason as reasonCode.
    if let Some(pv2) = msg.segment("PV2") {
        if let Some(r) = pv2.first(d, 3) {
            if let Some(text) = r.get(2).or_else(|| r.get(1)) {
                e["reasonCode"] = json!([{"text": text}]);
            }
        }
    }
    Ok(e)
}
