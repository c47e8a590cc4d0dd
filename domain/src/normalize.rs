//! Normalization of config documents before they are hashed and diffed:
//! sorted keys, no nulls, and Kubernetes bookkeeping noise stripped (SPEC §5).

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

/// Sorts object keys recursively and drops `null` members of objects.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, normalize(v)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
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
