//! Integration tests: the real server on a random port, over HTTP, on SQLite and on
//! PostgreSQL (see helpers.rs). One binary, so the crate links once.

mod helpers;

mod accountability;
mod andrews;
mod bad_input;
mod batches;
mod bundle;
mod claim_plan;
mod consent;
mod consent_support;
mod crud;
mod davinci;
mod event_log;
mod examples;
mod faults;
mod guards;
mod handoff_support;
mod hl7;
mod hl7_provenance;
mod hl7_shutdown;
mod hl7_stored;
mod hl7_tls;
mod internal_api;
mod migrations;
mod operations;
mod process;
mod profiles;
mod reads;
mod receiver;
mod records;
mod retention;
mod search;
mod search_mechanics;
mod subscription_ops;
mod subscriptions;
mod tls;
mod xml;
