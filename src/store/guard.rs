//! Guards: what a check outside the transaction judged, held still at its commit.
//!
//! A recipient client's change is checked before its commit (the stored resource must
//! be its own and its consent must let it see it: `api::access`), because the check
//! reads consent directives and decides as a read would. Without a guard, a resource
//! changed between that check and the commit (another client's update giving it to
//! someone else, a new match of a conditional update) would be written on the strength
//! of a version nobody checked. The guard fails the commit instead, with a conflict
//! that tells the client to read again and retry; nothing is written.
//!
//! The HL7 path uses [`Guard::Unchanged`] for the versions it remembered instead of
//! reading them (`hl7::known`): it fails with `PreconditionFailed`, and the message is
//! applied again from what is stored.

use std::collections::{BTreeSet, HashMap};

use super::executor::Tx;
use super::{sql, Guard, StoreError};

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
        Guard::Unchanged(versions) => unchanged(tx, versions).await,
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

/// Every (type, id, version) still live at that version, read without a lock (in
/// `READ_MANY_CHUNK`s): a version changed after this read and before the commit is
/// a write that follows this commit, which wrote nothing of it.
async fn unchanged<T: Tx>(
    tx: &mut T,
    versions: &[(String, String, i64)],
) -> Result<(), StoreError> {
    for chunk in versions.chunks(sql::READ_MANY_CHUNK) {
        let keys: Vec<(&str, &str)> = chunk
            .iter()
            .map(|(t, id, _)| (t.as_str(), id.as_str()))
            .collect();
        let rows = tx.fetch_rows(&sql::live_versions_chunk(&keys)).await?;
        let live: HashMap<(&str, &str), i64> = rows
            .iter()
            .filter_map(|r| Some(((r.first()?.text()?, r.get(1)?.text()?), r.get(2)?.int()?)))
            .collect();
        if let Some((t, id, _)) = chunk
            .iter()
            .find(|(t, id, v)| live.get(&(t.as_str(), id.as_str())) != Some(v))
        {
            return Err(StoreError::PreconditionFailed(format!(
                "{t}/{id} changed since it was read"
            )));
        }
    }
    Ok(())
}

fn changed(what: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{what} changed while this client's change was being checked; read it again and retry"
    ))
}
