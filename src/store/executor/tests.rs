use super::*;
use serde_json::json;

#[test]
fn stamp_sets_server_fields_and_keeps_the_rest() {
    let mut r = json!({"resourceType": "Patient", "meta": {"profile": ["x"], "versionId": "99"}, "active": true});
    stamp(&mut r, "abc", 3, 0);
    assert_eq!(r["id"], "abc");
    assert_eq!(r["meta"]["versionId"], "3");
    assert_eq!(r["meta"]["profile"][0], "x");
    let keys: Vec<_> = r.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys[..2], ["resourceType".to_string(), "id".to_string()]);
}

#[test]
fn rewrites_only_mapped_references() {
    let mut r = json!({"subject": {"reference": "urn:uuid:1"}, "x": [{"reference": "urn:uuid:2"}]});
    let urls = HashMap::from([("urn:uuid:1".to_string(), "Patient/p".to_string())]);
    rewrite_references(&mut r, &urls);
    assert_eq!(r["subject"]["reference"], "Patient/p");
    assert_eq!(r["x"][0]["reference"], "urn:uuid:2");
}
