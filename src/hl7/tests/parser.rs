use super::{fixture, FIXTURES};
use crate::hl7::ack::{self, AckCode, Answering};
use crate::hl7::adt::{header, timestamp};
use crate::hl7::message::{escape, unescape, Delimiters, Message, ParseError};

#[test]
fn every_fixture_parses_whatever_its_line_ends() {
    for f in FIXTURES {
        let m = Message::parse_bytes(&fixture(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(m.segments[0].id, "MSH", "{f}");
        assert!(
            m.segment("PID").is_some() && m.segment("PV1").is_some(),
            "{f}"
        );
        assert_eq!(
            m.value("PV1", 19, 1).as_deref().map(|v| v.starts_with('V')),
            Some(true),
            "{f}"
        );
        let h = header(&m).unwrap();
        assert_eq!(h.sending_facility, "GENHOSP", "{f}");
    }
    let a03 = Message::parse_bytes(&fixture("a03-v251-crlf.hl7")).unwrap();
    assert_eq!(a03.segments.len(), 8, "CRLF is one segment end, not two");
    assert_eq!(
        a03.value("PV1", 45, 1).as_deref(),
        Some("20261127140000-0500")
    );
}

#[test]
fn msh_fields_are_numbered_as_the_standard_does() {
    let m =
        Message::parse("MSH|^~\\&|APP|FAC|||20260101||ADT^A01^ADT_A01|CTRL1|P|2.5.1\r").unwrap();
    let msh = m.segment("MSH").unwrap();
    assert_eq!(msh.raw(1), "|");
    assert_eq!(msh.raw(2), "^~\\&");
    assert_eq!(m.value("MSH", 3, 1).as_deref(), Some("APP"));
    assert_eq!(m.value("MSH", 9, 2).as_deref(), Some("A01"));
    assert_eq!(m.value("MSH", 10, 1).as_deref(), Some("CTRL1"));
    let h = header(&m).unwrap();
    assert_eq!(
        (h.event.as_str(), h.control_id.as_str(), h.sender().as_str()),
        ("A01", "CTRL1", "APP|FAC")
    );
}

#[test]
fn declared_delimiters_are_used() {
    let m = Message::parse("MSH#*!?%#APP#FAC#####ADT*A08#C9#P#2.4\nPID#1##A1*B2!A3*B3##X?S?Y*Z")
        .unwrap();
    assert_eq!(m.delims.field, '#');
    assert_eq!(m.delims.component, '*');
    let pid = m.segment("PID").unwrap();
    let reps = pid.reps(&m.delims, 3);
    assert_eq!(reps.len(), 2);
    assert_eq!(reps[1].get(2).as_deref(), Some("B3"));
    assert_eq!(pid.value(&m.delims, 5, 1).as_deref(), Some("X*Y"));
    assert_eq!(header(&m).unwrap().event, "A08");
}

#[test]
fn escapes_resolve() {
    let d = Delimiters::default();
    assert_eq!(
        unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", &d),
        "a|b^c&d~e\\f"
    );
    assert_eq!(unescape("J\\X41\\NE", &d), "JANE");
    assert_eq!(unescape("caf\\XC3A9\\", &d), "café");
    assert_eq!(
        unescape("line\\.br\\two\\H\\bold\\N\\", &d),
        "line\ntwobold"
    );
    // Unknown or unterminated: kept as sent.
    assert_eq!(unescape("a\\Q\\b", &d), "a\\Q\\b");
    assert_eq!(unescape("tail\\F", &d), "tail\\F");
    assert_eq!(unescape("\\X4\\", &d), "\\X4\\");
    for s in ["plain", "a|b^c&d~e\\f", "two\nlines"] {
        let back = unescape(&escape(s, &d), &d);
        assert_eq!(back, s.replace('\n', " "));
    }
}

#[test]
fn the_bom_fixture_reads_its_escaped_name() {
    let m = Message::parse_bytes(&fixture("a08-v28-bom.hl7")).unwrap();
    let pid = m.segment("PID").unwrap();
    let name = pid.first(&m.delims, 5).unwrap();
    assert_eq!(name.get(1).as_deref(), Some("O^BRIEN"));
    assert_eq!(name.get(2).as_deref(), Some("JANE&ANN"));
    assert_eq!(name.get(3).as_deref(), Some("Q|R"));
    assert_eq!(
        m.value("PD1", 3, 1).as_deref(),
        Some("FAMILY \\ FRIENDS CLINIC")
    );
    assert!(m.segment("ZPI").is_some(), "Z segments are kept");
}

#[test]
fn latin1_bytes_are_read() {
    let mut b = b"MSH|^~\\&|A|B|||20260101||ADT^A08|1|P|2.3\rPID|1||X||M".to_vec();
    b.push(0xFC); // ü in Latin-1
    b.extend(b"LLER");
    let m = Message::parse_bytes(&b).unwrap();
    assert_eq!(m.value("PID", 5, 1).as_deref(), Some("M\u{fc}LLER"));
}

#[test]
fn unreadable_messages_are_errors() {
    assert_eq!(Message::parse(""), Err(ParseError::Empty));
    assert_eq!(Message::parse("\r\n\r\n"), Err(ParseError::Empty));
    assert_eq!(Message::parse("PID|1||X"), Err(ParseError::NoMsh));
    assert_eq!(Message::parse("MSH"), Err(ParseError::BadDelimiters));
    assert_eq!(Message::parse("MSH|"), Err(ParseError::BadDelimiters));
    assert_eq!(
        Message::parse("MSH|^^\\&|A"),
        Err(ParseError::BadDelimiters)
    );
    assert_eq!(Message::parse("MSHA^~\\&"), Err(ParseError::BadDelimiters));
    assert_eq!(
        Message::parse("MSH|^~\\&|A\rTOOLONG|x"),
        Err(ParseError::BadSegment(2))
    );
}

#[test]
fn headers_are_checked() {
    let parse = |s: &str| header(&Message::parse(s).unwrap());
    let r = parse("MSH|^~\\&|A|B|||1||ADT^A01|||2.5").unwrap_err();
    assert_eq!(
        (r.code, r.location().as_deref()),
        (AckCode::AR, Some("MSH-10"))
    );
    let r = parse("MSH|^~\\&|A|B|||1||ORU^R01|C1|P|2.5").unwrap_err();
    assert_eq!((r.code, r.error), (AckCode::AR, 200));
    let r = parse("MSH|^~\\&|A|B|||1||ADT^A99|C1|P|2.5").unwrap_err();
    assert_eq!((r.code, r.error), (AckCode::AR, 201));
    let r = parse("MSH|^~\\&|A|B|||1||ADT^A01|C1|P|3.0").unwrap_err();
    assert_eq!(r.error, 203);
    // v2.3 without MSH-9.2: the event from EVN-1.
    assert_eq!(
        parse("MSH|^~\\&|A|B|||1||ADT|C1|P|2.3\rEVN|A03")
            .unwrap()
            .event,
        "A03"
    );
}

#[test]
fn timestamps_become_fhir_datetimes() {
    assert_eq!(timestamp("20261123").as_deref(), Some("2026-11-23"));
    assert_eq!(timestamp("202611").as_deref(), Some("2026-11"));
    assert_eq!(
        timestamp("2026112308").as_deref(),
        Some("2026-11-23T08:00:00Z")
    );
    assert_eq!(
        timestamp("20261123083015").as_deref(),
        Some("2026-11-23T08:30:15Z")
    );
    assert_eq!(
        timestamp("20261123083015.123-0500").as_deref(),
        Some("2026-11-23T08:30:15.123-05:00")
    );
    for bad in [
        "",
        "2026-11-23",
        "20261323",
        "20260230",
        "202611230860",
        "2026112308301",
        "20261123083015+05",
        "abc",
    ] {
        assert_eq!(timestamp(bad), None, "{bad}");
    }
}

#[test]
fn acks_echo_the_control_id_and_name_the_field() {
    let m = Message::parse_bytes(&fixture("a01-v23-lf.hl7")).unwrap();
    let to = Answering::from_message(Some(&m));
    let now = chrono::Utc::now();
    let aa = ack::build(&to, &m.delims, Ok(()), now);
    let segs: Vec<&str> = aa.split('\r').filter(|s| !s.is_empty()).collect();
    assert_eq!(segs.len(), 2);
    assert!(
        segs[0].starts_with("MSH|^~\\&|HANDOFF|HANDOFF|EPICADT|GENHOSP|"),
        "{aa}"
    );
    assert!(segs[0].contains("|ACK^A01^ACK|"), "{aa}");
    assert!(segs[0].ends_with("|P|2.3"), "{aa}");
    assert_eq!(segs[1], "MSA|AA|MSG-A01-0001");
    let r = ack::Rejection::ae(
        101,
        "PID",
        3,
        "PID-3 (patient identifier list) has no identifier",
    );
    let ae = ack::build(&to, &m.delims, Err(&r), now);
    assert!(ae.contains("\rMSA|AE|MSG-A01-0001|PID-3 (patient"), "{ae}");
    assert!(
        ae.contains("\rERR||PID^1^3|101^Required field missing^HL70357|E|"),
        "{ae}"
    );
    let parsed = Message::parse(&ae).unwrap();
    assert_eq!(parsed.value("MSA", 1, 1).as_deref(), Some("AE"));
    assert_eq!(parsed.value("ERR", 2, 1).as_deref(), Some("PID"));
}
