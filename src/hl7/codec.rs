//! MLLP framing: `0x0B` message `0x1C 0x0D`, as a tokio codec.
//!
//! Bytes outside a frame (garbage between frames, stray line ends) are skipped. A frame
//! longer than the limit is an error ([`MllpError::TooLong`]): the listener answers it
//! with an AR and closes the connection, since the rest of the frame cannot be trusted.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub const START: u8 = 0x0B;
pub const END: u8 = 0x1C;
pub const CR: u8 = 0x0D;

#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    #[error("an MLLP frame exceeds {0} bytes")]
    TooLong(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct MllpCodec {
    max_len: usize,
    /// Bytes of the current frame's content already searched for the end marker.
    scanned: usize,
    /// Bytes skipped before a start byte since the last frame (for a log line).
    pub skipped: usize,
}

impl MllpCodec {
    pub fn new(max_len: usize) -> Self {
        MllpCodec {
            max_len,
            scanned: 0,
            skipped: 0,
        }
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = MllpError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        // Find the start of a frame, dropping whatever comes before it.
        match buf.iter().position(|&b| b == START) {
            Some(0) => {}
            Some(n) => {
                self.skipped += n;
                buf.advance(n);
                self.scanned = 0;
            }
            None => {
                self.skipped += buf.len();
                buf.clear();
                self.scanned = 0;
                return Ok(None);
            }
        }
        // buf[0] is START; look for END CR after what was already scanned.
        let from = 1 + self.scanned;
        let mut i = from;
        while i + 1 < buf.len() {
            if buf[i] == END && buf[i + 1] == CR {
                let frame = buf.split_to(i + 2);
                self.scanned = 0;
                if i - 1 > self.max_len {
                    return Err(MllpError::TooLong(self.max_len));
                }
                return Ok(Some(Bytes::copy_from_slice(&frame[1..i])));
            }
            if buf[i] == START {
                // A new frame started before this one ended: the earlier one was
                // truncated; drop it and read the new one.
                self.skipped += i;
                buf.advance(i);
                self.scanned = 0;
                return self.decode(buf);
            }
            i += 1;
        }
        self.scanned = buf.len().saturating_sub(2);
        if buf.len() > self.max_len + 3 {
            return Err(MllpError::TooLong(self.max_len));
        }
        Ok(None)
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, msg: T, dst: &mut BytesMut) -> Result<(), MllpError> {
        let msg = msg.as_ref();
        dst.reserve(msg.len() + 3);
        dst.put_u8(START);
        dst.put_slice(msg);
        dst.put_u8(END);
        dst.put_u8(CR);
        Ok(())
    }
}

/// One message framed (for senders and tests).
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 3);
    out.push(START);
    out.extend_from_slice(msg);
    out.push(END);
    out.push(CR);
    out
}
