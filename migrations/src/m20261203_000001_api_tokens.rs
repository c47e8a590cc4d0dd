//! API tokens minted by `stratum token` (SPEC §12): their ids, who and what
//! they are for, and when they were revoked; replicas reload the revoked
//! set from here.

use sea_orm_migration::prelude::*;

/// Adds `api_tokens`.
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
                    .table(name("api_tokens"))
                    .if_not_exists()
                    .col(ColumnDef::new(name("jti")).text().not_null().primary_key())
                    .col(ColumnDef::new(name("subject")).text().not_null())
                    .col(ColumnDef::new(name("role")).text().not_null())
                    .col(
                        ColumnDef::new(name("created_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(name("expires_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(name("revoked_at"))
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(name("api_tokens"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
