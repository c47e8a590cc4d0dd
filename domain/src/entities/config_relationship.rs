//! `config_relationships`: edges of the catalog graph (SPEC §4).

use sea_orm::entity::prelude::*;

/// A directed edge `from → to` (from is upstream).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "config_relationships")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Upstream item.
    pub from_id: Uuid,
    /// Downstream item.
    pub to_id: Uuid,
    /// Rule name, e.g. `ReplicaSetPod`.
    pub relation: String,
    /// Mirrors `parent_id` when true.
    pub hard: bool,
    /// The scraper that emitted it.
    pub scraper_id: Uuid,
    /// First seen.
    pub created_at: DateTimeUtc,
    /// Last (re)confirmed.
    pub last_seen_at: DateTimeUtc,
    /// Tombstone.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
