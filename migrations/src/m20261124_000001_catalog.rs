//! The catalog: scrapers and their runs, config items with external ids,
//! relationships, changes, insights, components and their links.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Creates every table of the catalog (SPEC §3).
#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(n: &str) -> Alias {
    Alias::new(n)
}

fn uuid(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).uuid().not_null().to_owned()
}

fn uuid_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).uuid().null().to_owned()
}

fn text(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).text().not_null().to_owned()
}

fn text_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).text().null().to_owned()
}

fn json(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).json_binary().not_null().to_owned()
}

fn json_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).json_binary().null().to_owned()
}

fn ts(n: &str) -> ColumnDef {
    ColumnDef::new(name(n))
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn ts_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n))
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn big(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).big_integer().not_null().to_owned()
}

fn big_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).big_integer().null().to_owned()
}

fn boolean(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).boolean().not_null().to_owned()
}

fn pk(n: &str) -> ColumnDef {
    ColumnDef::new(name(n))
        .uuid()
        .not_null()
        .primary_key()
        .to_owned()
}

fn index(table: &str, idx: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(idx).table(name(table)).if_not_exists();
    for c in cols {
        stmt.col(name(c));
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table(name("scrapers"))
                .if_not_exists()
                .col(pk("id"))
                .col(text("name"))
                .col(text("namespace"))
                .col(json("spec"))
                .col(text("source"))
                .col(text_null("owner_token"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .to_owned(),
            Table::create()
                .table(name("scrape_runs"))
                .if_not_exists()
                .col(pk("id"))
                .col(uuid("scraper_id"))
                .col(text("mode"))
                .col(text("status"))
                .col(ts("started_at"))
                .col(ts_null("finished_at"))
                .col(big("items_scraped"))
                .col(big("items_created"))
                .col(big("items_updated"))
                .col(big("items_unchanged"))
                .col(big("items_deleted"))
                .col(big("changes_created"))
                .col(big("edges_unresolved"))
                .col(boolean("deletions_blocked"))
                .col(json("errors"))
                .col(json("warnings"))
                .to_owned(),
            Table::create()
                .table(name("config_items"))
                .if_not_exists()
                .col(pk("id"))
                .col(uuid("scraper_id"))
                .col(json("external_ids"))
                .col(text("primary_external_id"))
                .col(text("type"))
                .col(text("config_class"))
                .col(text("name"))
                .col(text_null("namespace"))
                .col(json("tags"))
                .col(json("labels"))
                .col(json("properties"))
                .col(json("config"))
                .col(text("config_hash"))
                .col(text("row_hash"))
                .col(text("health"))
                .col(text_null("status"))
                .col(boolean("ready"))
                .col(text_null("description"))
                .col(text("rolled_up_health"))
                .col(json("descendant_health"))
                .col(uuid_null("parent_id"))
                .col(text("path"))
                .col(text_null("source"))
                .col(big_null("cost_per_minute"))
                .col(big_null("cost_total_1d"))
                .col(big_null("cost_total_7d"))
                .col(big_null("cost_total_30d"))
                .col(text_null("currency"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts("last_scraped_at"))
                .col(ts_null("deleted_at"))
                .col(text_null("delete_reason"))
                .to_owned(),
            Table::create()
                .table(name("config_external_ids"))
                .if_not_exists()
                .col(text("external_id"))
                .col(uuid("config_id"))
                .col(text("type"))
                .primary_key(
                    Index::create()
                        .col(name("external_id"))
                        .col(name("config_id")),
                )
                .to_owned(),
            Table::create()
                .table(name("config_relationships"))
                .if_not_exists()
                .col(pk("id"))
                .col(uuid("from_id"))
                .col(uuid("to_id"))
                .col(text("relation"))
                .col(boolean("hard"))
                .col(uuid("scraper_id"))
                .col(ts("created_at"))
                .col(ts("last_seen_at"))
                .col(ts_null("deleted_at"))
                .to_owned(),
            Table::create()
                .table(name("config_changes"))
                .if_not_exists()
                .col(pk("id"))
                .col(big("seq"))
                .col(uuid("config_id"))
                .col(text("change_type"))
                .col(text("severity"))
                .col(text("source"))
                .col(text("summary"))
                .col(json_null("patches"))
                .col(text_null("diff"))
                .col(json_null("details"))
                .col(text_null("external_change_id"))
                .col(text("fingerprint"))
                .col(big("count"))
                .col(ts("first_observed"))
                .col(ts("created_at"))
                .col(text_null("created_by"))
                .to_owned(),
            Table::create()
                .table(name("insights"))
                .if_not_exists()
                .col(pk("id"))
                .col(big("seq"))
                .col(uuid("config_id"))
                .col(uuid("scraper_id"))
                .col(text("analyzer"))
                .col(text("analysis_type"))
                .col(text("severity"))
                .col(text("status"))
                .col(text("summary"))
                .col(text("message"))
                .col(json("details"))
                .col(ts("first_observed"))
                .col(ts("last_observed"))
                .col(ts_null("silenced_until"))
                .to_owned(),
            Table::create()
                .table(name("components"))
                .if_not_exists()
                .col(pk("id"))
                .col(uuid("topology_id"))
                .col(uuid_null("parent_id"))
                .col(text("path"))
                .col(text("name"))
                .col(text("type"))
                .col(text("health"))
                .col(text_null("status"))
                .col(json("properties"))
                .col(json("selectors"))
                .col(text("rolled_up_health"))
                .col(json("summary"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .to_owned(),
            Table::create()
                .table(name("component_relationships"))
                .if_not_exists()
                .col(uuid("component_id"))
                .col(uuid("parent_id"))
                .col(text("selector_id"))
                .col(ts("created_at"))
                .col(ts_null("deleted_at"))
                .primary_key(
                    Index::create()
                        .col(name("component_id"))
                        .col(name("parent_id"))
                        .col(name("selector_id")),
                )
                .to_owned(),
            Table::create()
                .table(name("config_component_relationships"))
                .if_not_exists()
                .col(uuid("component_id"))
                .col(uuid("config_id"))
                .col(text("selector_id"))
                .col(ts("created_at"))
                .col(ts_null("deleted_at"))
                .primary_key(
                    Index::create()
                        .col(name("component_id"))
                        .col(name("config_id"))
                        .col(name("selector_id")),
                )
                .to_owned(),
            Table::create()
                .table(name("component_health_history"))
                .if_not_exists()
                .col(pk("id"))
                .col(big("seq"))
                .col(uuid("component_id"))
                .col(text("previous"))
                .col(text("current"))
                .col(ts("at"))
                .to_owned(),
            Table::create()
                .table(name("sequences"))
                .if_not_exists()
                .col(ColumnDef::new(name("name")).text().not_null().primary_key())
                .col(big("value"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }

        let indexes = [
            index(
                "scrapers",
                "ux_scrapers_namespace_name",
                &["namespace", "name"],
                true,
            ),
            index(
                "scrape_runs",
                "ix_scrape_runs_scraper",
                &["scraper_id", "started_at"],
                false,
            ),
            index(
                "config_items",
                "ux_config_items_natural_key",
                &["scraper_id", "type", "primary_external_id"],
                true,
            ),
            index(
                "config_items",
                "ix_config_items_parent",
                &["parent_id"],
                false,
            ),
            index("config_items", "ix_config_items_path", &["path"], false),
            index(
                "config_items",
                "ix_config_items_type_name",
                &["type", "name"],
                false,
            ),
            index(
                "config_items",
                "ix_config_items_namespace_type",
                &["namespace", "type"],
                false,
            ),
            index(
                "config_items",
                "ix_config_items_deleted",
                &["deleted_at"],
                false,
            ),
            index(
                "config_items",
                "ix_config_items_name_id",
                &["name", "id"],
                false,
            ),
            index(
                "config_external_ids",
                "ix_config_external_ids_config",
                &["config_id"],
                false,
            ),
            index(
                "config_relationships",
                "ux_config_relationships_edge",
                &["from_id", "to_id", "relation", "scraper_id"],
                true,
            ),
            index(
                "config_relationships",
                "ix_config_relationships_to",
                &["to_id"],
                false,
            ),
            index("config_changes", "ux_config_changes_seq", &["seq"], true),
            index(
                "config_changes",
                "ux_config_changes_external",
                &["config_id", "external_change_id"],
                true,
            ),
            index(
                "config_changes",
                "ix_config_changes_config_created",
                &["config_id", "created_at"],
                false,
            ),
            index(
                "config_changes",
                "ix_config_changes_fingerprint",
                &["config_id", "fingerprint", "created_at"],
                false,
            ),
            index(
                "insights",
                "ix_insights_config_status",
                &["config_id", "status"],
                false,
            ),
            index("insights", "ux_insights_seq", &["seq"], true),
            index(
                "components",
                "ux_components_natural_key",
                &["topology_id", "path", "type", "name"],
                true,
            ),
            index(
                "component_health_history",
                "ux_component_health_history_seq",
                &["seq"],
                true,
            ),
        ];
        for idx in indexes {
            manager.create_index(idx).await?;
        }

        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for sql in [
                "CREATE INDEX IF NOT EXISTS gx_config_items_tags ON config_items USING GIN (tags jsonb_path_ops)",
                "CREATE INDEX IF NOT EXISTS gx_config_items_labels ON config_items USING GIN (labels jsonb_path_ops)",
                "CREATE INDEX IF NOT EXISTS bx_config_changes_created ON config_changes USING BRIN (created_at)",
                "CREATE SEQUENCE IF NOT EXISTS stratum_event_seq",
            ] {
                db.execute_unprepared(sql).await?;
            }
            // lz4 TOAST compression is far cheaper than pglz for config
            // documents; servers built without lz4 keep the default.
            db.execute_unprepared(
                "DO $$ BEGIN ALTER TABLE config_items ALTER COLUMN config SET COMPRESSION lz4; \
                 EXCEPTION WHEN OTHERS THEN NULL; END $$",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sequences",
            "component_health_history",
            "config_component_relationships",
            "component_relationships",
            "components",
            "insights",
            "config_changes",
            "config_relationships",
            "config_external_ids",
            "config_items",
            "scrape_runs",
            "scrapers",
        ] {
            manager
                .drop_table(Table::drop().table(name(table)).if_exists().to_owned())
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP SEQUENCE IF EXISTS stratum_event_seq")
                .await?;
        }
        Ok(())
    }
}
