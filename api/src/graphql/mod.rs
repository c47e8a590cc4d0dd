//! The GraphQL schema of SPEC §11 over the catalog store: the Relay `Node`
//! interface, items with their edges, catalog-wide change search, scrapers,
//! insight mutations, and the batching loaders behind them; limits and error codes are
//! enforced by [`guard`].

use async_graphql::dataloader::DataLoader;
use async_graphql::{SDLExportOptions, Schema};
use stratum_domain::Store;

mod audit;
mod connection;
mod documents;
mod filters;
pub mod guard;
mod loaders;
pub mod mutations;
mod persisted;
pub mod subscriptions;
mod types;

pub use guard::Limits;
pub use types::{ConfigItem, QueryRoot, global_id};

/// Entries of the automatic-persisted-query store (per replica).
pub const APQ_ENTRIES: std::num::NonZeroUsize =
    std::num::NonZeroUsize::new(10_000).expect("non-zero");
/// Parsed documents (and validation results) kept per replica.
pub const DOCUMENT_CACHE_ENTRIES: std::num::NonZeroUsize =
    std::num::NonZeroUsize::new(1_000).expect("non-zero");

/// Switches of the schema beyond its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Request limits.
    pub limits: Limits,
    /// Serve introspection (and field suggestions in errors).
    pub introspection: bool,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions {
            limits: Limits::default(),
            introspection: true,
        }
    }
}

/// The executable schema.
pub type StratumSchema =
    Schema<QueryRoot, mutations::MutationRoot, subscriptions::SubscriptionRoot>;

/// Builds the schema with the default options.
pub fn build_schema(store: Option<Store>) -> StratumSchema {
    build_schema_with(store, SchemaOptions::default())
}

/// Builds the schema with the store as context data.
pub fn build_schema_with(store: Option<Store>, options: SchemaOptions) -> StratumSchema {
    builder(store.as_ref(), options)
        .extension(guard::RequestGuard::new(std::sync::Arc::new(admission(
            options,
        ))))
        .finish()
}

/// The admission of requests under `options`, with empty caches.
fn admission(options: SchemaOptions) -> guard::Admission {
    guard::Admission::new(
        options.limits,
        options.introspection,
        persisted::PersistedQueries::new(APQ_ENTRIES),
        documents::DocumentCache::new(DOCUMENT_CACHE_ENTRIES),
    )
}

/// The schema's types, switches and data, without its extension.
fn builder(
    store: Option<&Store>,
    options: SchemaOptions,
) -> async_graphql::SchemaBuilder<QueryRoot, mutations::MutationRoot, subscriptions::SubscriptionRoot>
{
    let mut builder = Schema::build(
        QueryRoot,
        mutations::MutationRoot,
        subscriptions::SubscriptionRoot,
    );
    if !options.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    if let Some(store) = store {
        // Shared across requests: it caches nothing, it only batches.
        let loader = DataLoader::new(loaders::CatalogLoader::new(store.clone()), tokio::spawn);
        builder = builder.data(store.clone()).data(loader);
    }
    builder
}

/// The schema and its fast path: queries whose documents the guard has
/// admitted before run on a twin schema without extensions (see
/// [`guard`]); everything else, and every first sight of a document, runs
/// through the guard.
#[derive(Clone)]
pub struct Executor {
    /// The schema with the guard: subscriptions, mutations, the SDL, and
    /// every request the fast path does not take.
    pub schema: StratumSchema,
    /// The same schema without extensions and with only the validation
    /// that computes complexity and depth.
    fast: StratumSchema,
    admission: std::sync::Arc<guard::Admission>,
}

impl Executor {
    /// The schemas over `store` with `options`.
    pub fn new(store: Option<Store>, options: SchemaOptions) -> Executor {
        let admission = std::sync::Arc::new(admission(options));
        Executor {
            schema: builder(store.as_ref(), options)
                .extension(guard::RequestGuard::new(admission.clone()))
                .finish(),
            fast: builder(store.as_ref(), options)
                .validation_mode(async_graphql::ValidationMode::Fast)
                .finish(),
            admission,
        }
    }

    /// Runs one request charged to `budget` (when the caller has one).
    pub async fn execute(
        &self,
        request: async_graphql::Request,
        budget: Option<&crate::ratelimit::Budget>,
    ) -> async_graphql::Response {
        let started = std::time::Instant::now();
        let admitted = match self.admission.admit(request) {
            Ok(Ok(admitted)) => admitted,
            Ok(Err(request)) => return self.schema.execute(request).await,
            Err(error) => {
                let response = async_graphql::Response::from_errors(vec![error]);
                return guard::finish(response, None, started, None);
            }
        };
        let operation = admitted.request.operation_name.clone();
        let cost = match budget.map(|b| guard::charge(b, admitted.complexity)) {
            Some(Err(error)) => {
                let response = async_graphql::Response::from_errors(vec![error]);
                return guard::finish(response, operation.as_deref(), started, None);
            }
            Some(Ok(cost)) => Some(cost),
            None => None,
        };
        let response = self.fast.execute(admitted.request).await;
        guard::finish(response, operation.as_deref(), started, cost)
    }
}

/// `request` running as `principal`: its identity for the guards, and,
/// for a scoped caller, `scoped` (the store restricted to its scope, see
/// [`scoped_store`]) with a loader of its own; request data takes
/// precedence over the schema's shared store and loader.
pub fn as_caller(
    request: async_graphql::Request,
    principal: &crate::auth::Principal,
    scoped: Option<&Store>,
) -> async_graphql::Request {
    let request = request.data(principal.clone());
    match scoped {
        Some(scoped) => {
            let loader = DataLoader::new(loaders::CatalogLoader::new(scoped.clone()), tokio::spawn);
            request.data(scoped.clone()).data(loader)
        }
        None => request,
    }
}

/// `store` restricted to the scope of `principal`, when it has one.
pub fn scoped_store(store: &Store, principal: &crate::auth::Principal) -> Option<Store> {
    principal
        .scope
        .as_ref()
        .map(|scope| store.scoped(scope.clone()))
}

/// The SDL committed as `schema.graphql` (sorted, so diffs stay small).
pub fn sdl() -> String {
    build_schema(None).sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
