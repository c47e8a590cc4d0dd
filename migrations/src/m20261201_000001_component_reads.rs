//! Indexes for reading the topology: components by name and by parent,
//! and the links from a config item to its components and from a parent
//! component to the components it adopted.

use sea_orm_migration::prelude::*;

/// Adds the component read indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(table, index, columns)` of every index this migration adds.
const INDEXES: [(&str, &str, &[&str]); 4] = [
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
