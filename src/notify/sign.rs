//! Webhook signatures in the Standard Webhooks style, so a subscriber can check that a
//! notification came from this gateway, unaltered, and is not a replay.
//!
//! Each POST carries `webhook-id` (the same on every retry of one notification),
//! `webhook-timestamp` (unix seconds) and `webhook-signature`: `v1,` followed by the
//! base64 HMAC-SHA256, keyed with the subscription's secret, of
//! `{webhook-id}.{webhook-timestamp}.{body}`. Several space-separated signatures may
//! stand in the header (while a secret is rotated); one matching is enough.
//! Secrets are 32 random bytes written `whsec_` + base64. Receivers: `docs/webhooks.md`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[cfg(test)]
mod tests;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// How a secret is written: this prefix, then the key in standard base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// The values of the three headers for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub id: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// `v1,<base64 HMAC-SHA256>`.
    pub signature: String,
}

impl Signed {
    /// `(name, value)` of the three headers, ready for a request builder.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the webhook timestamp is outside the accepted window around the current time")]
    TimestampOutOfTolerance,
    #[error("the webhook-signature header holds no v1 signature")]
    NoSignature,
    #[error("no v1 signature in the webhook-signature header matches the body")]
    Mismatch,
}

/// Sign `body` for delivery `webhook_id` at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> Signed {
    let tag = mac(secret, webhook_id, timestamp, body)
        .finalize()
        .into_bytes();
    Signed {
        id: webhook_id.to_owned(),
        timestamp,
        signature: format!("v1,{}", STANDARD.encode(tag)),
    }
}

/// Check a received signature header: the timestamp within `tolerance_secs` of `now`
/// (both unix seconds), then any `v1,` signature in the space-separated `header`
/// matching, compared in constant time. Other versions (`v1a,…`) are skipped.
pub fn verify(
    secret: &[u8],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    if now.abs_diff(timestamp) > tolerance_secs.max(0).unsigned_abs() {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let expected = mac(secret, webhook_id, timestamp, body);
    let mut any = false;
    for candidate in header.split_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        any = true;
        let Ok(tag) = STANDARD.decode(encoded) else {
            continue;
        };
        // verify_slice compares in constant time (and refuses a wrong length).
        if expected.clone().verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(if any {
        VerifyError::Mismatch
    } else {
        VerifyError::NoSignature
    })
}

/// A new secret: 32 bytes from the operating system's generator, `whsec_` + base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    // Only fails when the OS has no random source at all; no secret is better than a
    // guessable one, and this is never reached from request input.
    getrandom::fill(&mut key).expect("the operating system's random number generator failed");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key of a secret written `whsec_` + base64 (the prefix may be left off;
/// surrounding whitespace is ignored). `None` when it is not base64 or is empty.
pub fn decode_secret(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let encoded = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
    STANDARD.decode(encoded).ok().filter(|key| !key.is_empty())
}

/// HMAC-SHA256 over `{id}.{timestamp}.` + body.
fn mac(secret: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed): this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}
