//! The `file` scraper: reads JSON or YAML files by path or glob and splits
//! them into documents. Multi-document YAML files yield one document each.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::config::FileSource;

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands the source's paths; a path that matches nothing is an error.
pub fn expand_paths(source: &FileSource) -> (Vec<PathBuf>, Vec<String>) {
    expand(&source.paths)
}

/// Expands paths and globs into the files they name, with an error for
/// each path that names none.
pub fn expand(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if !has_glob(&text) {
            if path.is_file() {
                files.push(path.clone());
            } else {
                errors.push(format!("{}: no such file", path.display()));
            }
            continue;
        }
        match glob::glob(&text) {
            Ok(paths) => {
                let mut matched: Vec<PathBuf> = Vec::new();
                for entry in paths {
                    match entry {
                        Ok(p) if p.is_file() => matched.push(p),
                        Ok(_) => {}
                        Err(e) => errors.push(format!("{}: {}", e.path().display(), e.error())),
                    }
                }
                if matched.is_empty() {
                    errors.push(format!("{text}: no files match"));
                }
                matched.sort();
                files.extend(matched);
            }
            Err(e) => errors.push(format!("{text}: invalid glob: {e}")),
        }
    }
    files.dedup();
    (files, errors)
}

/// Parses one file's content into documents.
pub fn parse_file(path: &Path, text: &str, format: Option<&str>) -> Result<Vec<Value>, String> {
    let is_json = match format {
        Some(f) => f == "json",
        None => path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json")),
    };
    if is_json {
        return serde_json::from_str::<Value>(text)
            .map(|v| vec![v])
            .map_err(|e| {
                format!(
                    "{}:{}:{}: invalid JSON: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                )
            });
    }
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(v) => docs.push(v),
            Err(e) => {
                let (line, col) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                return Err(format!(
                    "{}:{line}:{col}: invalid YAML: {e}",
                    path.display()
                ));
            }
        }
    }
    Ok(docs)
}

/// Reads and parses one file into documents (blocking I/O). Errors name
/// the file, and the line and column where parsing failed.
pub fn read_file(path: &Path, format: Option<&str>) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_file(path, &text, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_document_yaml_and_json() {
        let docs = parse_file(Path::new("a.yaml"), "a: 1\n---\nb: 2\n", None).expect("yaml");
        assert_eq!(docs.len(), 2);
        let docs = parse_file(Path::new("a.json"), "{\"a\": [1]}", None).expect("json");
        assert_eq!(docs.len(), 1);
        let err = parse_file(Path::new("bad.yaml"), "a: [1, 2\n", None).expect_err("bad");
        assert!(err.starts_with("bad.yaml:"), "{err}");
    }
}
