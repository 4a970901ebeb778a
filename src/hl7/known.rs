//! What the HL7 path last saw stored: the current version of each resource a message
//! was mapped over or compared with (the visit, its patient, practitioners, places),
//! kept in memory so that the next message for the same visit or naming the same
//! staff need not read them from the store again.
//!
//! Nothing here is trusted: a message that used an entry commits with a guard
//! ([`crate::store::Guard::Unchanged`]) that fails the commit, nothing written, if any
//! of them is no longer the current version (changed by a FHIR client, another
//! gateway on the same PostgreSQL, a delete); the message is then applied again from
//! what the store holds, and the entries it used are forgotten. So a stale entry
//! costs a retry, never a wrong answer.
//!
//! Bounded: two generations of at most `capacity` entries each; when the newer fills,
//! the older is dropped and the newer takes its place (an entry used from the older is
//! moved to the newer, so what is in use stays). A capacity of 0 remembers nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::StoredResource;

/// Entries per generation by default: twice the census of a large hospital's
/// inpatient visits, each with its patient, most of them holding a few KB.
pub const DEFAULT_CAPACITY: usize = 4_096;

pub struct Known {
    /// Entries per generation.
    capacity: usize,
    /// Bytes of bodies per generation: [`BYTES_PER_ENTRY`] times the capacity, so that
    /// a few very large resources cannot make the memory grow past what the count
    /// suggests (a generation is turned over at whichever bound comes first).
    budget: usize,
    generations: Mutex<Generations>,
}

/// The byte budget per entry: resources average well under it (Encounter 1.5 KB,
/// Patient 0.8 KB, Practitioner 0.3 KB in the bench's messages).
pub const BYTES_PER_ENTRY: usize = 2_048;

#[derive(Default)]
struct Generations {
    newer: HashMap<String, StoredResource>,
    older: HashMap<String, StoredResource>,
    /// Body bytes held in `newer`.
    newer_bytes: usize,
}

fn size(s: &StoredResource) -> usize {
    s.body.as_deref().map_or(0, str::len)
}

impl Known {
    pub fn new(capacity: usize) -> Self {
        Known {
            capacity,
            budget: capacity.saturating_mul(BYTES_PER_ENTRY),
            generations: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave the maps half-changed in a way
        // that matters (every entry is checked at commit): go on with them.
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entry for `Type/id`, if any.
    pub fn get(&self, reference: &str) -> Option<StoredResource> {
        let mut g = self.lock();
        if let Some(s) = g.newer.get(reference) {
            return Some(s.clone());
        }
        let s = g.older.remove(reference)?;
        g.insert(self, reference.to_owned(), s.clone());
        Some(s)
    }

    /// Remember `s` as the current version of its resource (a deleted one is forgotten).
    pub fn put(&self, s: StoredResource) {
        if self.capacity == 0 {
            return;
        }
        let r = s.reference();
        let mut g = self.lock();
        if s.deleted || s.body.is_none() {
            g.remove(&r);
            return;
        }
        // Commits that finish out of order: an older version never replaces a newer.
        let held = g.newer.get(&r).or_else(|| g.older.get(&r));
        if held.is_some_and(|h| h.version > s.version) {
            return;
        }
        g.remove(&r);
        g.insert(self, r, s);
    }

    /// Forget these `Type/id`s.
    pub fn forget<'a>(&self, references: impl IntoIterator<Item = &'a String>) {
        let mut g = self.lock();
        for r in references {
            g.remove(r);
        }
    }

    /// Entries held in both generations (for the tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g.newer.len() + g.older.len()
    }

    /// Body bytes held in both generations (for the tests).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        let g = self.lock();
        g.newer_bytes + g.older.values().map(size).sum::<usize>()
    }
}

impl Generations {
    fn remove(&mut self, reference: &str) {
        if let Some(s) = self.newer.remove(reference) {
            self.newer_bytes -= size(&s);
        }
        self.older.remove(reference);
    }

    /// Into the newer generation, turning the generations over first if it is full
    /// (in entries or bytes).
    fn insert(&mut self, k: &Known, reference: String, s: StoredResource) {
        let n = size(&s);
        if self.newer.len() >= k.capacity || self.newer_bytes + n > k.budget {
            self.older = std::mem::take(&mut self.newer);
            self.newer_bytes = 0;
        }
        self.newer_bytes += n;
        self.newer.insert(reference, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, version: i64) -> StoredResource {
        StoredResource {
            rtype: "Practitioner".into(),
            id: id.into(),
            version,
            last_updated: 0,
            deleted: false,
            body: Some(format!(r#"{{"resourceType":"Practitioner","id":"{id}"}}"#).into()),
        }
    }

    #[test]
    fn the_latest_version_put_is_the_one_got() {
        let k = Known::new(8);
        k.put(stored("a", 1));
        k.put(stored("a", 3));
        k.put(stored("a", 2));
        assert_eq!(k.get("Practitioner/a").map(|s| s.version), Some(3));
        assert_eq!(k.len(), 1);
        k.forget(&["Practitioner/a".to_string()]);
        assert!(k.get("Practitioner/a").is_none());
    }

    #[test]
    fn large_bodies_turn_the_generations_over_before_the_count_does() {
        let k = Known::new(100);
        let mut big = stored("big", 1);
        big.body = Some("x".repeat(BYTES_PER_ENTRY * 30).into());
        for i in 0..10 {
            let mut b = big.clone();
            b.id = format!("big{i}");
            k.put(b);
            assert!(
                k.bytes() <= 2 * 100 * BYTES_PER_ENTRY,
                "{} bytes",
                k.bytes()
            );
        }
        // Replaced and forgotten entries are no longer counted.
        k.put(stored("a", 1));
        let before = k.bytes();
        k.put(stored("a", 2));
        assert_eq!(k.bytes(), before);
        k.forget(&["Practitioner/a".to_string()]);
        assert_eq!(k.bytes(), before - size(&stored("a", 2)));
    }

    #[test]
    fn a_capacity_of_zero_remembers_nothing() {
        let k = Known::new(0);
        k.put(stored("a", 1));
        assert!(k.get("Practitioner/a").is_none());
        assert_eq!(k.len(), 0);
    }

    #[test]
    fn a_deleted_version_forgets_the_resource() {
        let k = Known::new(8);
        k.put(stored("a", 1));
        let mut gone = stored("a", 2);
        gone.deleted = true;
        k.put(gone);
        assert!(k.get("Practitioner/a").is_none());
    }

    #[test]
    fn it_holds_at_most_two_generations_and_keeps_what_is_used() {
        let k = Known::new(4);
        for i in 0..100 {
            k.put(stored(&format!("p{i}"), 1));
            // One entry used all along is never dropped.
            assert!(k.get("Practitioner/p0").is_some(), "dropped at {i}");
        }
        assert!(k.len() <= 8, "{} entries", k.len());
        // The oldest unused ones are gone.
        assert!(k.get("Practitioner/p1").is_none());
        assert!(k.get("Practitioner/p99").is_some());
    }
}
