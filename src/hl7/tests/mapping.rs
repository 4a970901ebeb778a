use serde_json::Value;

use super::{fixture, FIXTURES};
use crate::fhir::validate::validate;
use crate::hl7::ack::AckCode;
use crate::hl7::adt::header;
use crate::hl7::map::{keys, map, over_stored};
use crate::hl7::message::Message;
use crate::store::Correction;

const NOW: &str = "2026-11-30T00:00:00Z";

fn mapped(name: &str, stored: Option<&Value>) -> Vec<Value> {
    let m = Message::parse_bytes(&fixture(name)).unwrap();
    let h = header(&m).unwrap();
    let k = keys(&m, &h).unwrap();
    map(&m, &h, &k, stored, NOW).unwrap().resources
}

fn of<'a>(rs: &'a [Value], t: &str) -> Vec<&'a Value> {
    rs.iter().filter(|r| r["resourceType"] == t).collect()
}

#[test]
fn every_fixture_maps_to_valid_r4() {
    for f in FIXTURES {
        for r in mapped(f, None) {
            let errors: Vec<_> = validate(&r).into_iter().filter(|i| i.is_error()).collect();
            assert!(errors.is_empty(), "{f}: {} {errors:?}", r["resourceType"]);
        }
    }
}

#[test]
fn one_visit_one_encounter_one_patient_across_messages() {
    let a01 = mapped("a01-v23-lf.hl7", None);
    let a03 = mapped("a03-v251-crlf.hl7", None);
    let a08 = mapped("a08-v28-bom.hl7", None);
    let id = |rs: &[Value], t: &str| of(rs, t)[0]["id"].clone();
    assert_eq!(id(&a01, "Encounter"), id(&a03, "Encounter"));
    assert_eq!(id(&a01, "Encounter"), id(&a08, "Encounter"));
    assert_eq!(id(&a01, "Patient"), id(&a03, "Patient"));
    let a04 = mapped("a04-v251-no-pcp.hl7", None);
    assert_ne!(id(&a01, "Encounter"), id(&a04, "Encounter"));
    assert_ne!(id(&a01, "Patient"), id(&a04, "Patient"));
    // The same PCP from PD1-4 (A01) and from ROL PP (A03).
    assert_eq!(
        of(&a01, "Patient")[0]["generalPractitioner"],
        of(&a03, "Patient")[0]["generalPractitioner"]
    );
}

#[test]
fn the_admission_maps_per_the_ig() {
    let rs = mapped("a01-v23-lf.hl7", None);
    let e = of(&rs, "Encounter")[0];
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["class"]["code"], "IMP");
    assert_eq!(e["identifier"][0]["type"]["coding"][0]["code"], "VN");
    assert_eq!(e["identifier"][0]["value"], "V1001");
    assert_eq!(e["period"]["start"], "2026-11-23T08:00:00Z");
    assert!(e["period"].get("end").is_none());
    let codes: Vec<&str> = e["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"][0]["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ATND", "REF", "PP"]);
    assert!(e["serviceProvider"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Organization/"));
    assert_eq!(e["location"][0]["status"], "active");
    assert!(e["diagnosis"][0]["condition"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Condition/"));
    let p = of(&rs, "Patient")[0];
    assert_eq!(p["identifier"].as_array().unwrap().len(), 2);
    assert_eq!(p["birthDate"], "1965-04-12");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["name"][0]["family"], "DOE");
    assert_eq!(p["address"][0]["city"], "SPRINGFIELD");
    let c = of(&rs, "Condition")[0];
    assert_eq!(
        c["code"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/icd-10-cm"
    );
    assert_eq!(c["code"]["coding"][0]["code"], "I21.4");
    let prov = of(&rs, "Provenance")[0];
    assert_eq!(
        prov["entity"][0]["what"]["identifier"]["value"],
        "MSG-A01-0001"
    );
    assert_eq!(prov["activity"]["coding"][0]["code"], "A01");
    assert_eq!(prov["target"].as_array().unwrap().len(), rs.len() - 1);
}

/// Provenance ids sort in the order the messages were mapped (so a group commit's
/// Provenance rows share B-tree pages), and a message mapped again gets a new one.
#[test]
fn provenance_ids_follow_the_order_messages_are_mapped() {
    let ids: Vec<String> = (0..50)
        .map(|_| {
            let rs = mapped("a08-v28-bom.hl7", None);
            of(&rs, "Provenance")[0]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids neither distinct nor in the order made");
}

#[test]
fn the_discharge_carries_end_disposition_and_destination() {
    let rs = mapped("a03-v251-crlf.hl7", None);
    let e = of(&rs, "Encounter")[0];
    assert_eq!(e["status"], "finished");
    assert_eq!(e["period"]["end"], "2026-11-27T14:00:00-05:00");
    assert_eq!(
        e["hospitalization"]["dischargeDisposition"]["coding"][0]["code"],
        "01"
    );
    let dest = e["hospitalization"]["destination"]["reference"]
        .as_str()
        .unwrap();
    assert!(of(&rs, "Location")
        .iter()
        .any(|l| format!("Location/{}", l["id"].as_str().unwrap()) == dest));
    assert_eq!(
        of(&rs, "Condition")[0]["encounter"]["reference"],
        format!("Encounter/{}", e["id"].as_str().unwrap())
    );
}

#[test]
fn an_update_keeps_what_it_does_not_say() {
    let a03 = mapped("a03-v251-crlf.hl7", None);
    let stored = of(&a03, "Encounter")[0].clone();
    let a08 = mapped("a08-v28-bom.hl7", Some(&stored));
    let e = of(&a08, "Encounter")[0];
    assert_eq!(e["status"], "finished", "A08 does not reopen a discharge");
    assert_eq!(e["period"]["end"], stored["period"]["end"]);
    assert_eq!(
        e["hospitalization"]["dischargeDisposition"],
        stored["hospitalization"]["dischargeDisposition"]
    );
    let p = of(&a08, "Patient")[0];
    assert_eq!(p["name"][0]["family"], "O^BRIEN");
}

/// The message mapped once without the visit and then laid over it is the message
/// mapped over the visit (what `apply` does instead of mapping twice), for every
/// fixture over the visit each fixture leaves stored; only the Provenance's id, new
/// at each mapping, differs.
#[test]
fn laid_over_the_stored_visit_is_mapped_over_it() {
    let without_provenance_id = |mut rs: Vec<Value>| {
        for r in rs.iter_mut().filter(|r| r["resourceType"] == "Provenance") {
            r["id"] = Value::Null;
        }
        rs
    };
    for before in FIXTURES {
        let mut stored = of(&mapped(before, None), "Encounter")[0].clone();
        stored["meta"] = serde_json::json!({"versionId": "3", "lastUpdated": NOW});
        for f in FIXTURES {
            let m = Message::parse_bytes(&fixture(f)).unwrap();
            let h = header(&m).unwrap();
            let k = keys(&m, &h).unwrap();
            let first = map(&m, &h, &k, None, NOW).unwrap();
            let laid = over_stored(first, &m, &h, &k, &stored).unwrap().resources;
            let direct = map(&m, &h, &k, Some(&stored), NOW).unwrap().resources;
            assert_eq!(
                without_provenance_id(laid),
                without_provenance_id(direct),
                "{f} over {before}"
            );
        }
    }
}

#[test]
fn no_pcp_means_no_general_practitioner() {
    let rs = mapped("a04-v251-no-pcp.hl7", None);
    assert!(of(&rs, "Patient")[0].get("generalPractitioner").is_none());
    let e = of(&rs, "Encounter")[0];
    assert_eq!(e["class"]["code"], "EMER");
    assert_eq!(e["status"], "in-progress");
}

#[test]
fn cancellations_change_the_stored_encounter() {
    let a03 = mapped("a03-v251-crlf.hl7", None);
    let stored = of(&a03, "Encounter")[0].clone();
    let text = String::from_utf8(fixture("a03-v251-crlf.hl7"))
        .unwrap()
        .replace("ADT^A03^ADT_A03", "ADT^A13^ADT_A01");
    let m = Message::parse(&text).unwrap();
    let h = header(&m).unwrap();
    let k = keys(&m, &h).unwrap();
    let out = map(&m, &h, &k, Some(&stored), NOW).unwrap();
    assert_eq!(out.correction, Some(Correction::CancelDischarge));
    let e = of(&out.resources, "Encounter")[0];
    assert_eq!(e["status"], "in-progress");
    assert!(e["period"].get("end").is_none());
    assert!(e["hospitalization"].get("dischargeDisposition").is_none());
    assert!(
        validate(e).iter().all(|i| !i.is_error()),
        "no empty objects: {e}"
    );
    // Nothing stored to cancel: AE naming PV1-19.
    let r = map(&m, &h, &k, None, NOW).unwrap_err();
    assert_eq!(
        (r.code, r.location().as_deref()),
        (AckCode::AE, Some("PV1-19"))
    );
    let a11 = Message::parse(&text.replace("ADT^A13", "ADT^A11")).unwrap();
    let h = header(&a11).unwrap();
    let out = map(&a11, &h, &k, Some(&stored), NOW).unwrap();
    assert_eq!(out.correction, Some(Correction::CancelAdmit));
    assert_eq!(of(&out.resources, "Encounter")[0]["status"], "cancelled");
}

#[test]
fn invalid_content_is_refused_naming_the_field() {
    let base = String::from_utf8(fixture("a01-v23-lf.hl7")).unwrap();
    let check = |text: String, at: &str| {
        let m = Message::parse(&text).unwrap();
        let h = header(&m).unwrap();
        let r = keys(&m, &h)
            .and_then(|k| map(&m, &h, &k, None, NOW).map(|_| ()))
            .unwrap_err();
        assert_eq!(
            (r.code, r.location().as_deref()),
            (AckCode::AE, Some(at)),
            "{}",
            r.text
        );
        assert!(!r.text.contains("DOE"), "no PHI in the error: {}", r.text);
    };
    check(
        base.replace("MRN12345^^^GENHOSP^MR~999-11-2222^^^SSA^SS", ""),
        "PID-3",
    );
    check(base.replace("V1001^^^GENHOSP^VN", ""), "PV1-19");
    check(base.replace("|19650412|", "|1965-04-12|"), "PID-7");
    check(base.replace("|20261123080000\n", "|2026112399\n"), "PV1-44");
    let no_pid: String = base
        .lines()
        .filter(|l| !l.starts_with("PID"))
        .collect::<Vec<_>>()
        .join("\r");
    check(no_pid, "PID-3");
    let a03 = base
        .replace("ADT^A01", "ADT^A03")
        .replace("EVN|A01|20261123083000", "EVN|A03");
    check(a03, "PV1-45");
}
