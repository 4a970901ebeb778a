//! How an event's resources link to each other, by their references.

use serde_json::Value;

use super::PARTY_TYPES;
use crate::fhir::validate::reference_type;
use crate::notify::bundle::split_ref;

/// The distinct resources of an event (the first body of each Type/id) and the
/// resources each references.
pub(super) struct Pool<'a> {
    base: &'a str,
    keys: Vec<(&'a str, &'a str)>,
    pub(super) bodies: Vec<&'a Value>,
    refs: Vec<Vec<(&'a str, &'a str)>>,
}

impl<'a> Pool<'a> {
    pub(super) fn new(base: &'a str, resources: &'a [Value]) -> Self {
        let mut pool = Pool {
            base,
            keys: Vec::new(),
            bodies: Vec::new(),
            refs: Vec::new(),
        };
        for body in resources {
            let t = body
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
            if split_ref(&format!("{t}/{id}")).is_some() && pool.find(t, id).is_none() {
                let mut refs = Vec::new();
                references(body, &mut |r| refs.extend(local_key(r, base)));
                pool.keys.push((t, id));
                pool.bodies.push(body);
                pool.refs.push(refs);
            }
        }
        pool
    }

    pub(super) fn find(&self, t: &str, id: &str) -> Option<usize> {
        self.keys.iter().position(|k| *k == (t, id))
    }

    pub(super) fn full_url(&self, i: usize) -> String {
        let (t, id) = self.keys[i];
        format!("{}/{t}/{id}", self.base)
    }

    /// `from`, then every resource linked to it by references either way, breadth
    /// first, then the `seeds` and what links to them, each once.
    pub(super) fn linked(&self, from: usize, mut seeds: impl Iterator<Item = usize>) -> Vec<usize> {
        let mut chosen = vec![from];
        let mut next = 0;
        loop {
            if next == chosen.len() {
                match seeds.find(|s| !chosen.contains(s)) {
                    Some(s) => chosen.push(s),
                    None => return chosen,
                }
            }
            let current = chosen[next];
            let key = self.keys[current];
            let forward = self.refs[current]
                .iter()
                .filter_map(|(t, id)| self.find(t, id));
            let backward = (0..self.bodies.len()).filter(|&j| self.refs[j].contains(&key));
            for j in forward.chain(backward).collect::<Vec<_>>() {
                if !chosen.contains(&j) {
                    chosen.push(j);
                }
            }
            next += 1;
        }
    }
}

/// `Type/id` of a reference on this server: relative, or absolute on `base`
/// (a version suffix `/_history/n` is dropped). None for contained, `urn:` and other
/// servers' references.
pub(super) fn local_key<'r>(reference: &'r str, base: &str) -> Option<(&'r str, &'r str)> {
    let on_base = reference
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'));
    let r = on_base.unwrap_or(reference);
    if r.contains(':') || r.starts_with('#') {
        return None;
    }
    split_ref(r.split("/_history/").next().unwrap_or(r))
}

/// `destination.receiver`: a party on this server (made absolute), or an absolute
/// http(s) URL of another server's party.
pub(super) fn receiver(r: &str, base: &str) -> Option<String> {
    if let Some((t, id)) = local_key(r, base) {
        return PARTY_TYPES.contains(&t).then(|| format!("{base}/{t}/{id}"));
    }
    let absolute = r.starts_with("https://") || r.starts_with("http://");
    let party = reference_type(r).is_some_and(|t| PARTY_TYPES.contains(&t));
    (absolute && party && !r.contains(char::is_whitespace)).then(|| r.to_owned())
}

/// Calls `f` with every literal `reference` in `v`, in document order.
fn references<'v>(v: &'v Value, f: &mut impl FnMut(&'v str)) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("reference") {
                f(r);
            }
            o.values().for_each(|c| references(c, f));
        }
        Value::Array(a) => a.iter().for_each(|c| references(c, f)),
        _ => {}
    }
}

/// Calls `f` with every literal `reference` in `v`, which it may change.
pub(super) fn references_mut(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("reference") {
                f(r);
            }
            o.values_mut().for_each(|c| references_mut(c, f));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| references_mut(c, f)),
        _ => {}
    }
}
