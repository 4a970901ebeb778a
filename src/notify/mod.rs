//! Subscriptions and notification delivery (issue #4): the pure parts.
//!
//! - [`bundle`]: notification Bundles and `$status` answers as the Subscriptions
//!   Backport IG (STU 1.1, R4 form) profiles them.
//! - [`davinci`]: Da Vinci Unsolicited Notifications message Bundles (the `message`
//!   channel), and reading inbound messages for `$process-message`, with its response.
//! - [`sign`]: webhook signatures in the Standard Webhooks style (HMAC-SHA256 over
//!   `{id}.{timestamp}.{body}`); receivers read `docs/webhooks.md`.
//! - [`ssrf`]: which subscriber endpoints the gateway may call, and the addresses to
//!   pin the connection to.
//!
//! - [`worker`]: the delivery loop: claims due outbox rows (`store::outbox`), sends
//!   them signed, retries, dead-letters.
//!
//! Only the worker touches the store and the network (beyond a DNS lookup).

pub mod bundle;
pub mod davinci;
pub mod sign;
pub mod ssrf;
pub mod withhold;
pub mod worker;
