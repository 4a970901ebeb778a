//! Unit tests of the HL7 v2 pieces: codec, parser, header, mapping, ACKs, and a
//! property test that no input (arbitrary bytes, the fixtures, the fuzz corpus) makes
//! the parser or the codec panic.

mod codec;
mod mapping;
mod parser;
mod props;

use std::path::PathBuf;

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hl7")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub const FIXTURES: [&str; 4] = [
    "a01-v23-lf.hl7",
    "a03-v251-crlf.hl7",
    "a08-v28-bom.hl7",
    "a04-v251-no-pcp.hl7",
];
