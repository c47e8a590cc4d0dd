//! Change fingerprints for dedupe (SPEC §5): flatten, tokenise volatile
//! values, add the change type, sort and hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Keys ignored when fingerprinting.
const NOISE_KEYS: &[&str] = &[
    "resourceVersion",
    "managedFields",
    "generation",
    "observedGeneration",
    "lastTransitionTime",
    "lastUpdateTime",
    "lastProbeTime",
    "lastHeartbeatTime",
    "lastTimestamp",
    "firstTimestamp",
    "eventTime",
    "count",
    "uid",
];

/// The 32-hex-character fingerprint of a change of `change_type` whose
/// content is `patches` (or `details` when there is no patch).
pub fn fingerprint(change_type: &str, content: Option<&Value>) -> String {
    let mut pairs = Vec::new();
    if let Some(v) = content {
        flatten("", v, &mut pairs);
    }
    pairs.push(format!("__type={change_type}"));
    pairs.sort();
    let digest = Sha256::digest(pairs.join("\n").as_bytes());
    hex::encode(digest)[..32].to_string()
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if NOISE_KEYS.contains(&k.as_str()) {
                    continue;
                }
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), v, out);
            }
        }
        Value::Number(_) => out.push(format!("{prefix}=0")),
        Value::String(s) => out.push(format!("{prefix}={}", tokenise(s))),
        Value::Bool(b) => out.push(format!("{prefix}={b}")),
        Value::Null => out.push(format!("{prefix}=null")),
    }
}

/// Replaces volatile words (numbers, UUIDs, timestamps, durations, long hex)
/// with stable tokens.
pub fn tokenise(s: &str) -> String {
    s.split_whitespace()
        .map(tokenise_word)
        .collect::<Vec<_>>()
        .join(" ")
}

fn tokenise_word(word: &str) -> String {
    let trimmed =
        word.trim_matches(|c: char| matches!(c, ',' | ';' | '(' | ')' | '"' | '\'' | '.' | ':'));
    let token = if trimmed.is_empty() {
        None
    } else if uuid::Uuid::parse_str(trimmed).is_ok() {
        Some("UUID")
    } else if chrono::DateTime::parse_from_rfc3339(trimmed).is_ok() {
        Some("TS")
    } else if is_duration(trimmed) {
        Some("DUR")
    } else if trimmed.len() >= 16 && trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
        Some("HEX")
    } else if trimmed.chars().all(|c| c.is_ascii_digit()) {
        Some("NUM")
    } else {
        None
    };
    match token {
        Some(t) => word.replace(trimmed, t),
        None => word.to_string(),
    }
}

fn is_duration(s: &str) -> bool {
    let mut saw_digit = false;
    let mut saw_unit = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            saw_digit = true;
        } else if matches!(c, 'h' | 'm' | 's' | 'u' | 'n' | 'µ') && saw_digit {
            saw_unit = true;
            if c == 'm' && chars.peek() == Some(&'s') {
                chars.next();
            }
        } else {
            return false;
        }
    }
    saw_digit && saw_unit && s.chars().last().is_some_and(|c| !c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volatile_values_do_not_change_the_fingerprint() {
        let a = json!({"message": "Back-off 5m0s restarting failed container pod-7d9f 3 times", "count": 3});
        let b = json!({"message": "Back-off 10m0s restarting failed container pod-7d9f 12 times", "count": 9});
        assert_eq!(
            fingerprint("BackOff", Some(&a)),
            fingerprint("BackOff", Some(&b))
        );
        assert_ne!(
            fingerprint("BackOff", Some(&a)),
            fingerprint("Pulled", Some(&a))
        );
        assert_eq!(fingerprint("x", None).len(), 32);
    }

    #[test]
    fn tokens() {
        assert_eq!(
            tokenise("at 2026-11-24T01:02:03Z id 0b8f3c2e-2f52-4c55-9d43-0f1a2b3c4d5e"),
            "at TS id UUID"
        );
        assert_eq!(
            tokenise("sha deadbeefdeadbeefdead took 1h2m3s n=5 42"),
            "sha HEX took DUR n=5 NUM"
        );
    }
}
