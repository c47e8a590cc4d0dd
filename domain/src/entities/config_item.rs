//! `config_items`: everything a scraper found.

use sea_orm::entity::prelude::*;

/// A stored config item.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "config_items")]
pub struct Model {
    /// Source UUID or UUIDv5 of the natural key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owning scraper.
    pub scraper_id: Uuid,
    /// Lower-cased external ids (JSON array).
    #[sea_orm(column_type = "JsonBinary")]
    pub external_ids: Json,
    /// `external_ids[0]`.
    pub primary_external_id: String,
    /// e.g. `Kubernetes::Pod`.
    #[sea_orm(column_name = "type")]
    pub item_type: String,
    /// e.g. `Pod`.
    pub config_class: String,
    /// Display name.
    pub name: String,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Tags (JSON object).
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: Json,
    /// Labels (JSON object).
    #[sea_orm(column_type = "JsonBinary")]
    pub labels: Json,
    /// Display properties (JSON array).
    #[sea_orm(column_type = "JsonBinary")]
    pub properties: Json,
    /// The normalized config document.
    #[sea_orm(column_type = "JsonBinary")]
    pub config: Json,
    /// SHA-256 of `config`.
    pub config_hash: String,
    /// SHA-256 of everything a scrape writes (config hash and metadata):
    /// equal hashes mean nothing to write.
    pub row_hash: String,
    /// Health (`healthy|unhealthy|warning|unknown`).
    pub health: String,
    /// Human-readable status.
    pub status: Option<String>,
    /// Reconciled flag.
    pub ready: bool,
    /// Health message.
    pub description: Option<String>,
    /// Worst of own and descendant health.
    pub rolled_up_health: String,
    /// Counts of hard descendants by health.
    #[sea_orm(column_type = "JsonBinary")]
    pub descendant_health: Json,
    /// Hard parent.
    pub parent_id: Option<Uuid>,
    /// Ancestor ids from the root to the parent, joined with `.`.
    pub path: String,
    /// File, URL or `kubernetes/<cluster>`.
    pub source: Option<String>,
    /// Cost per minute in micro-units.
    pub cost_per_minute: Option<i64>,
    /// Cost over the last day in micro-units.
    pub cost_total_1d: Option<i64>,
    /// Cost over the last 7 days in micro-units.
    pub cost_total_7d: Option<i64>,
    /// Cost over the last 30 days in micro-units.
    pub cost_total_30d: Option<i64>,
    /// Currency of the cost fields.
    pub currency: Option<String>,
    /// First stored.
    pub created_at: DateTimeUtc,
    /// Last time `config` changed.
    pub updated_at: DateTimeUtc,
    /// Last time a scrape saw it.
    pub last_scraped_at: DateTimeUtc,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTimeUtc>,
    /// Why it was deleted.
    pub delete_reason: Option<String>,
}

/// No declared relations: joins are written explicitly in the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
