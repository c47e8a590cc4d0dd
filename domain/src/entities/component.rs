//! `components`: the topology over config items (SPEC §9).

use sea_orm::entity::prelude::*;

/// A node of a topology.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "components")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The defining topology.
    pub topology_id: Uuid,
    /// Parent component.
    pub parent_id: Option<Uuid>,
    /// Ancestor ids.
    pub path: String,
    /// Display name.
    pub name: String,
    /// Component type.
    #[sea_orm(column_name = "type")]
    pub component_type: String,
    /// Own health.
    pub health: String,
    /// Status text.
    pub status: Option<String>,
    /// Display properties.
    #[sea_orm(column_type = "JsonBinary")]
    pub properties: Json,
    /// Selectors as declared.
    #[sea_orm(column_type = "JsonBinary")]
    pub selectors: Json,
    /// Rolled-up health.
    pub rolled_up_health: String,
    /// Health counts and open insights.
    #[sea_orm(column_type = "JsonBinary")]
    pub summary: Json,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Updated.
    pub updated_at: DateTimeUtc,
    /// Soft-deleted.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
