//! Ownership fencing (SPEC §2 (b)): the token of the replica that last took
//! each scraper's lock. Every write of a fenced store handle checks it in
//! its own transaction, so a replica that lost a scraper cannot commit
//! another batch of it once the new owner has claimed it.

use sea_orm_migration::prelude::*;

/// Adds `scraper_owners`.
#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(n: &str) -> Alias {
    Alias::new(n)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("scraper_owners"))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(name("scraper_id"))
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(name("token")).text().not_null())
                    .col(
                        ColumnDef::new(name("claimed_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(name("scraper_owners"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
