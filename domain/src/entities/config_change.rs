//! `config_changes`: diffs, health transitions and source events (SPEC §5).

use sea_orm::entity::prelude::*;

/// One (possibly deduplicated) change of an item.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "config_changes")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Monotonic event cursor, renewed on dedupe bumps.
    pub seq: i64,
    /// The item.
    pub config_id: Uuid,
    /// e.g. `diff`, `Unhealthy`, `BackOff`.
    pub change_type: String,
    /// `info…critical`.
    pub severity: String,
    /// e.g. `diff`, `health`, `kubelet`.
    pub source: String,
    /// One-line summary.
    pub summary: String,
    /// RFC 7386 merge patch.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub patches: Option<Json>,
    /// Unified diff.
    pub diff: Option<String>,
    /// Structured details.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub details: Option<Json>,
    /// Source-assigned id for replay-safe upserts.
    pub external_change_id: Option<String>,
    /// Dedupe fingerprint.
    pub fingerprint: String,
    /// How many times it was observed.
    pub count: i64,
    /// First observation.
    pub first_observed: DateTimeUtc,
    /// Latest observation.
    pub created_at: DateTimeUtc,
    /// Who caused it, when known.
    pub created_by: Option<String>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
