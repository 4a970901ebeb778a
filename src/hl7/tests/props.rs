use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::{fixture, FIXTURES};
use crate::hl7::adt::header;
use crate::hl7::codec::MllpCodec;
use crate::hl7::map::{keys, map};
use crate::hl7::message::Message;

/// Everything the parser, the header check and the mapping do with one input.
fn exercise(bytes: &[u8]) {
    if let Ok(m) = Message::parse_bytes(bytes) {
        let _ = crate::hl7::ack::Answering::from_message(Some(&m));
        if let Ok(h) = header(&m) {
            if let Ok(k) = keys(&m, &h) {
                let _ = map(&m, &h, &k, None, "2026-01-01T00:00:00Z");
            }
        }
    }
    let mut c = MllpCodec::new(256);
    let mut buf = BytesMut::from(bytes);
    for _ in 0..bytes.len() + 1 {
        match c.decode(&mut buf) {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = FIXTURES.iter().map(|f| fixture(f)).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                out.push(b);
            }
        }
    }
    out
}

#[test]
fn the_corpus_never_panics() {
    let corpus = corpus();
    assert!(corpus.len() >= FIXTURES.len());
    for b in &corpus {
        exercise(b);
        // Every prefix too: truncated messages.
        for cut in (0..b.len()).step_by(7) {
            exercise(&b[..cut]);
        }
    }
}

fn hl7ish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::collection::vec(
        prop_oneof![
            Just(b"MSH|^~\\&|".to_vec()),
            Just(b"|".to_vec()),
            Just(b"^".to_vec()),
            Just(b"~".to_vec()),
            Just(b"&".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"\\X".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"ADT^A01".to_vec()),
            Just(b"PID|1||".to_vec()),
            Just(b"PV1|1|I|".to_vec()),
            Just(vec![0x0B]),
            Just(vec![0x1C, 0x0D]),
            Just("\u{feff}".as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..60,
    );
    pieces.prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&b);
    }

    #[test]
    fn hl7_like_input_never_panics(b in hl7ish()) {
        exercise(&b);
    }

    #[test]
    fn mutated_fixtures_never_panic(i in 0usize..4, at in any::<prop::sample::Index>(), with in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut b = fixture(FIXTURES[i]);
        let n = at.index(b.len());
        b[n] = with;
        let end = cut.index(b.len() + 1);
        exercise(&b[..end.max(n.min(b.len()))]);
    }
}
