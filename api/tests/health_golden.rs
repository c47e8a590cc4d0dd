//! Golden tests of the built-in health rules (SPEC §6), through the
//! `stratum health` binary: every object in `domain/tests/health/*.yaml`
//! carries `expected-health` and, where it matters, `expected-status` and
//! `expected-ready` annotations. Strings like `@now-5m`, `@now+1d` or `@now`
//! become times relative to the test's clock; the resolved objects are
//! written to files that `stratum health` evaluates.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::Value;

/// `@now`, `@now-5m`, `@now+2d` (units s, m, h, d) relative to `now`.
fn relative_time(text: &str, now: DateTime<Utc>) -> Option<String> {
    let rest = text.strip_prefix("@now")?;
    let offset = if rest.is_empty() {
        Duration::zero()
    } else {
        let (sign, amount) = match rest.split_at(1) {
            ("-", a) => (-1, a),
            ("+", a) => (1, a),
            _ => return None,
        };
        let (digits, unit) = amount.split_at(amount.len().checked_sub(1)?);
        let n: i64 = sign * digits.parse::<i64>().ok()?;
        match unit {
            "s" => Duration::seconds(n),
            "m" => Duration::minutes(n),
            "h" => Duration::hours(n),
            "d" => Duration::days(n),
            _ => return None,
        }
    };
    Some((now + offset).to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn resolve_times(value: &mut Value, now: DateTime<Utc>) {
    match value {
        Value::String(s) if s.starts_with("@now") => {
            let resolved = relative_time(s, now).unwrap_or_else(|| panic!("bad relative time {s}"));
            *s = resolved;
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve_times(v, now)),
        Value::Object(map) => map.values_mut().for_each(|v| resolve_times(v, now)),
        _ => {}
    }
}

#[test]
fn relative_times_parse() {
    let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    assert_eq!(
        relative_time("@now-5m", now).as_deref(),
        Some("2026-12-01T11:55:00Z")
    );
    assert_eq!(
        relative_time("@now+1d", now).as_deref(),
        Some("2026-12-02T12:00:00Z")
    );
    assert_eq!(
        relative_time("@now", now).as_deref(),
        Some("2026-12-01T12:00:00Z")
    );
    assert_eq!(relative_time("@now*5", now), None);
    assert_eq!(relative_time("@now-5y", now), None);
}

#[test]
fn fixtures_evaluate_to_their_expected_verdicts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/tests/health");
    let now = Utc::now();
    let out_dir = tempfile::tempdir().expect("tmp");
    let mut objects: Vec<(String, Value)> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut resolved_files = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read fixture");
        let mut resolved = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut object = Value::deserialize(document).expect("fixture parses");
            resolve_times(&mut object, now);
            let label = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            resolved.push(serde_json::to_string(&object).expect("json"));
            objects.push((label, object));
        }
        let path = out_dir.path().join(file.file_name().expect("name"));
        // JSON documents are YAML too: one per `---`.
        std::fs::write(&path, resolved.join("\n---\n")).expect("write");
        resolved_files.push(path);
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("health")
        .args(&resolved_files)
        .output()
        .expect("run stratum health");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), objects.len(), "one line per object");
    assert!(
        objects.len() >= 60,
        "only {} fixtures found in {}",
        objects.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    for ((file, object), got) in objects.iter().zip(&lines) {
        let annotation = |key: &str| {
            object
                .pointer(&format!("/metadata/annotations/{key}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        assert_eq!(
            (got["kind"].as_str(), got["name"].as_str()),
            (Some(kind), Some(name)),
            "output order"
        );
        let expected_health = annotation("expected-health").expect("expected-health");
        let mut wrong = Vec::new();
        if got["health"].as_str() != Some(expected_health.as_str()) {
            wrong.push(format!(
                "health {} (expected {expected_health})",
                got["health"]
            ));
        }
        if let Some(status) = annotation("expected-status")
            && got["status"].as_str() != Some(status.as_str())
        {
            wrong.push(format!("status {} (expected {status:?})", got["status"]));
        }
        if let Some(ready) = annotation("expected-ready")
            && got["ready"].as_bool().map(|b| b.to_string()) != Some(ready.clone())
        {
            wrong.push(format!("ready {} (expected {ready})", got["ready"]));
        }
        if !wrong.is_empty() {
            failures.push(format!("{file}: {kind}/{name}: {}", wrong.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
