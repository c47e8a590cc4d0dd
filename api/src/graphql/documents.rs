//! A per-replica cache of parsed and validated documents: a dashboard or
//! portal sends the same few queries over and over, and parsing and
//! validating one costs more than running it. Parsed documents are kept by
//! query text; validation results by query text, operation name and
//! variables (validation coerces variables, and complexity depends on
//! them). Only documents that parsed and validated are kept, so every
//! error still comes from a fresh parse and validation. The limits of
//! [`super::guard`] run outside this cache, on every request. Persisted
//! queries arrive already parsed, with no text, and pass through.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError, ServerResult, ValidationResult, Variables};
use lru::LruCache;

/// Longest query text the cache keeps (longer ones are parsed every time).
const MAX_QUERY_BYTES: usize = 16 * 1024;

/// The validation result of a document run with these arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ValidationKey {
    query: Arc<str>,
    operation: Option<String>,
    variables: String,
}

struct Caches {
    documents: LruCache<Arc<str>, Arc<ExecutableDocument>>,
    validations: LruCache<ValidationKey, ValidationResult>,
}

/// The schema extension; one cache shared by every request of a schema.
pub struct DocumentCache {
    caches: Arc<Mutex<Caches>>,
}

impl DocumentCache {
    /// A cache of up to `entries` documents and `entries` validations.
    pub fn new(entries: NonZeroUsize) -> Self {
        DocumentCache {
            caches: Arc::new(Mutex::new(Caches {
                documents: LruCache::new(entries),
                validations: LruCache::new(entries),
            })),
        }
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CacheExtension {
            caches: self.caches.clone(),
            request: Mutex::new(RequestState::default()),
        })
    }
}

/// What one request learned on its way through the hooks.
#[derive(Default)]
struct RequestState {
    operation: Option<String>,
    key: Option<ValidationKey>,
    validated: Option<ValidationResult>,
}

struct CacheExtension {
    caches: Arc<Mutex<Caches>>,
    request: Mutex<RequestState>,
}

impl CacheExtension {
    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RequestState> {
        self.request.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Extension for CacheExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // After the inner extensions (persisted queries fill in the query).
        let request = next.run(ctx, request).await?;
        self.state().operation = request.operation_name.clone();
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // An empty text is a persisted query the APQ extension has already
        // parsed: its document is not this text's, so it is never cached.
        if query.is_empty() || query.len() > MAX_QUERY_BYTES {
            return next.run(ctx, query, variables).await;
        }
        let text: Arc<str> = Arc::from(query);
        let key = ValidationKey {
            query: text.clone(),
            operation: self.state().operation.clone(),
            variables: serde_json::to_string(variables).unwrap_or_default(),
        };
        let (document, validated) = {
            let mut caches = self.caches();
            let document = caches.documents.get(&text).cloned();
            let validated = caches.validations.get(&key).copied();
            (document, validated)
        };
        let document = match document {
            Some(document) => ExecutableDocument::clone(&document),
            None => {
                let document = next.run(ctx, query, variables).await?;
                self.caches()
                    .documents
                    .put(text, Arc::new(document.clone()));
                document
            }
        };
        let mut state = self.state();
        state.validated = validated;
        state.key = Some(key);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let (validated, key) = {
            let mut state = self.state();
            (state.validated.take(), state.key.take())
        };
        if let Some(result) = validated {
            return Ok(result);
        }
        let result = next.run(ctx).await?;
        if let Some(key) = key {
            self.caches().validations.put(key, result);
        }
        Ok(result)
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
