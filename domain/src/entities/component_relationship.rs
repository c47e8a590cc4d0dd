//! `component_relationships`: components adopted under another component
//! by its selectors, beside the tree's own `parent_id` (SPEC §9).

use sea_orm::entity::prelude::*;

/// A component adopted by a parent component.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "component_relationships")]
pub struct Model {
    /// The adopted component.
    #[sea_orm(primary_key, auto_increment = false)]
    pub component_id: Uuid,
    /// The adopting parent.
    #[sea_orm(primary_key, auto_increment = false)]
    pub parent_id: Uuid,
    /// The selector that matched.
    #[sea_orm(primary_key, auto_increment = false)]
    pub selector_id: String,
    /// First matched.
    pub created_at: DateTimeUtc,
    /// No longer matched.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
