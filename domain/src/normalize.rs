//! Normalization of config documents before they are hashed and diffed:
//! sorted keys, no nulls, and Kubernetes bookkeeping noise stripped (SPEC §5),
//! and [`CanonicalConfig`], the compact form a normalized document travels in
//! from extraction to the store.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Annotations that change without the object changing.
const NOISY_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "control-plane.alpha.kubernetes.io/leader",
    "deployment.kubernetes.io/revision",
];

/// Condition fields that only record when something was last checked.
const NOISY_CONDITION_FIELDS: &[&str] = &[
    "lastTransitionTime",
    "lastUpdateTime",
    "lastProbeTime",
    "lastHeartbeatTime",
];

/// Documents larger than this (as canonical JSON) are stored as
/// `{"_truncated":true}` (SPEC §2).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Sorts object keys recursively and drops `null` members of objects.
///
/// `serde_json::Map` is ordered by key, so sorting is structural; the work
/// is dropping nulls, done in place without rebuilding the tree.
pub fn normalize(mut value: Value) -> Value {
    drop_nulls(&mut value);
    value
}

fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // `retain` rebuilds the tree's nodes; most objects have no
            // nulls, and finding that out is a plain walk.
            if map.values().any(Value::is_null) {
                map.retain(|_, v| !v.is_null());
            }
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// A normalized config document as canonical JSON text (sorted keys, no
/// whitespace) with its SHA-256. A few hundred bytes per item instead of a
/// tree of small allocations, so a 100k-item scrape stays compact in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalConfig {
    json: String,
    hash: String,
    truncated: bool,
}

impl CanonicalConfig {
    /// Serializes and hashes a document that went through [`normalize`].
    /// A document over [`MAX_CONFIG_BYTES`] becomes `{"_truncated":true}`.
    pub fn new(normalized: &Value) -> CanonicalConfig {
        let mut json = serde_json::to_string(normalized).unwrap_or_else(|_| "null".to_string());
        let truncated = json.len() > MAX_CONFIG_BYTES;
        if truncated {
            json = r#"{"_truncated":true}"#.to_string();
        }
        let hash = hex::encode(Sha256::digest(json.as_bytes()));
        CanonicalConfig {
            json,
            hash,
            truncated,
        }
    }

    /// Normalizes, serializes and hashes a document.
    pub fn from_value(value: Value) -> CanonicalConfig {
        CanonicalConfig::new(&normalize(value))
    }

    /// The canonical JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Takes the JSON text, leaving `null`.
    pub fn take_json(&mut self) -> String {
        std::mem::replace(&mut self.json, "null".to_string())
    }

    /// SHA-256 (hex) of [`CanonicalConfig::json`]; equals [`config_hash`] of the document.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// True when the document was over [`MAX_CONFIG_BYTES`] and replaced.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Parses the document back (for diffs of the rare changed item).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

impl Default for CanonicalConfig {
    fn default() -> Self {
        CanonicalConfig::new(&Value::Object(Map::new()))
    }
}

/// Removes Kubernetes bookkeeping that changes on every write and sorts
/// `status.conditions` by `type`. Applies to any object with `metadata`.
pub fn strip_kubernetes_noise(value: &mut Value) {
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
        meta.remove("generation");
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in NOISY_ANNOTATIONS {
                annotations.remove(*key);
            }
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("observedGeneration");
        if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
            for condition in conditions.iter_mut() {
                if let Some(c) = condition.as_object_mut() {
                    for field in NOISY_CONDITION_FIELDS {
                        c.remove(*field);
                    }
                }
            }
            conditions.sort_by(|a, b| {
                let ka = a.get("type").and_then(Value::as_str).unwrap_or_default();
                let kb = b.get("type").and_then(Value::as_str).unwrap_or_default();
                ka.cmp(kb)
            });
        }
    }
}

/// SHA-256 (hex) of the canonical JSON of a normalized document.
pub fn config_hash(value: &Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_sorts_and_drops_nulls() {
        let v = normalize(json!({"b": 1, "a": {"y": null, "x": [null, 2]}}));
        assert_eq!(
            serde_json::to_string(&v).ok(),
            Some(r#"{"a":{"x":[null,2]},"b":1}"#.to_string())
        );
    }

    #[test]
    fn kubernetes_noise_is_stripped() {
        let mut a = json!({
            "metadata": {"name": "p", "resourceVersion": "1", "generation": 3, "managedFields": [{}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "status": {"observedGeneration": 3, "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "t1"},
                {"type": "Available", "status": "True", "lastUpdateTime": "t2"}]}
        });
        strip_kubernetes_noise(&mut a);
        assert_eq!(
            a,
            json!({"metadata": {"name": "p"}, "status": {"conditions": [
            {"type": "Available", "status": "True"}, {"type": "Ready", "status": "True"}]}})
        );
    }

    #[test]
    fn canonical_config_matches_config_hash_and_truncates() {
        let doc = normalize(json!({"b": [1, null], "a": {"c": null, "d": "x"}}));
        let canonical = CanonicalConfig::new(&doc);
        assert_eq!(canonical.json(), r#"{"a":{"d":"x"},"b":[1,null]}"#);
        assert_eq!(canonical.hash(), config_hash(&doc));
        assert_eq!(canonical.to_value(), doc);
        assert!(!canonical.truncated());
        let big = CanonicalConfig::new(&json!({"blob": "x".repeat(MAX_CONFIG_BYTES)}));
        assert!(big.truncated());
        assert_eq!(big.to_value(), json!({"_truncated": true}));
    }

    #[test]
    fn hash_ignores_key_order() {
        let a = normalize(json!({"a": 1, "b": 2}));
        let b = normalize(json!({"b": 2, "a": 1}));
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(
            config_hash(&a),
            config_hash(&normalize(json!({"a": 2, "b": 2})))
        );
    }
}
