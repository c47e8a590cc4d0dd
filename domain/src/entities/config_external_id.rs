//! `config_external_ids`: lookups of items by any of their external ids.

use sea_orm::entity::prelude::*;

/// One external id of one item.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "config_external_ids")]
pub struct Model {
    /// Lower-cased external id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    /// The item.
    #[sea_orm(primary_key, auto_increment = false)]
    pub config_id: Uuid,
    /// The item's type.
    #[sea_orm(column_name = "type")]
    pub item_type: String,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
