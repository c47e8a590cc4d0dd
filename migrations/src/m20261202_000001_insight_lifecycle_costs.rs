//! Insight lifecycle and costs: when an insight's status last changed (for
//! silences that expire and the purge of old resolved insights), the index
//! that finds a scraper's unobserved insights, and the imported cost rows
//! of SPEC §8.

use sea_orm_migration::prelude::*;

/// Adds `insights.status_changed_at` and `cost_records`.
#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(n: &str) -> Alias {
    Alias::new(n)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("insights", "status_changed_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(name("insights"))
                        .add_column(
                            ColumnDef::new(name("status_changed_at"))
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_insights_scraper_status_observed")
                    .table(name("insights"))
                    .col(name("scraper_id"))
                    .col(name("status"))
                    .col(name("last_observed"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("cost_records"))
                    .if_not_exists()
                    .col(ColumnDef::new(name("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(name("scraper_id")).uuid().not_null())
                    .col(ColumnDef::new(name("external_id")).text().not_null())
                    .col(ColumnDef::new(name("config_id")).uuid().null())
                    .col(ColumnDef::new(name("service")).text().null())
                    .col(
                        ColumnDef::new(name("period_start"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(name("period_end"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(name("billed_cost")).big_integer().not_null())
                    .col(
                        ColumnDef::new(name("effective_cost"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(name("currency")).text().not_null())
                    .col(ColumnDef::new(name("fingerprint")).text().not_null())
                    .col(
                        ColumnDef::new(name("imported_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (idx, cols, unique) in [
            (
                "ux_cost_records_key",
                &[
                    "scraper_id",
                    "external_id",
                    "period_start",
                    "period_end",
                    "fingerprint",
                ][..],
                true,
            ),
            (
                "ix_cost_records_config",
                &["config_id", "period_end"][..],
                false,
            ),
            ("ix_cost_records_external", &["external_id"][..], false),
        ] {
            let mut stmt = Index::create();
            stmt.name(idx).table(name("cost_records")).if_not_exists();
            for c in cols {
                stmt.col(name(c));
            }
            if unique {
                stmt.unique();
            }
            manager.create_index(stmt.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(name("cost_records"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_insights_scraper_status_observed")
                    .table(name("insights"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(name("insights"))
                    .drop_column(name("status_changed_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
