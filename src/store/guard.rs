//! Guards: what a check outside the transaction judged, held still at its commit.
//!
//! A recipient client's change is checked before its commit (the stored resource must
//! be its own and its consent must let it see it: `api::access`), because the check
//! reads consent directives and decides as a read would. Without a guard, a resource
//! changed between that check and the commit (another client's update giving it to
//! someone else, a new match of a conditional update) would be written on the strength
//! of a version nobody checked. The guard fails the commit instead, with a conflict
//! that tells the client to read again and retry; nothing is written.

use std::collections::BTreeSet;

use super::executor::Tx;
use super::{Guard, StoreError};

/// Ok when `g` still holds in the open transaction.
pub(super) async fn hold<T: Tx>(tx: &mut T, g: &Guard) -> Result<(), StoreError> {
    match g {
        Guard::Version { rtype, id, version } => {
            let now = tx.current(rtype, id).await?;
            let live = now.filter(|(_, deleted)| !deleted).map(|(v, _)| v);
            if live == *version {
                return Ok(());
            }
            Err(changed(&format!("{rtype}/{id}")))
        }
        Guard::Matches { query, ids } => {
            let now: BTreeSet<String> = tx.find(query, 2).await?.into_iter().collect();
            let judged: BTreeSet<String> = ids.iter().cloned().collect();
            if now == judged {
                return Ok(());
            }
            Err(changed(&format!(
                "what the conditional {} request matches",
                query.rtype
            )))
        }
    }
}

fn changed(what: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{what} changed while this client's change was being checked; read it again and retry"
    ))
}
