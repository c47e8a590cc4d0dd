//! Request limits and error codes (SPEC §11 "Errors", §12 "Limits"): the
//! schema's one extension. It resolves persisted queries, serves parsed and
//! validated documents from the cache, rejects abusive documents before
//! execution, naming the limit and the numbers, gives every error an
//! `extensions.code`, and feeds the audit log ([`super::audit`]).
//!
//! async-graphql wraps every field's resolution in every extension (a
//! registry lookup and a boxed future per field), so a query whose document
//! this guard already admitted ([`Admission::admit`]) runs on a twin schema
//! without it; the same checks, budget charge and [`finish`] apply there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};

use super::documents::{DocumentCache, ValidationKey};
use super::persisted::PersistedQueries;

/// Limits on one GraphQL request; every one configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest selection.
    pub depth: usize,
    /// Largest complexity (a connection costs `first × child`).
    pub complexity: usize,
    /// Most aliases in one document.
    pub aliases: usize,
    /// Most directives on one field.
    pub directives_per_field: usize,
    /// Most repeated selections of one field in a selection set, summed
    /// over the document (`{ a a a … }`).
    pub duplicate_fields: usize,
    /// Most operations in one batch.
    pub batch: usize,
    /// Largest request body, bytes.
    pub body_bytes: usize,
    /// Longest a request may run.
    pub timeout: std::time::Duration,
    /// Most operations running on one WebSocket connection.
    pub subscriptions_per_connection: usize,
    /// How long a WebSocket client has to send `connection_init`.
    pub connection_init_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth: 10,
            complexity: 5_000,
            aliases: 30,
            directives_per_field: 5,
            duplicate_fields: 100,
            batch: 10,
            body_bytes: 1024 * 1024,
            timeout: std::time::Duration::from_secs(15),
            subscriptions_per_connection: 50,
            connection_init_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Error codes of SPEC §11 that this module assigns.
pub mod codes {
    /// The document does not parse.
    pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    /// The document does not validate against the schema.
    pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    /// A limit rejected the request before execution.
    pub const TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    /// An automatic persisted query hash the server does not know.
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    /// The request ran past its time limit.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// Anything unexpected.
    pub const INTERNAL: &str = "INTERNAL";
    /// A malformed request outside GraphQL (a protocol message, say).
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// A caller's request rate or complexity budget is exhausted.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// An operation the transport does not carry (a mutation over GET or
    /// a WebSocket).
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
}

/// The code of an error, if it has one.
pub fn code_of(error: &ServerError) -> Option<String> {
    error
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .and_then(|v| match v {
            async_graphql::Value::String(s) => Some(s.clone()),
            _ => None,
        })
}

/// Sets `extensions.code` on an error.
pub fn with_code(mut error: ServerError, code: &str) -> ServerError {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

fn too_complex(message: String) -> ServerError {
    with_code(ServerError::new(message, None), codes::TOO_COMPLEX)
}

#[derive(Default)]
struct Counts {
    aliases: usize,
    duplicates: usize,
    most_directives: usize,
}

fn count(set: &SelectionSet, doc: &ExecutableDocument, counts: &mut Counts, depth: usize) {
    // Fragments are expanded where spread; cycles are bounded by `depth`
    // (and rejected by validation afterwards).
    if depth > 64 {
        return;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let f = &field.node;
                if f.alias.is_some() {
                    counts.aliases += 1;
                }
                counts.most_directives = counts.most_directives.max(f.directives.len());
                let key = f.response_key().node.as_str();
                let n = seen.entry(key).or_default();
                *n += 1;
                if *n > 1 {
                    counts.duplicates += 1;
                }
                count(&f.selection_set.node, doc, counts, depth + 1);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    count(&fragment.node.selection_set.node, doc, counts, depth + 1);
                }
            }
            Selection::InlineFragment(inline) => {
                count(&inline.node.selection_set.node, doc, counts, depth + 1);
            }
        }
    }
}

/// Checks the limits a parsed document can be measured against before
/// validation: aliases, repeated fields and directives per field.
pub fn check_document(doc: &ExecutableDocument, limits: &Limits) -> Result<(), String> {
    let mut counts = Counts::default();
    for (_, operation) in doc.operations.iter() {
        count(&operation.node.selection_set.node, doc, &mut counts, 0);
    }
    if counts.aliases > limits.aliases {
        return Err(format!(
            "the query uses {} aliases; the limit is {}",
            counts.aliases, limits.aliases
        ));
    }
    if counts.duplicates > limits.duplicate_fields {
        return Err(format!(
            "the query repeats fields {} times; the limit is {}",
            counts.duplicates, limits.duplicate_fields
        ));
    }
    if counts.most_directives > limits.directives_per_field {
        return Err(format!(
            "a field carries {} directives; the limit is {}",
            counts.most_directives, limits.directives_per_field
        ));
    }
    Ok(())
}

/// True when an operation asks for `__schema` or `__type` at its root.
fn introspects(doc: &ExecutableDocument) -> bool {
    fn root_fields(set: &SelectionSet, doc: &ExecutableDocument, depth: usize) -> bool {
        depth < 16
            && set.items.iter().any(|s| match &s.node {
                Selection::Field(f) => matches!(f.node.name.node.as_str(), "__schema" | "__type"),
                Selection::FragmentSpread(spread) => doc
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|f| root_fields(&f.node.selection_set.node, doc, depth + 1)),
                Selection::InlineFragment(inline) => {
                    root_fields(&inline.node.selection_set.node, doc, depth + 1)
                }
            })
    }
    doc.operations
        .iter()
        .any(|(_, op)| root_fields(&op.node.selection_set.node, doc, 0))
}

/// What admits a request: the limits, the introspection switch, the
/// persisted-query store and the document cache. Shared by the schema's
/// extension ([`RequestGuard`]) and the fast path of [`super::Executor`].
pub(crate) struct Admission {
    limits: Limits,
    introspection: bool,
    persisted: PersistedQueries,
    documents: DocumentCache,
}

/// A query whose document was parsed, checked and validated before under
/// the same operation name and variables: it may run on the schema without
/// extensions.
pub(crate) struct Admitted {
    /// The request, its parsed document set.
    pub(crate) request: Request,
    /// Its complexity, charged against the caller's budget.
    pub(crate) complexity: usize,
}

impl Admission {
    /// The admission of a schema with these limits; `introspection: false`
    /// refuses `__schema` and `__type` with a clear error instead of a
    /// silent null.
    pub(crate) fn new(
        limits: Limits,
        introspection: bool,
        persisted: PersistedQueries,
        documents: DocumentCache,
    ) -> Self {
        Admission {
            limits,
            introspection,
            persisted,
            documents,
        }
    }

    /// Resolves the request's persisted query, then admits it when its
    /// document is a query already validated under the same operation and
    /// variables and within the limits; `Ok(Err(request))` sends it the
    /// whole way through the extension, which produces every error.
    pub(crate) fn admit(&self, request: Request) -> ServerResult<Result<Admitted, Request>> {
        let mut request = self.persisted.resolve(request)?;
        let Some(key) = ValidationKey::new(
            &request.query,
            request.operation_name.as_deref(),
            &request.variables,
        ) else {
            return Ok(Err(request));
        };
        let (Some(doc), Some(validated)) = self.documents.get(&key) else {
            return Ok(Err(request));
        };
        let queries_only = doc
            .operations
            .iter()
            .all(|(_, op)| op.node.ty == OperationType::Query);
        if !queries_only || check_validation(&self.limits, &validated).is_err() {
            return Ok(Err(request));
        }
        // A cached validation implies the document passed
        // `check_document` and the introspection switch under these same
        // limits: the extension validates only documents that did.
        request.set_parsed_query(ExecutableDocument::clone(&doc));
        Ok(Ok(Admitted {
            request,
            complexity: validated.complexity,
        }))
    }
}

/// Refuses a validated document deeper or more complex than the limits.
fn check_validation(limits: &Limits, result: &ValidationResult) -> ServerResult<()> {
    if result.depth > limits.depth {
        return Err(too_complex(format!(
            "the query is {} levels deep; the limit is {}",
            result.depth, limits.depth
        )));
    }
    if result.complexity > limits.complexity {
        return Err(too_complex(format!(
            "the query's complexity is {}; the limit is {}",
            result.complexity, limits.complexity
        )));
    }
    Ok(())
}

/// Charges `complexity` points to the caller's budget: the points
/// requested and remaining, or a `RATE_LIMITED` error with `retryAfter`.
pub(crate) fn charge(
    budget: &crate::ratelimit::Budget,
    complexity: usize,
) -> ServerResult<(usize, u32)> {
    match budget.limits.charge(&budget.key, complexity) {
        Ok(remaining) => Ok((complexity, remaining)),
        Err(refusal) => {
            let seconds = refusal.retry_after_secs();
            let mut error = with_code(ServerError::new(refusal.message, None), codes::RATE_LIMITED);
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("retryAfter", seconds);
            Err(error)
        }
    }
}

/// Finishes the response of a request that started at `started`: the
/// budget it was charged (`cost`) as `extensions.cost`, a code on every
/// error, and the request metrics.
pub(crate) fn finish(
    mut response: Response,
    operation: Option<&str>,
    started: std::time::Instant,
    cost: Option<(usize, u32)>,
) -> Response {
    if let Some((requested, remaining)) = cost {
        response.extensions.insert(
            "cost".into(),
            async_graphql::value!({"requested": requested, "remaining": remaining}),
        );
    }
    let request_error = response.data == async_graphql::Value::Null;
    for error in &mut response.errors {
        if code_of(error).is_some() {
            continue;
        }
        let code = if request_error && error.path.is_empty() {
            // e.g. an unknown operation name: the request never ran.
            codes::VALIDATION_FAILED
        } else {
            codes::INTERNAL
        };
        *error = with_code(error.clone(), code);
    }
    let operation = crate::metrics::operation_label(operation);
    metrics::counter!("stratum_graphql_requests_total", "operation" => operation.clone())
        .increment(1);
    metrics::histogram!("stratum_graphql_request_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    for error in &response.errors {
        if let Some(code) = code_of(error) {
            metrics::counter!("stratum_graphql_errors_total", "code" => code).increment(1);
        }
    }
    response
}

/// The schema extension enforcing [`Limits`] and assigning codes, with
/// the persisted-query store and the document cache it consults.
pub(crate) struct RequestGuard {
    admission: Arc<Admission>,
}

impl RequestGuard {
    /// The extension of `admission`.
    pub(crate) fn new(admission: Arc<Admission>) -> Self {
        RequestGuard { admission }
    }
}

impl ExtensionFactory for RequestGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension {
            admission: self.admission.clone(),
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
    /// `(requested, remaining)` points, when a budget was charged.
    cost: Option<(usize, u32)>,
    /// The document's mutations, for the audit log.
    mutations: super::audit::Mutations,
}

struct GuardExtension {
    admission: Arc<Admission>,
    request: Mutex<RequestState>,
}

impl GuardExtension {
    fn state(&self) -> std::sync::MutexGuard<'_, RequestState> {
        self.request.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = std::time::Instant::now();
        let response = next.run(ctx).await;
        let (operation, cost) = {
            let mut state = self.state();
            (state.operation.take(), state.cost.take())
        };
        finish(response, operation.as_deref(), started, cost)
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = self.admission.persisted.resolve(request)?;
        self.state().operation = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let admission = &self.admission;
        let limits = admission.limits;
        let operation = self.state().operation.clone();
        let key = ValidationKey::new(query, operation.as_deref(), variables);
        let (cached, validated) = match &key {
            Some(key) => admission.documents.get(key),
            None => (None, None),
        };
        let doc = match cached {
            Some(doc) => ExecutableDocument::clone(&doc),
            None => {
                let doc = next
                    .run(ctx, query, variables)
                    .await
                    .map_err(|e| match code_of(&e) {
                        Some(_) => e,
                        // The parser's own guard against deep nesting.
                        None if e.message.contains("recursion depth") => too_complex(format!(
                            "the query is nested more than 32 levels deep; the limit is {}",
                            limits.depth
                        )),
                        None => with_code(e, codes::PARSE_FAILED),
                    })?;
                if let Some(key) = &key {
                    admission.documents.put_document(key, doc.clone());
                }
                doc
            }
        };
        check_document(&doc, &limits).map_err(too_complex)?;
        if !admission.introspection && introspects(&doc) {
            return Err(with_code(
                ServerError::new("introspection is disabled on this server", None),
                codes::VALIDATION_FAILED,
            ));
        }
        let mutations = super::audit::mutation_fields(&doc, variables);
        let mut state = self.state();
        state.key = key;
        state.validated = validated;
        state.mutations = mutations;
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        let mutations = std::mem::take(&mut self.state().mutations);
        if !mutations.is_empty() {
            super::audit::log(
                mutations,
                operation_name,
                &response,
                ctx.data_opt::<crate::auth::Principal>(),
            );
        }
        response
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
        let result = match validated {
            Some(result) => result,
            None => {
                let result = next.run(ctx).await.map_err(|errors| {
                    errors
                        .into_iter()
                        .map(|e| with_code(e, codes::VALIDATION_FAILED))
                        .collect::<Vec<_>>()
                })?;
                if let Some(key) = key {
                    self.admission.documents.put_validation(key, result);
                }
                result
            }
        };
        check_validation(&self.admission.limits, &result).map_err(|e| vec![e])?;
        if let Some(budget) = ctx.data_opt::<crate::ratelimit::Budget>() {
            let cost = charge(budget, result.complexity).map_err(|e| vec![e])?;
            self.state().cost = Some(cost);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str) -> Result<(), String> {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        check_document(&doc, &Limits::default())
    }

    #[test]
    fn aliases_duplicates_and_directives_are_counted() {
        let aliases: String = (0..31).map(|i| format!("a{i}: name ")).collect();
        let err = check(&format!("{{ {aliases} }}")).expect_err("aliases");
        assert_eq!(err, "the query uses 31 aliases; the limit is 30");
        assert!(
            check(&format!(
                "{{ {} }}",
                (0..30).map(|i| format!("a{i}: name ")).collect::<String>()
            ))
            .is_ok()
        );
        let dupes = "name ".repeat(102);
        assert!(
            check(&format!("{{ {dupes} }}"))
                .expect_err("dupes")
                .contains("101 times")
        );
        let directives = "@skip(if: false) ".repeat(6);
        assert!(
            check(&format!("{{ name {directives} }}"))
                .expect_err("directives")
                .contains("6 directives")
        );
        // Aliases hidden in fragments count too.
        let err = check(&format!(
            "{{ ...F }} fragment F on Query {{ {} }}",
            (0..31).map(|i| format!("a{i}: name ")).collect::<String>()
        ))
        .expect_err("fragment aliases");
        assert!(err.contains("31 aliases"));
    }
}
