//! HL7 v2 ADT over MLLP end to end: a real TCP connection to the gateway's listener,
//! on SQLite and PostgreSQL. ACK content, what is stored (read back over FHIR), the
//! domain events, a discharge notification delivered to a real local subscriber, a
//! resend applied once, corrections (A11, A13), A08 coalescing, and malformed input.

use std::time::Duration;

use handoff::hl7::send::{ack_code, Client};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_with, Backend, TestApp};
use crate::hl7_stored::send_at_once;
use crate::receiver::Receiver;
use crate::subscriptions::subscription;
use crate::test_both;

test_both!(
    an_adt_feed_is_stored_and_acked,
    an_update_naming_no_pcp_keeps_it_and_rewrites_nothing_unchanged,
    a_discharge_reaches_the_pcp_and_its_cancellation_follows,
    a_resend_is_applied_once_and_answered_alike,
    copies_racing_on_several_connections_are_applied_once,
    repeated_a08s_raise_one_change_event,
    a11_cancels_an_admission,
    malformed_messages_store_nothing,
    garbage_and_truncated_frames,
);

pub fn fixture(name: &str) -> String {
    let p = format!("{}/fixtures/hl7/{name}", env!("CARGO_MANIFEST_DIR"));
    String::from_utf8(std::fs::read(p).unwrap()).unwrap()
}

/// The A01 fixture as event `event` with control id `control`.
pub fn a01_as(event: &str, control: &str) -> String {
    fixture("a01-v23-lf.hl7")
        .replace("ADT^A01", &format!("ADT^{event}"))
        .replace("EVN|A01", &format!("EVN|{event}"))
        .replace("MSG-A01-0001", control)
}

pub async fn client(app: &TestApp) -> Client {
    Client::connect(app.mllp.as_deref().expect("the MLLP listener runs"))
        .await
        .unwrap()
}

pub async fn send(app: &TestApp, msg: &str) -> String {
    client(app).await.send(msg.as_bytes()).await.unwrap()
}

pub fn segment<'a>(ack: &'a str, id: &str) -> &'a str {
    ack.split('\r').find(|s| s.starts_with(id)).unwrap_or("")
}

pub fn assert_aa(ack: &str, control: &str) {
    assert_eq!(segment(ack, "MSA"), format!("MSA|AA|{control}"), "{ack}");
}

/// The one Encounter with visit number V1001.
pub async fn visit(app: &TestApp) -> Value {
    let b = app.search("Encounter?identifier=V1001").await;
    assert_eq!(b["total"], 1, "{b}");
    b["entry"][0]["resource"].clone()
}

fn count(names: &[String], event: &str) -> usize {
    names.iter().filter(|n| *n == event).count()
}

async fn an_adt_feed_is_stored_and_acked(app: TestApp) {
    let ack = send(&app, &fixture("a01-v23-lf.hl7")).await;
    assert_aa(&ack, "MSG-A01-0001");
    let msh = segment(&ack, "MSH");
    assert!(msh.contains("|HANDOFF|HANDOFF|EPICADT|GENHOSP|"), "{msh}");
    assert!(msh.contains("|ACK^A01^ACK|"), "{msh}");

    let enc = visit(&app).await;
    assert_eq!(enc["status"], "in-progress");
    assert_eq!(enc["class"]["code"], "IMP");
    assert_eq!(enc["period"]["start"], "2026-11-23T08:00:00Z");
    let patient_ref = enc["subject"]["reference"].as_str().unwrap().to_owned();
    let patient: Value = app.get(&patient_ref).await.json().await.unwrap();
    assert_eq!(patient["name"][0]["family"], "DOE");
    assert_eq!(patient["birthDate"], "1965-04-12");
    assert!(patient["generalPractitioner"][0]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Practitioner/"));
    let by_mrn = app.search("Patient?identifier=MRN12345").await;
    assert_eq!(by_mrn["total"], 1);
    let enc_ref = format!("Encounter/{}", enc["id"].as_str().unwrap());
    let conditions = app.search(&format!("Condition?encounter={enc_ref}")).await;
    assert_eq!(conditions["total"], 1, "{conditions}");
    let prov = app.search(&format!("Provenance?target={enc_ref}")).await;
    assert_eq!(prov["total"], 1, "{prov}");
    assert_eq!(
        prov["entry"][0]["resource"]["entity"][0]["what"]["identifier"]["value"],
        "MSG-A01-0001"
    );
    assert_eq!(app.event_names().await, ["PatientAdmitted"]);

    // The v2.8 A08 (BOM, CR, escapes) moves the patient to another bed: a transfer.
    let ack = send(&app, &fixture("a08-v28-bom.hl7")).await;
    assert_aa(&ack, "MSG-A08-0001");
    let patient: Value = app.get(&patient_ref).await.json().await.unwrap();
    assert_eq!(patient["name"][0]["family"], "O^BRIEN");
    assert_eq!(patient["name"][0]["given"][0], "JANE&ANN");
    // The v2.5.1 A03 (CRLF, ROL) discharges.
    let ack = send(&app, &fixture("a03-v251-crlf.hl7")).await;
    assert_aa(&ack, "MSG-A03-0001");
    let enc = visit(&app).await;
    assert_eq!(enc["status"], "finished");
    assert_eq!(enc["period"]["end"], "2026-11-27T14:00:00-05:00");
    assert_eq!(
        enc["hospitalization"]["dischargeDisposition"]["coding"][0]["code"],
        "01"
    );
    assert_eq!(
        app.event_names().await,
        ["PatientAdmitted", "PatientTransferred", "PatientDischarged"]
    );
    // An emergency registration without PD1 or ROL: another visit and patient.
    let ack = send(&app, &fixture("a04-v251-no-pcp.hl7")).await;
    assert_aa(&ack, "MSG-A04-0001");
    assert_eq!(app.count("Encounter").await, 2);
    assert_eq!(app.count("Patient").await, 2);
}

/// An A08 without PD1 or ROL keeps the PCP stored; what it maps to unchanged (the
/// Patient, once the PCP is kept; the PCP) gets no new version.
async fn an_update_naming_no_pcp_keeps_it_and_rewrites_nothing_unchanged(app: TestApp) {
    assert_aa(
        &send(&app, &fixture("a01-v23-lf.hl7")).await,
        "MSG-A01-0001",
    );
    let patient_ref = visit(&app).await["subject"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let before: Value = app.get(&patient_ref).await.json().await.unwrap();
    let pcp = before["generalPractitioner"][0]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let a08 = a01_as("A08", "MSG-A08-NOPD1");
    let no_pd1: Vec<&str> = a08.lines().filter(|l| !l.starts_with("PD1|")).collect();
    assert_aa(&send(&app, &no_pd1.join("\r")).await, "MSG-A08-NOPD1");
    assert_eq!(visit(&app).await["meta"]["versionId"], "2");
    let after: Value = app.get(&patient_ref).await.json().await.unwrap();
    assert_eq!(after["generalPractitioner"][0]["reference"], pcp.as_str());
    assert_eq!(after["meta"]["versionId"], "1", "{after}");
    let gp: Value = app.get(&pcp).await.json().await.unwrap();
    assert_eq!(gp["meta"]["versionId"], "1", "{gp}");
}

async fn a_discharge_reaches_the_pcp_and_its_cancellation_follows(app: TestApp) {
    assert_aa(
        &send(&app, &fixture("a01-v23-lf.hl7")).await,
        "MSG-A01-0001",
    );
    let enc = visit(&app).await;
    let patient: Value = app
        .get(enc["subject"]["reference"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let pcp = patient["generalPractitioner"][0]["reference"]
        .as_str()
        .unwrap()
        .to_owned();

    let rx = Receiver::start().await;
    let filter = format!("Encounter?practitioner={pcp}");
    let sub = app
        .create(&subscription(
            "encounter-end",
            &[&filter],
            &rx.url,
            "full-resource",
        ))
        .await;
    rx.wait("the handshake", |h| !h.is_empty()).await;
    let sub_id = sub["id"].as_str().unwrap();
    for _ in 0..200 {
        let s: Value = app
            .get(&format!("Subscription/{sub_id}"))
            .await
            .json()
            .await
            .unwrap();
        if s["status"] == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_aa(
        &send(&app, &fixture("a03-v251-crlf.hl7")).await,
        "MSG-A03-0001",
    );
    let hits = rx
        .wait("the discharge notification", |h| {
            h.iter().any(|x| x.kind() == "event-notification")
        })
        .await;
    let n = hits
        .iter()
        .find(|h| h.kind() == "event-notification")
        .unwrap();
    let text = n.json.to_string();
    let enc_id = enc["id"].as_str().unwrap();
    assert!(text.contains(&format!("Encounter/{enc_id}")), "{text}");
    assert!(text.contains("\"status\":\"finished\""), "{text}");
    // The discharge handed the patient to the PCP the v2 message named (PD1/ROL): a
    // handoff Task owed by that PCP, as for a FHIR discharge (docs/accountability.md).
    let tasks = app
        .search(&format!("Task?focus=Encounter/{enc_id}&owner={pcp}"))
        .await;
    assert_eq!(tasks["total"], 1, "{tasks}");
    assert_eq!(tasks["entry"][0]["resource"]["status"], "requested");

    // An ordinary FHIR update cannot reopen the discharge ...
    let mut reopened = visit(&app).await;
    reopened["status"] = "in-progress".into();
    let r = app
        .put_json(&format!("Encounter/{enc_id}"), &reopened)
        .await;
    assert_eq!(r.status(), 409);
    // ... an A13 does, explicitly, and the subscriber hears of it.
    let a13 = fixture("a03-v251-crlf.hl7")
        .replace("ADT^A03^ADT_A03", "ADT^A13^ADT_A01")
        .replace("EVN|A03", "EVN|A13")
        .replace("MSG-A03-0001", "MSG-A13-0001");
    assert_aa(&send(&app, &a13).await, "MSG-A13-0001");
    let enc = visit(&app).await;
    assert_eq!(enc["status"], "in-progress");
    assert!(enc["period"].get("end").is_none(), "{enc}");
    let names = app.event_names().await;
    assert_eq!(count(&names, "DischargeCancelled"), 1, "{names:?}");
    // The handoff the discharge opened is withdrawn with it: the PCP owes nothing.
    let tasks = app
        .search(&format!("Task?focus=Encounter/{enc_id}&owner={pcp}"))
        .await;
    let task = &tasks["entry"][0]["resource"];
    assert_eq!(task["status"], "cancelled", "{task}");
    assert!(task["restriction"]["period"].get("end").is_none(), "{task}");
    assert!(
        task.to_string().contains("the discharge was cancelled"),
        "{task}"
    );
    let hits = rx
        .wait("the retraction", |h| {
            h.iter()
                .filter(|x| x.kind() == "event-notification")
                .count()
                >= 2
        })
        .await;
    let retraction = hits
        .iter()
        .filter(|h| h.kind() == "event-notification")
        .nth(1)
        .unwrap();
    assert_eq!(retraction.event_numbers(), [2]);
    assert!(retraction
        .json
        .to_string()
        .contains("\"status\":\"in-progress\""));
    // A second A13: there is no discharge to cancel any more.
    let again = a13.replace("MSG-A13-0001", "MSG-A13-0002");
    let ack = send(&app, &again).await;
    assert_eq!(ack_code(&ack), Some("AE"), "{ack}");
    assert!(
        segment(&ack, "MSA").contains("no discharge to cancel"),
        "{ack}"
    );
}

async fn a_resend_is_applied_once_and_answered_alike(app: TestApp) {
    let msg = fixture("a01-v23-lf.hl7");
    let first = send(&app, &msg).await;
    assert_aa(&first, "MSG-A01-0001");
    // Same connection and a new one: the same ACK, byte for byte.
    let mut c = client(&app).await;
    assert_eq!(c.send(msg.as_bytes()).await.unwrap(), first);
    assert_eq!(c.send(msg.as_bytes()).await.unwrap(), first);
    let enc = visit(&app).await;
    assert_eq!(enc["meta"]["versionId"], "1");
    assert_eq!(app.event_names().await, ["PatientAdmitted"]);
    assert_eq!(app.count("Provenance").await, 1);
    // The same control id from another sender is another message.
    let other = msg.replace("|EPICADT|GENHOSP|", "|OTHERADT|GENHOSP|");
    let other_ack = send(&app, &other).await;
    assert_aa(&other_ack, "MSG-A01-0001");
    assert_eq!(visit(&app).await["meta"]["versionId"], "2");
    // An AE is kept too: the resend gets the same refusal.
    let bad = msg
        .replace("MSG-A01-0001", "MSG-BAD-1")
        .replace("MRN12345^^^GENHOSP^MR~999-11-2222^^^SSA^SS", "");
    let ae = send(&app, &bad).await;
    assert_eq!(ack_code(&ae), Some("AE"));
    assert_eq!(send(&app, &bad).await, ae);
    // A resend after the visit moved on (discharged since: the admission would not
    // apply now) is still the message applied before: its first ACK, nothing written.
    assert_aa(
        &send(&app, &fixture("a03-v251-crlf.hl7")).await,
        "MSG-A03-0001",
    );
    let discharged = visit(&app).await;
    let events = app.event_names().await;
    assert_eq!(send(&app, &msg).await, first);
    assert_eq!(send(&app, &other).await, other_ack);
    assert_eq!(visit(&app).await, discharged);
    assert_eq!(app.event_names().await, events);
    assert_eq!(app.count("Provenance").await, 3);
}

/// An interface engine that times out and resends on new connections while the first
/// copy is still being applied: every copy gets the one ACK, the message is applied
/// once (one version, one event, one Provenance).
async fn copies_racing_on_several_connections_are_applied_once(app: TestApp) {
    let acks = send_at_once(&app, vec![fixture("a01-v23-lf.hl7"); 6]).await;
    assert_aa(&acks[0], "MSG-A01-0001");
    for a in &acks {
        assert_eq!(a, &acks[0], "every copy gets the same ACK");
    }
    assert_eq!(visit(&app).await["meta"]["versionId"], "1");
    assert_eq!(app.event_names().await, ["PatientAdmitted"]);
    assert_eq!(app.count("Provenance").await, 1);
}

mod receipts_past_retention {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        if let Some(app) = spawn_with(Backend::Sqlite, |s| s.hl7_receipt_retention_secs = 1).await {
            are_forgotten(app).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = spawn_with(Backend::Postgres, |s| s.hl7_receipt_retention_secs = 1).await
        {
            are_forgotten(app).await;
        }
    }

    /// A resend within the retention is answered from the receipt; once the receipt
    /// is pruned, the same message is applied anew.
    async fn are_forgotten(app: TestApp) {
        let msg = fixture("a01-v23-lf.hl7");
        let first = send(&app, &msg).await;
        assert_aa(&first, "MSG-A01-0001");
        assert_eq!(send(&app, &msg).await, first);
        assert_eq!(visit(&app).await["meta"]["versionId"], "1");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again = send(&app, &msg).await;
            assert_aa(&again, "MSG-A01-0001");
            if visit(&app).await["meta"]["versionId"] == "2" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the receipt was never pruned"
            );
        }
    }
}

async fn repeated_a08s_raise_one_change_event(app: TestApp) {
    assert_aa(&send(&app, &a01_as("A01", "C-1")).await, "C-1");
    let mut c = client(&app).await;
    for i in 2..=6 {
        let control = format!("C-{i}");
        let msg = a01_as("A08", &control).replace("ATT01^JONES", &format!("ATT0{i}^JONES"));
        let ack = c.send(msg.as_bytes()).await.unwrap();
        assert_aa(&ack, &control);
    }
    assert_eq!(visit(&app).await["meta"]["versionId"], "6");
    let names = app.event_names().await;
    assert_eq!(names, ["PatientAdmitted", "EncounterUpdated"], "{names:?}");
}

async fn a11_cancels_an_admission(app: TestApp) {
    // Nothing to cancel yet: AE naming PV1-19, nothing stored.
    let ack = send(&app, &a01_as("A11", "X-0")).await;
    assert_eq!(ack_code(&ack), Some("AE"), "{ack}");
    assert!(segment(&ack, "ERR").contains("|PV1^1^19|204^"), "{ack}");
    assert_eq!(app.count("Encounter").await, 0);

    assert_aa(&send(&app, &a01_as("A01", "X-1")).await, "X-1");
    assert_aa(&send(&app, &a01_as("A11", "X-2")).await, "X-2");
    assert_eq!(visit(&app).await["status"], "cancelled");
    assert_eq!(
        app.event_names().await,
        ["PatientAdmitted", "AdmissionCancelled"]
    );
}

async fn malformed_messages_store_nothing(app: TestApp) {
    let base = fixture("a01-v23-lf.hl7");
    // No MSH: AR, no control id to echo.
    let no_msh: String = base.lines().skip(1).collect::<Vec<_>>().join("\r");
    let ack = send(&app, &no_msh).await;
    assert_eq!(
        segment(&ack, "MSA"),
        "MSA|AR||the message does not start with an MSH segment"
    );
    assert!(
        segment(&ack, "ERR").contains("100^Segment sequence error"),
        "{ack}"
    );
    // Not ADT: AR.
    let ack = send(&app, &base.replace("ADT^A01", "ORU^R01")).await;
    assert_eq!(ack_code(&ack), Some("AR"), "{ack}");
    assert!(
        segment(&ack, "MSA").starts_with("MSA|AR|MSG-A01-0001|"),
        "{ack}"
    );
    // Understood but invalid: AE naming the field.
    let cases = [
        (
            base.replace("MRN12345^^^GENHOSP^MR~999-11-2222^^^SSA^SS", ""),
            "PID^1^3|101^",
        ),
        (base.replace("V1001^^^GENHOSP^VN", ""), "PV1^1^19|101^"),
        (base.replace("|19650412|", "|April 1965|"), "PID^1^7|102^"),
        (
            base.replace("|20261123080000\n", "|2026-11-23\n"),
            "PV1^1^44|102^",
        ),
    ];
    for (i, (msg, at)) in cases.iter().enumerate() {
        let msg = msg.replace("MSG-A01-0001", &format!("BAD-{i}"));
        let ack = send(&app, &msg).await;
        assert_eq!(ack_code(&ack), Some("AE"), "{ack}");
        assert!(
            segment(&ack, "MSA").starts_with(&format!("MSA|AE|BAD-{i}|")),
            "{ack}"
        );
        assert!(segment(&ack, "ERR").contains(at), "{at}: {ack}");
        assert!(!ack.contains("DOE"), "no PHI in the ACK: {ack}");
    }
    for t in [
        "Encounter",
        "Patient",
        "Practitioner",
        "Condition",
        "Provenance",
    ] {
        assert_eq!(app.count(t).await, 0, "{t}");
    }
    assert!(app.event_names().await.is_empty());
}

async fn garbage_and_truncated_frames(app: TestApp) {
    let addr = app.mllp.clone().unwrap();
    // A frame cut short by the sender closing: nothing stored, no ACK.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let msg = fixture("a01-v23-lf.hl7");
    let mut partial = vec![0x0B];
    partial.extend_from_slice(&msg.as_bytes()[..msg.len() / 2]);
    s.write_all(&partial).await.unwrap();
    s.shutdown().await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(buf.is_empty(), "no ACK for a truncated frame");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.count("Encounter").await, 0);

    // Garbage between frames is skipped; the whole frames around it are answered.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut wire = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    wire.extend(handoff::hl7::codec::frame(a01_as("A01", "G-1").as_bytes()));
    wire.extend(b"\x1c\r random \n");
    wire.extend(handoff::hl7::codec::frame(a01_as("A08", "G-2").as_bytes()));
    s.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.iter().filter(|&&b| b == 0x1C).count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("MSA|AA|G-1") && text.contains("MSA|AA|G-2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_gets_an_ar_and_a_closed_connection() {
    let app = spawn_with(Backend::Sqlite, |s| s.mllp_max_message_bytes = 2048)
        .await
        .unwrap();
    let mut s = TcpStream::connect(app.mllp.as_deref().unwrap())
        .await
        .unwrap();
    let big = a01_as("A01", "BIG-1").replace("ZXT|custom", &format!("ZXT|{}", "x".repeat(4096)));
    s.write_all(&handoff::hl7::codec::frame(big.as_bytes()))
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the connection is closed")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.contains("MSA|AR|"), "{text}");
    assert!(text.contains("longer than 2048 bytes"), "{text}");
    assert_eq!(app.count("Encounter").await, 0);
    // A message within the limit on a new connection is fine.
    let ok = send(&app, &a01_as("A01", "SMALL-1")).await;
    assert_aa(&ok, "SMALL-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_can_be_switched_off() {
    let app = spawn_with(Backend::Sqlite, |s| s.mllp_enabled = false)
        .await
        .unwrap();
    assert!(app.mllp.is_none());
}

/// `mllp_max_connections` = 1: a second connection waits for the slot (its message is
/// not answered), until `mllp_idle_timeout_secs` closes the silent first one; then it
/// is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_and_extra_ones_wait_for_a_slot() {
    let app = spawn_with(Backend::Sqlite, |s| {
        s.mllp_max_connections = 1;
        s.mllp_idle_timeout_secs = 2;
    })
    .await
    .unwrap();
    let addr = app.mllp.clone().unwrap();
    let started = std::time::Instant::now();
    let mut first = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let msg = a01_as("A01", "WAIT-1");
    let to = addr.clone();
    let second = tokio::spawn(async move {
        Client::connect(&to)
            .await
            .unwrap()
            .send(msg.as_bytes())
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    if started.elapsed() < Duration::from_millis(1500) {
        // (Only judged when this machine was quick enough to look before the idle
        // timeout could have freed the slot.)
        assert!(
            !second.is_finished(),
            "the second connection waits while the first holds the only slot"
        );
    }
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), first.read_to_end(&mut buf))
        .await
        .expect("the idle connection is closed by the gateway")
        .unwrap();
    assert_eq!(n, 0, "closed without a word");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the idle timeout"
    );
    let ack = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the waiting connection is served once the slot frees")
        .unwrap()
        .unwrap();
    assert_aa(&ack, "WAIT-1");
}
