//! A per-replica cache of parsed and validated documents: a dashboard or
//! portal sends the same few queries over and over, and parsing and
//! validating one costs more than running it. Parsed documents are kept by
//! query text; validation results by query text, operation name and
//! variables (validation coerces variables, and complexity depends on
//! them). Only documents that parsed and validated are kept, so every
//! error still comes from a fresh parse and validation. The request guard
//! ([`super::guard`]) consults it and still checks its limits on every
//! request.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ValidationResult, Variables};
use lru::LruCache;

/// Longest query text the cache keeps (longer ones are parsed every time).
const MAX_QUERY_BYTES: usize = 16 * 1024;

/// The validation result of a document run with these arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValidationKey {
    query: Arc<str>,
    operation: Option<String>,
    variables: String,
}

impl ValidationKey {
    /// The key of a request, or `None` when its text is not cached (empty
    /// or too long).
    pub fn new(query: &str, operation: Option<&str>, variables: &Variables) -> Option<Self> {
        if query.is_empty() || query.len() > MAX_QUERY_BYTES {
            return None;
        }
        Some(ValidationKey {
            query: Arc::from(query),
            operation: operation.map(str::to_string),
            variables: serde_json::to_string(variables).unwrap_or_default(),
        })
    }
}

struct Caches {
    documents: LruCache<Arc<str>, Arc<ExecutableDocument>>,
    validations: LruCache<ValidationKey, ValidationResult>,
}

/// Parsed documents and validation results, shared by every request of a
/// schema.
pub struct DocumentCache {
    caches: Mutex<Caches>,
}

impl DocumentCache {
    /// A cache of up to `entries` documents and `entries` validations.
    pub fn new(entries: NonZeroUsize) -> Self {
        DocumentCache {
            caches: Mutex::new(Caches {
                documents: LruCache::new(entries),
                validations: LruCache::new(entries),
            }),
        }
    }

    fn caches(&self) -> MutexGuard<'_, Caches> {
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The parsed document of `key`'s text, and its validation result
    /// under `key`'s operation and variables, as far as known.
    pub fn get(
        &self,
        key: &ValidationKey,
    ) -> (Option<Arc<ExecutableDocument>>, Option<ValidationResult>) {
        let mut caches = self.caches();
        let document = caches.documents.get(&key.query).cloned();
        let validated = caches.validations.get(key).copied();
        (document, validated)
    }

    /// Keeps the document `key`'s text parsed to.
    pub fn put_document(&self, key: &ValidationKey, document: ExecutableDocument) {
        self.caches()
            .documents
            .put(key.query.clone(), Arc::new(document));
    }

    /// Keeps a successful validation.
    pub fn put_validation(&self, key: ValidationKey, result: ValidationResult) {
        self.caches().validations.put(key, result);
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{Request, Variables};
    use serde_json::json;

    use crate::graphql::build_schema;

    fn code(response: &async_graphql::Response) -> Option<String> {
        response
            .errors
            .first()
            .and_then(crate::graphql::guard::code_of)
    }

    #[tokio::test]
    async fn cached_per_text_operation_and_variables_never_errors_nor_persisted() {
        let schema = build_schema(None);
        let query = "query Q($n: Int) { configItems(first: $n) { nodes { children(first: $n) { nodes { children(first: $n) { nodes { name } } } } } } }";
        let run = |variables: serde_json::Value| {
            let schema = schema.clone();
            async move {
                schema
                    .execute(Request::new(query).variables(Variables::from_json(variables)))
                    .await
            }
        };
        for _ in 0..2 {
            // Small pages validate (execution then fails: this schema has
            // no store), large ones exceed the complexity limit, a string is
            // no Int: each time, whatever ran before.
            assert_eq!(
                code(&run(json!({"n": 2})).await).as_deref(),
                Some("INTERNAL")
            );
            assert_eq!(
                code(&run(json!({"n": 100})).await).as_deref(),
                Some("QUERY_TOO_COMPLEX")
            );
            assert_eq!(
                code(&run(json!({"n": "x"})).await).as_deref(),
                Some("GRAPHQL_VALIDATION_FAILED")
            );
        }
        // The same text under another operation name is validated anew.
        let unknown = schema
            .execute(
                Request::new(query)
                    .operation_name("Other")
                    .variables(Variables::from_json(json!({"n": 2}))),
            )
            .await;
        assert_eq!(code(&unknown).as_deref(), Some("GRAPHQL_VALIDATION_FAILED"));
        // Persisted queries (parsed by the APQ extension, no text) each run
        // their own document.
        for (query, field) in [
            ("{ __typename }", "__typename"),
            ("{ scrapers { id } }", "scrapers"),
        ] {
            use sha2::Digest;
            let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
            let mut register = Request::new(query);
            register.extensions.insert(
                "persistedQuery".into(),
                async_graphql::Value::from_json(json!({"version": 1, "sha256Hash": hash}))
                    .expect("value"),
            );
            schema.execute(register).await;
            let mut by_hash = Request::new("");
            by_hash.extensions.insert(
                "persistedQuery".into(),
                async_graphql::Value::from_json(json!({"version": 1, "sha256Hash": hash}))
                    .expect("value"),
            );
            let response = schema.execute(by_hash).await.into_result();
            let asked = |r: &async_graphql::Response| {
                r.data
                    .clone()
                    .into_json()
                    .ok()
                    .is_some_and(|d| d.get(field).is_some())
            };
            match response {
                Ok(r) => assert!(asked(&r), "{field}: {:?}", r.data),
                // No store behind this schema: `scrapers` fails, but it ran.
                Err(errors) => {
                    assert_eq!(field, "scrapers", "{errors:?}");
                    assert_eq!(errors[0].path.len(), 1, "{errors:?}");
                }
            }
        }
        // A document that failed to parse is parsed (and fails) again.
        for _ in 0..2 {
            let broken = schema.execute("{ configItems(first: ").await;
            assert_eq!(code(&broken).as_deref(), Some("GRAPHQL_PARSE_FAILED"));
        }
    }
}
