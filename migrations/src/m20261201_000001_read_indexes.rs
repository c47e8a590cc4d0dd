//! Read indexes: a namespace's items by name (the catalog's most common
//! list page, served in index order instead of sorting the namespace), and
//! the topology's reads: components by name and by parent, and the links
//! from an item to its components and from a parent component to the
//! components it adopted.

use sea_orm_migration::prelude::*;

/// Adds the read indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(table, index, columns)` of every index this migration adds.
const INDEXES: [(&str, &str, &[&str]); 5] = [
    (
        "config_items",
        "ix_config_items_namespace_name_id",
        &["namespace", "name", "id"],
    ),
    ("components", "ix_components_name_id", &["name", "id"]),
    ("components", "ix_components_parent", &["parent_id"]),
    (
        "config_component_relationships",
        "ix_config_component_relationships_config",
        &["config_id"],
    ),
    (
        "component_relationships",
        "ix_component_relationships_parent",
        &["parent_id"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index, columns) in INDEXES {
            let mut stmt = Index::create();
            stmt.name(index).table(Alias::new(table)).if_not_exists();
            for c in columns {
                stmt.col(Alias::new(*c));
            }
            manager.create_index(stmt.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index, _) in INDEXES {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
