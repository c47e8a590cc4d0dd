//! Diffs between two versions of a config: an RFC 7386 merge patch, a
//! unified text diff and a short summary of the changed paths (SPEC §5).

use serde_json::{Map, Value};
use similar::TextDiff;

/// Longest summary kept, in characters.
const SUMMARY_LIMIT: usize = 200;

/// A computed difference between two documents.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDiff {
    /// RFC 7386 merge patch turning the old document into the new one.
    pub patch: Value,
    /// Unified diff of the pretty-printed documents.
    pub unified: String,
    /// Changed leaf paths, siblings collapsed, at most 200 characters.
    pub summary: String,
}

/// Diffs two normalized documents; `None` when they are equal.
pub fn diff(old: &Value, new: &Value) -> Option<ConfigDiff> {
    if old == new {
        return None;
    }
    let patch = merge_patch(old, new);
    let old_text = serde_json::to_string_pretty(old).unwrap_or_default();
    let new_text = serde_json::to_string_pretty(new).unwrap_or_default();
    let unified = TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header("before", "after")
        .to_string();
    let summary = summarize(&changed_paths(&patch));
    Some(ConfigDiff {
        patch,
        unified,
        summary,
    })
}

/// Builds the RFC 7386 merge patch that turns `old` into `new`.
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for key in o.keys() {
                if !n.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, nv) in n {
                match o.get(key) {
                    Some(ov) if ov == nv => {}
                    Some(ov) => {
                        patch.insert(key.clone(), merge_patch(ov, nv));
                    }
                    None => {
                        patch.insert(key.clone(), nv.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// Applies an RFC 7386 merge patch.
pub fn apply_merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (key, pv) in p {
        if pv.is_null() {
            out.remove(key);
        } else {
            let current = out.get(key).cloned().unwrap_or(Value::Null);
            out.insert(key.clone(), apply_merge_patch(&current, pv));
        }
    }
    Value::Object(out)
}

/// The dotted leaf paths a merge patch touches, in sorted order.
pub fn changed_paths(patch: &Value) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, child, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    walk("", patch, &mut out);
    out.sort();
    out
}

/// Collapses sibling paths into their parent and caps the result.
pub fn summarize(paths: &[String]) -> String {
    let mut groups: Vec<(String, Vec<&String>)> = Vec::new();
    for path in paths {
        let parent = path
            .rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        match groups.iter_mut().find(|(p, _)| *p == parent) {
            Some((_, members)) => members.push(path),
            None => groups.push((parent, vec![path])),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    for (parent, members) in groups {
        if members.len() > 1 && !parent.is_empty() {
            parts.push(parent);
        } else {
            parts.extend(members.into_iter().cloned());
        }
    }
    parts.sort();
    parts.dedup();
    let joined = parts.join(", ");
    if joined.chars().count() <= SUMMARY_LIMIT {
        joined
    } else {
        let cut: String = joined.chars().take(SUMMARY_LIMIT - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_round_trips() {
        let a = json!({"spec": {"replicas": 2, "image": "a:1"}, "data": {"x": "1", "y": "2"}});
        let b = json!({"spec": {"replicas": 3, "image": "a:1"}, "data": {"x": "1"}, "new": true});
        let p = merge_patch(&a, &b);
        assert_eq!(
            p,
            json!({"spec": {"replicas": 3}, "data": {"y": null}, "new": true})
        );
        assert_eq!(apply_merge_patch(&a, &p), b);
    }

    #[test]
    fn equal_documents_have_no_diff() {
        let a = json!({"a": [1, 2]});
        assert!(diff(&a, &a).is_none());
    }

    #[test]
    fn summary_collapses_siblings() {
        let d = diff(
            &json!({"data": {"a": "1", "b": "2"}, "spec": {"replicas": 1}}),
            &json!({"data": {"a": "9", "b": "8"}, "spec": {"replicas": 2}}),
        );
        let d = d.expect("documents differ");
        assert_eq!(d.summary, "data, spec.replicas");
        assert!(d.unified.contains("-    \"replicas\": 1"));
        assert!(d.unified.contains("+    \"replicas\": 2"));
    }

    /// A small deterministic generator of JSON documents without nulls.
    fn next(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    fn doc(seed: &mut u64, depth: u32) -> serde_json::Value {
        match next(seed) % if depth == 0 { 3 } else { 5 } {
            0 => json!(next(seed) % 5),
            1 => json!(format!("s{}", next(seed) % 4)),
            2 => json!(next(seed).is_multiple_of(2)),
            3 => json!([next(seed) % 3, format!("x{}", next(seed) % 2)]),
            _ => {
                let n = next(seed) % 4;
                let mut map = serde_json::Map::new();
                for _ in 0..n {
                    let key = format!("k{}", next(seed) % 5);
                    map.insert(key, doc(seed, depth - 1));
                }
                serde_json::Value::Object(map)
            }
        }
    }

    #[test]
    fn merge_patch_properties_hold_for_generated_documents() {
        let mut seed = 7u64;
        for _ in 0..2000 {
            let a = json!({"root": doc(&mut seed, 3)});
            let b = json!({"root": doc(&mut seed, 3)});
            assert_eq!(apply_merge_patch(&a, &merge_patch(&a, &b)), b, "{a} -> {b}");
            assert!(diff(&a, &a).is_none());
            assert_eq!(diff(&a, &b).is_none(), a == b);
        }
    }

    #[test]
    fn summary_is_capped() {
        let paths: Vec<String> = (0..100).map(|i| format!("k{i}.leaf{i}")).collect();
        assert!(summarize(&paths).chars().count() <= 200);
    }
}
