//! `config_component_relationships`: which config items a component's
//! selectors attached to it (SPEC §9).

use sea_orm::entity::prelude::*;

/// A config item attached to a component by one of its selectors.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "config_component_relationships")]
pub struct Model {
    /// The component.
    #[sea_orm(primary_key, auto_increment = false)]
    pub component_id: Uuid,
    /// The attached item.
    #[sea_orm(primary_key, auto_increment = false)]
    pub config_id: Uuid,
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
