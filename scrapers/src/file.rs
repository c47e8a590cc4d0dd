//! The `file` scraper: reads JSON or YAML files by path or glob and splits
//! them into documents. Multi-document YAML files yield one document each.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::config::FileSource;

/// A document read from a file, before extraction.
#[derive(Debug, Clone)]
pub struct RawDocument {
    /// The file it came from.
    pub file: PathBuf,
    /// The document.
    pub value: Value,
}

/// What reading a source produced.
#[derive(Debug, Default)]
pub struct FileReadResult {
    /// Documents, in file order.
    pub documents: Vec<RawDocument>,
    /// Errors, each naming its file.
    pub errors: Vec<String>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands the source's paths; a path that matches nothing is an error.
pub fn expand_paths(source: &FileSource) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in &source.paths {
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

/// Reads every file of a source (blocking I/O: call from `spawn_blocking`).
/// A file that cannot be read or parsed contributes an error and no documents.
pub fn read_source(source: &FileSource) -> FileReadResult {
    let (files, mut errors) = expand_paths(source);
    let mut documents = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        match parse_file(&file, &text, source.format.as_deref()) {
            Ok(values) => documents.extend(values.into_iter().map(|value| RawDocument {
                file: file.clone(),
                value,
            })),
            Err(e) => errors.push(e),
        }
    }
    FileReadResult { documents, errors }
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
