use serde_json::{json, Value};

use super::samples::*;
use super::*;

fn full_urls(b: &Value) -> Vec<String> {
    let entries = b["entry"].as_array().unwrap();
    entries[1..]
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
        .collect()
}

fn urls(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| format!("{BASE}/{k}")).collect()
}

#[test]
fn admit_discharge_transfer_and_referral_are_valid_r4_shaped_as_the_ig_says() {
    let admit = event("Encounter/enc-2", {
        let mut r = discharge_event().resources;
        r[0] = encounter("enc-2", "in-progress", "Location/ward-5");
        r
    });
    let transfer = event("Encounter/enc-2", {
        let mut r = admit.resources.clone();
        r[0] = encounter("enc-2", "in-progress", "Location/icu-2");
        r
    });
    let cases = [
        (
            "notification-admit",
            admit,
            Some("admit-notification-messageheader"),
        ),
        (
            "notification-discharge",
            discharge_event(),
            Some("discharge-notification-messageheader"),
        ),
        (
            "notification-transfer",
            transfer,
            Some("transfer-notification-messageheader"),
        ),
        ("notification-referral", referral_event(), None),
    ];
    for (code, event, profile) in cases {
        let b = message_bundle(&ctx(code), &event).unwrap();
        assert_valid(&b);
        assert_eq!(b["type"], "message");
        assert_eq!(b["meta"]["profile"], json!([BUNDLE_PROFILE]));
        assert!(b["id"].is_string() && b["timestamp"].is_string());
        let h = &b["entry"][0]["resource"];
        let mut profiles = vec![HEADER_PROFILE.to_owned()];
        profiles.extend(profile.map(|p| format!("{PROFILE_BASE}{p}")));
        assert_eq!(h["meta"]["profile"], json!(profiles), "{code}");
        assert_eq!(
            b["entry"][0]["fullUrl"],
            format!("urn:uuid:{}", h["id"].as_str().unwrap())
        );
        assert_eq!(h["eventCoding"]["system"], DAVINCI_EVENT_SYSTEM);
        assert_eq!(h["eventCoding"]["code"], code);
        assert_eq!(h["source"]["endpoint"], BASE);
        assert_eq!(h["destination"][0]["endpoint"], PRACTICE);
        assert_eq!(
            h["destination"][0]["receiver"]["reference"],
            format!("{BASE}/Practitioner/pcp-lee")
        );
        assert_eq!(h["focus"], json!([{"reference": b["entry"][1]["fullUrl"]}]));
        assert_eq!(
            h["focus"][0]["reference"],
            format!("{BASE}/{}", event.focus.unwrap())
        );
        for e in b["entry"].as_array().unwrap()[1..].iter() {
            let r = &e["resource"];
            let url = format!(
                "{BASE}/{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert_eq!(e["fullUrl"], url);
            assert!(e.get("request").is_none() && e.get("response").is_none());
        }
    }
}

#[test]
fn the_entries_are_what_links_to_the_focus_breadth_first() {
    let mut event = discharge_event();
    event
        .resources
        .push(organization("other-lab", "Unrelated Lab"));
    event.resources.push(patient()); // a second copy: one entry
    let b = message_bundle(&ctx("notification-discharge"), &event).unwrap();
    let expected = [
        "Encounter/enc-1",
        "Patient/p1",
        "Practitioner/dr-okafor",
        "Organization/riverside",
        "Organization/oakview-snf",
        "Practitioner/pcp-lee", // the Patient's generalPractitioner
    ];
    assert_eq!(full_urls(&b), urls(&expected));
    assert_eq!(b["entry"][1]["resource"], event.resources[0]); // bodies as they are

    // The referral's Task points at the ServiceRequest: it travels too.
    let b = message_bundle(&ctx("notification-referral"), &referral_event()).unwrap();
    let expected = [
        "ServiceRequest/referral-1",
        "Patient/p1",
        "Practitioner/dr-okafor",
        "Organization/heart-clinic",
        "Task/task-1",
        "Organization/riverside", // the sender, linked only through the MessageHeader
    ];
    assert_eq!(full_urls(&b), urls(&expected));
}

#[test]
fn sender_and_responsible_are_set_only_when_they_travel() {
    let b = message_bundle(&ctx("notification-discharge"), &discharge_event()).unwrap();
    let h = &b["entry"][0]["resource"];
    assert_eq!(
        h["sender"]["reference"],
        format!("{BASE}/Organization/riverside")
    );
    assert_eq!(
        h["responsible"]["reference"],
        format!("{BASE}/Practitioner/dr-okafor")
    );

    let mut c = ctx("notification-discharge");
    c.sender = Some("Organization/not-in-event");
    c.responsible = Some("Patient/p1"); // not a type R4 allows there
    c.destination_receiver = Some("Patient/p1");
    let b = message_bundle(&c, &discharge_event()).unwrap();
    assert_valid(&b);
    let h = &b["entry"][0]["resource"];
    assert!(h.get("sender").is_none() && h.get("responsible").is_none());
    assert_eq!(h["destination"], json!([{ "endpoint": PRACTICE }]));

    c.destination_receiver = Some("https://practice.example.org/fhir/Organization/main");
    let b = message_bundle(&c, &discharge_event()).unwrap();
    let receiver = &b["entry"][0]["resource"]["destination"][0]["receiver"];
    assert_eq!(
        receiver["reference"],
        "https://practice.example.org/fhir/Organization/main"
    );
}

#[test]
fn refuses_what_the_ig_cannot_carry() {
    let discharge = ctx("notification-discharge");
    let mut no_focus = discharge_event();
    no_focus.focus = None;
    let mut no_body = discharge_event();
    no_body.resources.remove(0);
    let mut no_patient = discharge_event();
    no_patient.resources.remove(1);
    let mut bad_endpoint = ctx("notification-discharge");
    bad_endpoint.destination_endpoint = "not a url";
    let cases = [
        (
            ctx("notification-nonsense"),
            discharge_event(),
            "code system",
        ),
        (bad_endpoint, discharge_event(), "must be URLs"),
        (discharge, no_focus, "no focus"),
        (discharge, no_body, "body is not in the event"),
        (discharge, no_patient, "subject Patient"),
        (discharge, referral_event(), "must be an Encounter"),
    ];
    for (c, event, says) in cases {
        let err = message_bundle(&c, &event).unwrap_err();
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn the_fixtures_are_what_is_sent() {
    let cases = [
        (
            "notification-discharge",
            discharge_event(),
            include_str!("../../../fixtures/davinci/discharge-notification.json"),
        ),
        (
            "notification-referral",
            referral_event(),
            include_str!("../../../fixtures/davinci/referral-notification.json"),
        ),
    ];
    for (code, event, fixture) in cases {
        let expected: Value = serde_json::from_str(fixture).unwrap();
        assert_valid(&expected);
        let b = with_fixture_ids(message_bundle(&ctx(code), &event).unwrap());
        // As text, so that the order of elements is compared too.
        assert_eq!(b.to_string(), expected.to_string(), "{code}");
    }
}
