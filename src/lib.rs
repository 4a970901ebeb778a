//! handoff: a care-coordination gateway.
//!
//! Layout (see the README for the full map):
//! - [`config`]: typed settings; [`telemetry`]: logging without patient data.
//! - [`startup`]: builds the application (store, HTTP server) and runs it.
//! - [`api`]: thin actix-web handlers for the FHIR REST API.
//! - [`auth`]: API clients, their bearer tokens and what each may see.
//! - [`fhir`]: the FHIR R4 boundary: formats, validation, OperationOutcome, search.
//! - [`records`]: coordination records (referral, transition, care plan, consent)
//!   and their translation to and from FHIR.
//! - [`consent`]: the consent decision (issue #5): may this recipient receive these
//!   data about this patient for this purpose now (pure; rules in docs/consent.md).
//! - [`handoffs`]: responsibility that travels with information (issue #6): handoff
//!   Tasks, deadlines, escalation (rules in docs/accountability.md).
//! - [`store`]: the storage trait and its SQLite and PostgreSQL backends.
//! - [`notify`]: notification delivery: Bundles, webhook signatures, the subscriber
//!   endpoint policy, the delivery worker.
//! - [`topics`]: the SubscriptionTopics the gateway offers and Backport-profile
//!   Subscriptions read against them (issue #4).
//! - [`bench`]: the `handoff bench` load generator.

pub mod api;
pub mod auth;
pub mod bench;
pub mod config;
pub mod consent;
pub mod fhir;
pub mod handoffs;
pub mod hl7;
pub mod notify;
pub mod records;
pub mod retention;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod topics;
