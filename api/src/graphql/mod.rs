//! The GraphQL schema of SPEC §11 over the catalog store: the Relay `Node`
//! interface, items with their edges, catalog-wide change search, scrapers,
//! and the batching loaders behind them.

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptyMutation, EmptySubscription, SDLExportOptions, Schema};
use stratum_domain::Store;

mod connection;
mod filters;
mod loaders;
mod types;

pub use types::{ConfigItem, QueryRoot, global_id};

/// The executable schema.
pub type StratumSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// Builds the schema with the store as context data.
pub fn build_schema(store: Option<Store>) -> StratumSchema {
    let mut builder = Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .limit_depth(10)
        .limit_complexity(5000);
    if let Some(store) = store {
        // Shared across requests: it caches nothing, it only batches.
        let loader = DataLoader::new(loaders::CatalogLoader::new(store.clone()), tokio::spawn);
        builder = builder.data(store).data(loader);
    }
    builder.finish()
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
