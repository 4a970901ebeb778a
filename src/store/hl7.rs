//! HL7 v2 messages in the write path: a [`Receipt`] travels with the ops a message
//! maps to, in the same commit. It records the message (sender, MSH-10) with the ACK
//! sent, so a resend is answered from the store and applied once; it may carry a
//! correction (A11 cancels an admission, A13 a discharge), which the records layer
//! applies to that one Encounter instead of the ordinary lifecycle rules; and it may
//! ask for A08 coalescing: an update raises `EncounterUpdated` unless one was raised
//! for the same encounter within the window.

use super::executor::Tx;
use super::sql::{Bind, Sql};
use super::StoreError;
pub use crate::records::lifecycle::Correction;

pub const SELECT_ACK: &str = "SELECT ack FROM hl7_messages WHERE sender = $1 AND control_id = $2";
const INSERT: &str = "INSERT INTO hl7_messages (sender, control_id, ack_code, ack, received) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sender, control_id) DO NOTHING";
/// The message of a [`StoreError::Conflict`] raised when the message was applied before.
pub const ALREADY_APPLIED: &str = "This HL7 message (sender, MSH-10) was applied before";

#[derive(Debug, Clone)]
pub struct Receipt {
    /// `MSH-3|MSH-4`.
    pub sender: String,
    /// MSH-10.
    pub control_id: String,
    /// AA or AE.
    pub ack_code: String,
    /// The ACK sent, returned again on a resend.
    pub ack: String,
    /// The Encounter the message is about (the correction applies to it only).
    pub encounter: Option<String>,
    pub correction: Option<Correction>,
    /// A08: raise `EncounterUpdated` only when none was raised for the encounter in
    /// this many microseconds.
    pub coalesce_micros: Option<i64>,
}

/// Record the message; a second one with the same key fails the whole commit with
/// [`ALREADY_APPLIED`].
pub async fn save<T: Tx>(tx: &mut T, r: &Receipt, now: i64) -> Result<(), StoreError> {
    // Counted, not `RETURNING`: on SQLite that would journal the statement.
    let inserted = tx
        .exec(&Sql::with(
            INSERT,
            vec![
                Bind::Text(r.sender.clone()),
                Bind::Text(r.control_id.clone()),
                Bind::Text(r.ack_code.clone()),
                Bind::Text(r.ack.clone()),
                Bind::Int(now),
            ],
        ))
        .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(ALREADY_APPLIED.into()));
    }
    Ok(())
}

/// Forget at most `limit` receipts received before `before`: the number forgotten.
pub async fn prune<T: Tx>(tx: &mut T, before: i64, limit: i64) -> Result<usize, StoreError> {
    let rows = tx
        .fetch_rows(&Sql::with(
            "DELETE FROM hl7_messages WHERE (sender, control_id) IN \
             (SELECT sender, control_id FROM hl7_messages WHERE received < $1 LIMIT $2) \
             RETURNING sender",
            vec![Bind::Int(before), Bind::Int(limit)],
        ))
        .await?;
    Ok(rows.len())
}
