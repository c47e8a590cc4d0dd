//! `scrape_runs`: one row per scrape (last 100 per scraper kept).

use sea_orm::entity::prelude::*;

/// A scrape run and its counters.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scrape_runs")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The scraper.
    pub scraper_id: Uuid,
    /// `full|incremental|push`.
    pub mode: String,
    /// `running|succeeded|partial|failed|panicked`.
    pub status: String,
    /// Start.
    pub started_at: DateTimeUtc,
    /// End.
    pub finished_at: Option<DateTimeUtc>,
    /// Items the scraper produced.
    pub items_scraped: i64,
    /// New items.
    pub items_created: i64,
    /// Items whose row changed.
    pub items_updated: i64,
    /// Items only touched (`last_scraped_at`).
    pub items_unchanged: i64,
    /// Items soft-deleted.
    pub items_deleted: i64,
    /// Changes recorded (new rows and dedupe bumps).
    pub changes_created: i64,
    /// Edges whose other end was not found.
    pub edges_unresolved: i64,
    /// The safety valve blocked deletions.
    pub deletions_blocked: bool,
    /// First 100 errors.
    #[sea_orm(column_type = "JsonBinary")]
    pub errors: Json,
    /// Warnings.
    #[sea_orm(column_type = "JsonBinary")]
    pub warnings: Json,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
