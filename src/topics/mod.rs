//! Topic-based subscriptions (issue #4), the pure part: what a subscriber can ask for
//! and how the gateway reads the asking.
//!
//! - [`catalog`]: the gateway's canonical SubscriptionTopics (admission, transfer,
//!   discharge, referral request and status, care plan and consent changes), the
//!   domain events that trigger each, the filters each allows and how a filter is
//!   evaluated against a coordination record, and each topic as the R4 `Basic`
//!   resource the Subscriptions Backport IG defines.
//! - [`subscription`]: an R4 Subscription read against the Backport profile and the
//!   catalog into a [`subscription::SubscriptionSpec`], or every problem found as an
//!   OperationOutcome issue naming its element.
//!
//! Storage, matching, delivery and the HTTP handlers build on these; nothing here does
//! I/O. The topics, filters and the subscription format are described for subscribers
//! in docs/topics.md.

pub mod catalog;
pub mod subscription;
