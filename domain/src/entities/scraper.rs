//! `scrapers`: one row per ScrapeConfig.

use sea_orm::entity::prelude::*;

/// A registered scraper.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scrapers")]
pub struct Model {
    /// UUIDv5 of namespace and name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// ScrapeConfig name.
    pub name: String,
    /// ScrapeConfig namespace.
    pub namespace: String,
    /// The spec, secrets elided.
    #[sea_orm(column_type = "JsonBinary")]
    pub spec: Json,
    /// `file|crd|api`.
    pub source: String,
    /// Fencing token of the owning replica.
    pub owner_token: Option<String>,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Updated.
    pub updated_at: DateTimeUtc,
    /// Deleted.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
