use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::hl7::codec::{frame, MllpCodec, MllpError};

fn decode_all(codec: &mut MllpCodec, buf: &mut BytesMut) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(f) = codec.decode(buf).unwrap() {
        out.push(f.to_vec());
    }
    out
}

#[test]
fn a_frame_round_trips() {
    let mut c = MllpCodec::new(1024);
    let mut buf = BytesMut::new();
    c.encode(b"MSH|x".as_slice(), &mut buf).unwrap();
    assert_eq!(&buf[..], &[0x0B, b'M', b'S', b'H', b'|', b'x', 0x1C, 0x0D]);
    assert_eq!(decode_all(&mut c, &mut buf), vec![b"MSH|x".to_vec()]);
    assert!(buf.is_empty());
}

#[test]
fn frames_arrive_in_pieces_and_several_at_once() {
    let mut c = MllpCodec::new(1024);
    let mut wire = frame(b"one");
    wire.extend(frame(b"two"));
    wire.extend(frame(b"three"));
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    // One byte at a time: the end marker split across reads included.
    for b in wire {
        buf.extend_from_slice(&[b]);
        got.extend(decode_all(&mut c, &mut buf));
    }
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn garbage_between_frames_is_skipped() {
    let mut c = MllpCodec::new(1024);
    let mut wire = b"noise\r\n".to_vec();
    wire.extend(frame(b"a"));
    wire.extend(b"\x1c\rjunk");
    wire.extend(frame(b"b"));
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(
        decode_all(&mut c, &mut buf),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert!(c.skipped >= 7 + 6);
}

#[test]
fn a_frame_cut_short_by_a_new_start_is_dropped() {
    let mut c = MllpCodec::new(1024);
    let mut wire = b"\x0bMSH|trunc".to_vec();
    wire.extend(frame(b"MSH|whole"));
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(decode_all(&mut c, &mut buf), vec![b"MSH|whole".to_vec()]);
}

#[test]
fn an_end_byte_without_cr_is_content() {
    let mut c = MllpCodec::new(1024);
    let mut buf = BytesMut::from(&b"\x0bab\x1ccd\x1c\r"[..]);
    assert_eq!(decode_all(&mut c, &mut buf), vec![b"ab\x1ccd".to_vec()]);
}

#[test]
fn an_oversized_frame_is_an_error() {
    let mut c = MllpCodec::new(16);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x0B]);
    buf.extend_from_slice(&[b'x'; 40]);
    assert!(matches!(c.decode(&mut buf), Err(MllpError::TooLong(16))));
    // Whole but too long, arriving at once: an error too.
    let mut c = MllpCodec::new(16);
    let mut buf = BytesMut::from(&frame(&[b'z'; 17])[..]);
    assert!(matches!(c.decode(&mut buf), Err(MllpError::TooLong(16))));
    // At the limit it is fine.
    let mut c = MllpCodec::new(16);
    let mut buf = BytesMut::from(&frame(&[b'y'; 16])[..]);
    assert_eq!(decode_all(&mut c, &mut buf), vec![vec![b'y'; 16]]);
}
