//! v2 people, places and organizations as FHIR resources: XCN -> Practitioner, HD ->
//! Organization, PL -> Location, PID -> Patient (v2-to-FHIR IG segment maps, the
//! elements the gateway keeps).

use serde_json::{json, Map, Value};

use super::adt::{stable_id, system_uri, timestamp};
use super::message::{Message, Rep, Segment};

/// A Practitioner from an XCN (id^family^given^middle^suffix^prefix^degree^^authority),
/// None when it names no one.
pub fn practitioner(rep: &Rep<'_>, sender: &str) -> Option<Value> {
    let ident = rep.get(1);
    let family = rep.sub(2, 1);
    let given: Vec<String> = [rep.get(3), rep.get(4)].into_iter().flatten().collect();
    if ident.is_none() && family.is_none() && given.is_empty() {
        return None;
    }
    let id = match &ident {
        Some(i) => stable_id("Practitioner", &[&super::adt::authority(rep, 9, sender), i]),
        None => stable_id(
            "Practitioner",
            &[sender, family.as_deref().unwrap_or(""), &given.join(" ")],
        ),
    };
    let mut p = json!({"resourceType": "Practitioner", "id": id});
    if let Some(i) = ident {
        p["identifier"] = json!([{"system": system_uri(rep, 9, sender), "value": i}]);
    }
    if let Some(name) = human_name(rep, 2) {
        p["name"] = json!([name]);
    }
    Some(p)
}

/// A HumanName from the name part of an XPN (`first` = 1: family^given^middle^suffix
/// ^prefix) or an XCN (`first` = 2, after the id); None when it has no part.
fn human_name(rep: &Rep<'_>, first: usize) -> Option<Value> {
    let mut n = Map::new();
    if let Some(f) = rep.sub(first, 1) {
        n.insert("family".into(), json!(f));
    }
    let given: Vec<String> = [rep.get(first + 1), rep.get(first + 2)]
        .into_iter()
        .flatten()
        .collect();
    if !given.is_empty() {
        n.insert("given".into(), json!(given));
    }
    if let Some(s) = rep.get(first + 3) {
        n.insert("suffix".into(), json!([s]));
    }
    if let Some(s) = rep.get(first + 4) {
        n.insert("prefix".into(), json!([s]));
    }
    (!n.is_empty()).then_some(Value::Object(n))
}

/// An Organization for a facility (HD: namespace^universal id^type).
pub fn organization(rep: &Rep<'_>) -> Option<Value> {
    let name = rep.get(1).or_else(|| rep.get(2))?;
    let mut o = organization_named(&name);
    if let (Some(uid), Some(kind)) = (rep.get(2), rep.get(3)) {
        if kind.eq_ignore_ascii_case("ISO") {
            o["identifier"]
                .as_array_mut()
                .expect("array")
                .push(json!({"system": "urn:ietf:rfc:3986", "value": format!("urn:oid:{uid}")}));
        }
    }
    Some(o)
}

/// An Organization for a facility known by name (namespace id) only.
pub fn organization_named(name: &str) -> Value {
    let id = stable_id("Organization", &[name]);
    json!({"resourceType": "Organization", "id": id, "name": name,
        "identifier": [{"system": "urn:handoff:v2:facility", "value": name}]})
}

/// A Location for a PL (point of care^room^bed^facility^...^building^floor^description).
pub fn location(rep: &Rep<'_>, sender: &str) -> Option<Value> {
    let parts: Vec<String> = [1, 2, 3]
        .iter()
        .filter_map(|&c| rep.component_text(c))
        .collect();
    let facility = rep.sub(4, 1).unwrap_or_else(|| sender.to_owned());
    let name = match (parts.is_empty(), rep.get(9)) {
        (false, _) => parts.join(" "),
        (true, Some(desc)) => desc,
        (true, None) => return None,
    };
    let id = stable_id("Location", &[&facility, &parts.join("\u{1f}"), &name]);
    let mut l = json!({"resourceType": "Location", "id": id, "name": name, "mode": "instance",
        "status": "active"});
    if let Some(d) = rep.get(9) {
        l["description"] = json!(d);
    }
    Some(l)
}

/// A Location for a discharge destination (DLD: location code^effective date).
pub fn destination(rep: &Rep<'_>, sender: &str) -> Option<Value> {
    let code = rep.component_text(1)?;
    let id = stable_id("Location", &[sender, "destination", &code]);
    Some(
        json!({"resourceType": "Location", "id": id, "name": code, "mode": "kind",
        "status": "active"}),
    )
}

fn gender(code: Option<String>) -> Option<&'static str> {
    Some(match code?.to_ascii_uppercase().as_str() {
        "M" => "male",
        "F" => "female",
        "O" | "A" | "N" => "other",
        "U" => "unknown",
        _ => return None,
    })
}

/// The Patient from PID (identifiers, names, birth date, gender, address, telecom,
/// death). `id` is the stable id chosen from PID-3.
pub fn patient(msg: &Message, pid: &Segment, id: &str, sender: &str) -> Result<Value, String> {
    let d = &msg.delims;
    let mut p = json!({"resourceType": "Patient", "id": id});
    let identifiers: Vec<Value> = pid
        .reps(d, 3)
        .iter()
        .filter_map(|r| {
            let value = r.get(1)?;
            let mut i = json!({"value": value, "system": system_uri(r, 4, sender)});
            if let Some(t) = r.get(5) {
                i["type"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": t}]});
            }
            Some(i)
        })
        .collect();
    p["identifier"] = json!(identifiers);
    let names: Vec<Value> = pid
        .reps(d, 5)
        .iter()
        .filter_map(|r| human_name(r, 1))
        .collect();
    if !names.is_empty() {
        p["name"] = json!(names);
    }
    if let Some(b) = pid.value(d, 7, 1) {
        let t = timestamp(&b).ok_or("PID-7 (date of birth) is not a valid date")?;
        p["birthDate"] = json!(t.get(..10).unwrap_or(&t));
    }
    if let Some(g) = gender(pid.value(d, 8, 1)) {
        p["gender"] = json!(g);
    }
    let addresses: Vec<Value> = pid
        .reps(d, 11)
        .iter()
        .filter_map(|r| {
            let mut a = Map::new();
            let lines: Vec<String> = [r.get(1), r.get(2)].into_iter().flatten().collect();
            if !lines.is_empty() {
                a.insert("line".into(), json!(lines));
            }
            for (c, k) in [(3, "city"), (4, "state"), (5, "postalCode"), (6, "country")] {
                if let Some(v) = r.get(c) {
                    a.insert(k.into(), json!(v));
                }
            }
            (!a.is_empty()).then_some(Value::Object(a))
        })
        .collect();
    if !addresses.is_empty() {
        p["address"] = json!(addresses);
    }
    let phones: Vec<Value> = pid
        .reps(d, 13)
        .iter()
        .filter_map(|r| {
            // v2.5+ sends the number in XTN-12 (or email in XTN-4); older ones in XTN-1.
            if let Some(mail) = r.get(4).filter(|_| r.get(3).as_deref() == Some("Internet")) {
                return Some(json!({"system": "email", "value": mail}));
            }
            let number = r.get(12).or_else(|| r.get(1))?;
            Some(json!({"system": "phone", "value": number, "use": "home"}))
        })
        .collect();
    if !phones.is_empty() {
        p["telecom"] = json!(phones);
    }
    if let Some(t) = pid.value(d, 29, 1) {
        let t = timestamp(&t).ok_or("PID-29 (death date and time) is not a valid timestamp")?;
        p["deceasedDateTime"] = json!(t);
    } else if let Some(flag) = pid.value(d, 30, 1) {
        p["deceasedBoolean"] = json!(flag.eq_ignore_ascii_case("Y"));
    }
    Ok(p)
}
