//! The GraphQL schema: a first slice of SPEC §11 (`configItem`,
//! `configItems` as a Relay connection) over the catalog store.

use async_graphql::{EmptyMutation, EmptySubscription, SDLExportOptions, Schema};
use stratum_domain::Store;

mod connection;
mod filters;
mod types;

pub use types::{ConfigItem, QueryRoot};

/// The executable schema.
pub type StratumSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// Builds the schema with the store as context data.
pub fn build_schema(store: Option<Store>) -> StratumSchema {
    let mut builder = Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .limit_depth(10)
        .limit_complexity(5000);
    if let Some(store) = store {
        builder = builder.data(store);
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
