//! Automatic persisted queries (Apollo's protocol, SPEC §11 "APQ"): a
//! client sends `extensions.persistedQuery {version: 1, sha256Hash}`
//! alone; an unknown hash answers `PERSISTED_QUERY_NOT_FOUND`, and the
//! client sends the text once with the hash to register it. The store keeps
//! query texts, so a persisted query then takes the same path through the
//! document cache as any other.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Request, ServerError};
use lru::LruCache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::guard::{codes, with_code};

/// Longest query text kept (longer ones run, but are not persisted).
const MAX_PERSISTED_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersistedQuery {
    version: i64,
    sha256_hash: String,
}

/// Query texts by SHA-256, least recently used dropped first (per replica).
pub struct PersistedQueries {
    texts: Mutex<LruCache<String, Arc<str>>>,
}

impl PersistedQueries {
    /// A store of up to `entries` queries.
    pub fn new(entries: NonZeroUsize) -> Self {
        PersistedQueries {
            texts: Mutex::new(LruCache::new(entries)),
        }
    }

    /// Fills in the text of a request that names a persisted query by hash
    /// alone, or registers the text it sends with its hash.
    pub fn resolve(&self, mut request: Request) -> Result<Request, ServerError> {
        let Some(value) = request.extensions.0.remove("persistedQuery") else {
            return Ok(request);
        };
        let bad = || {
            with_code(
                ServerError::new(
                    "extensions.persistedQuery must be {version: 1, sha256Hash: \"<hex>\"}",
                    None,
                ),
                codes::VALIDATION_FAILED,
            )
        };
        let persisted: PersistedQuery = value
            .into_json()
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(bad)?;
        if persisted.version != 1 {
            return Err(with_code(
                ServerError::new(
                    format!(
                        "persisted query version {} is not supported; the version is 1",
                        persisted.version
                    ),
                    None,
                ),
                codes::VALIDATION_FAILED,
            ));
        }
        let hash = persisted.sha256_hash.to_ascii_lowercase();
        let mut texts = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        if request.query.is_empty() {
            let text = texts.get(&hash).ok_or_else(|| {
                with_code(
                    ServerError::new("PersistedQueryNotFound", None),
                    codes::PERSISTED_QUERY_NOT_FOUND,
                )
            })?;
            request.query = text.to_string();
            return Ok(request);
        }
        if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
            return Err(with_code(
                ServerError::new("persistedQuery.sha256Hash does not match the query", None),
                codes::VALIDATION_FAILED,
            ));
        }
        if request.query.len() <= MAX_PERSISTED_BYTES {
            texts.put(hash, Arc::from(request.query.as_str()));
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, persisted: serde_json::Value) -> Request {
        let mut r = Request::new(query);
        r.extensions.0.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(persisted).expect("value"),
        );
        r
    }

    fn code(e: &ServerError) -> Option<String> {
        super::super::guard::code_of(e)
    }

    #[test]
    fn unknown_registered_mismatched_and_malformed() {
        let store = PersistedQueries::new(NonZeroUsize::MIN.saturating_add(9));
        let query = "{ scrapers { id } }";
        let hash = hex::encode(Sha256::digest(query.as_bytes()));
        let by_hash = || request("", serde_json::json!({"version": 1, "sha256Hash": hash}));
        let err = store.resolve(by_hash()).expect_err("unknown");
        assert_eq!(code(&err).as_deref(), Some("PERSISTED_QUERY_NOT_FOUND"));
        let registered = store
            .resolve(request(
                query,
                serde_json::json!({"version": 1, "sha256Hash": hash.to_uppercase()}),
            ))
            .expect("registers");
        assert_eq!(registered.query, query);
        assert_eq!(store.resolve(by_hash()).expect("known").query, query);
        let wrong = store
            .resolve(request(
                "{ other }",
                serde_json::json!({"version": 1, "sha256Hash": hash}),
            ))
            .expect_err("mismatch");
        assert!(
            wrong.message.contains("does not match"),
            "{}",
            wrong.message
        );
        let version = store
            .resolve(request(
                "",
                serde_json::json!({"version": 2, "sha256Hash": hash}),
            ))
            .expect_err("version");
        assert!(version.message.contains("version 2"), "{}", version.message);
        let malformed = store
            .resolve(request("", serde_json::json!("nope")))
            .expect_err("malformed");
        assert_eq!(
            code(&malformed).as_deref(),
            Some("GRAPHQL_VALIDATION_FAILED")
        );
        // Requests without the extension pass through untouched.
        assert_eq!(
            store.resolve(Request::new(query)).expect("plain").query,
            query
        );
    }
}
