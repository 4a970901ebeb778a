//! Whatever bytes arrive: the MLLP codec, the parser, the header check and the ADT
//! mapping must answer (an error is fine) and never panic.
#![no_main]

use bytes::BytesMut;
use handoff::hl7::{adt, codec::MllpCodec, map, message::Message};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse_bytes(data) {
        if let Ok(h) = adt::header(&m) {
            if let Ok(k) = map::keys(&m, &h) {
                let _ = map::map(&m, &h, &k, None, "2026-01-01T00:00:00Z");
            }
        }
    }
    let mut codec = MllpCodec::new(4096);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
