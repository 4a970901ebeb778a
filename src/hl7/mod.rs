//! HL7 v2 ADT over MLLP (issue #7): hospitals' interface engines send admissions,
//! transfers and discharges; the gateway stores them as FHIR through the same write
//! path as a FHIR client (records, events and notifications follow) and answers each
//! with an ACK after the commit. Behaviour and the mapping table: docs/hl7.md.
//!
//! Layout: [`codec`] (MLLP framing), [`message`] (parsing, escapes), [`adt`] (the
//! header and v2 data types), [`people`] and [`map`] (v2 -> FHIR), [`ack`], [`apply`]
//! (one message in, one ACK out), [`known`] (what it last saw stored), [`listener`]
//! (the TCP server), [`tls`] (its TLS), [`send`] (a sender).

pub mod ack;
pub mod adt;
pub mod apply;
pub mod codec;
pub mod known;
pub mod listener;
pub mod map;
pub mod message;
pub mod people;
pub mod send;
#[cfg(test)]
mod tests;
pub mod tls;
