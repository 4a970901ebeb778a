//! Reading the domain event log (`GET /api/v1/events`) without ever skipping an event.
//!
//! On SQLite one writer commits in `seq` order, so "after `seq`" is a safe place to
//! resume. On PostgreSQL it is not: concurrent transactions take `seq` numbers in one
//! order and commit in another, so a reader that saw 11 committed and resumed after it
//! would never see 10, committed a moment later. There each row also records its
//! writing transaction (`tx`, an `xid8`), the log is read in `(tx, seq)` order, and only
//! rows whose transaction is older than every transaction still running
//! (`pg_snapshot_xmin`) are handed out: any event committed later belongs to a
//! transaction that was running or not yet begun, so it sorts after the cursor.
//! Rows past that horizon are *held back*, not lost; the caller may wait for them.

use std::fmt;

use serde_json::Value;

use super::sql::{Bind, Sql};
use crate::records::RecordKind;

/// Where a reader of the log stands: after event `seq`, written by transaction `tx`
/// (PostgreSQL; 0 on SQLite, and for a plain event number given by a client).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCursor {
    pub tx: i64,
    pub seq: i64,
}

impl EventCursor {
    /// `SEQ` (an event number, 0 for the start) or `TX:SEQ` (what `next` gave).
    pub fn parse(s: &str) -> Option<Self> {
        let num = |t: &str| t.parse::<i64>().ok().filter(|n| *n >= 0);
        match s.split_once(':') {
            None => Some(EventCursor {
                tx: 0,
                seq: num(s)?,
            }),
            Some((tx, seq)) => Some(EventCursor {
                tx: num(tx).filter(|t| *t > 0)?,
                seq: num(seq)?,
            }),
        }
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tx {
            0 => write!(f, "{}", self.seq),
            tx => write!(f, "{tx}:{}", self.seq),
        }
    }
}

/// Domain events after `after`, oldest first, optionally for one record.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub after: EventCursor,
    pub record: Option<(RecordKind, String)>,
    pub limit: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub event: String,
    pub record_kind: String,
    pub record_id: String,
    /// `Type/id/_history/version` of the resource version that raised it.
    pub resource: String,
    pub patient: Option<String>,
    /// Microseconds since the Unix epoch.
    pub at: i64,
    pub detail: Value,
    /// The writing transaction (PostgreSQL), for the cursor after this row.
    #[serde(skip)]
    pub tx: i64,
}

impl EventRow {
    pub fn cursor(&self) -> EventCursor {
        EventCursor {
            tx: self.tx,
            seq: self.seq,
        }
    }
}

/// What one read of the log gave: the events that may be handed out, and whether
/// later ones were held back behind a transaction still running.
#[derive(Debug, Default)]
pub struct EventPage {
    pub items: Vec<EventRow>,
    pub held_back: bool,
}

const COLUMNS: &str =
    "SELECT seq, event, record_kind, record_id, rtype, rid, version, patient, at, detail";

/// One page of the log: the ten event columns, then `tx` and whether the row is
/// settled (every transaction that could still write an earlier row has ended).
/// `by_transaction`: the PostgreSQL form described in the module note.
pub fn list_events(q: &EventQuery, by_transaction: bool) -> Sql {
    let mut s = Sql::new(COLUMNS);
    if by_transaction {
        s.push(
            ", tx::text::bigint, tx < pg_snapshot_xmin(pg_current_snapshot()) \
             FROM domain_events WHERE ",
        );
        if q.after.tx > 0 {
            s.push("(tx, seq) > (")
                .bind(Bind::Text(q.after.tx.to_string()))
                .push("::text::xid8, ")
                .bind(Bind::Int(q.after.seq))
                .push(")");
        } else {
            // A plain event number: a first read starts after it in number order.
            s.push("seq > ").bind(Bind::Int(q.after.seq));
        }
    } else {
        s.push(", 0, 1 FROM domain_events WHERE seq > ")
            .bind(Bind::Int(q.after.seq));
    }
    if let Some((kind, id)) = &q.record {
        s.push(" AND record_kind = ")
            .bind(Bind::Text(kind.as_str().into()))
            .push(" AND record_id = ")
            .bind(Bind::Text(id.clone()));
    }
    s.push(if by_transaction {
        " ORDER BY tx, seq LIMIT "
    } else {
        " ORDER BY seq LIMIT "
    })
    .bind(Bind::Int(q.limit as i64));
    s
}

/// The one event numbered `seq`, in `list_events`' first ten columns.
pub fn event_by_seq(seq: i64) -> Sql {
    let mut s = Sql::new(COLUMNS);
    s.push(" FROM domain_events WHERE seq = ")
        .bind(Bind::Int(seq));
    s
}

/// An event row from its columns, in `list_events`' order.
#[allow(clippy::too_many_arguments)]
pub fn event_row(
    seq: i64,
    event: String,
    record_kind: String,
    record_id: String,
    rtype: String,
    rid: String,
    version: i64,
    patient: Option<String>,
    at: i64,
    detail: String,
) -> EventRow {
    EventRow {
        seq,
        event,
        record_kind,
        record_id,
        resource: format!("{rtype}/{rid}/_history/{version}"),
        patient,
        at,
        detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        tx: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_no_page_gave() {
        for text in ["0", "42", "745:42"] {
            assert_eq!(EventCursor::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "x", "-1", "0:5", "3:", ":3", "1:2:3", "7:-1"] {
            assert_eq!(EventCursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn postgres_reads_in_transaction_order_from_a_cursor() {
        let q = EventQuery {
            after: EventCursor { tx: 745, seq: 42 },
            record: None,
            limit: 10,
        };
        let s = list_events(&q, true);
        assert!(
            s.text.contains("(tx, seq) > ($1::text::xid8, $2)"),
            "{}",
            s.text
        );
        assert!(s.text.ends_with("ORDER BY tx, seq LIMIT $3"), "{}", s.text);
        assert_eq!(s.binds[0], Bind::Text("745".into()));
        let sqlite = list_events(&q, false);
        assert!(sqlite.text.contains("WHERE seq > $1"), "{}", sqlite.text);
        assert!(sqlite.text.ends_with("ORDER BY seq LIMIT $2"));
    }
}
