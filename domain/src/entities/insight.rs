//! `insights`: findings about items (SPEC §7).

use sea_orm::entity::prelude::*;

/// One finding about one item.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "insights")]
pub struct Model {
    /// UUIDv5(`config_id|analyzer|key`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Event cursor.
    pub seq: i64,
    /// The item.
    pub config_id: Uuid,
    /// The scraper that found it.
    pub scraper_id: Uuid,
    /// Rule or tool name.
    pub analyzer: String,
    /// e.g. `security`.
    pub analysis_type: String,
    /// `info…critical`.
    pub severity: String,
    /// `open|resolved|silenced`.
    pub status: String,
    /// One line.
    pub summary: String,
    /// Longer text.
    pub message: String,
    /// Structured details.
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    /// First seen.
    pub first_observed: DateTimeUtc,
    /// Last seen.
    pub last_observed: DateTimeUtc,
    /// Silenced until, if silenced.
    pub silenced_until: Option<DateTimeUtc>,
    /// When `status` last changed.
    pub status_changed_at: Option<DateTimeUtc>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
