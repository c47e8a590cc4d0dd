//! The single source of truth for Stratum's database schema.
//!
//! One migration set serves SQLite and PostgreSQL: tables are declared through
//! sea-query so each backend gets its native types (`uuid`/`jsonb`/`timestamptz`
//! on Postgres, text affinity on SQLite). Postgres-only extras (GIN indexes on
//! JSON, BRIN on time columns, the event sequence) are guarded by backend.

use sea_orm_migration::prelude::*;

mod m20261124_000001_catalog;
mod m20261201_000001_read_indexes;
mod m20261202_000001_insight_lifecycle_costs;
mod m20261203_000001_api_tokens;
mod m20261204_000001_scraper_owners;

/// All migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_catalog::Migration),
            Box::new(m20261201_000001_read_indexes::Migration),
            Box::new(m20261202_000001_insight_lifecycle_costs::Migration),
            Box::new(m20261203_000001_api_tokens::Migration),
            Box::new(m20261204_000001_scraper_owners::Migration),
        ]
    }
}

pub use sea_orm_migration::MigratorTrait as Migrate;
