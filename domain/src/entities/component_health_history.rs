//! `component_health_history`: component health transitions.

use sea_orm::entity::prelude::*;

/// One transition.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "component_health_history")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Event cursor.
    pub seq: i64,
    /// The component.
    pub component_id: Uuid,
    /// Health before.
    pub previous: String,
    /// Health after.
    pub current: String,
    /// When.
    pub at: DateTimeUtc,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
