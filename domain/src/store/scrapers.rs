//! Scrapers and scrape runs: registration and the run record (SPEC §3).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};
use serde_json::json;
use uuid::Uuid;

use super::{Store, stmt};
use crate::entities::{scrape_run, scraper};
use crate::error::Result;
use crate::ids;
use crate::model::{RunMode, RunStatus, ScraperSource};

/// Runs kept per scraper.
pub const RUNS_KEPT: i64 = 100;

/// Errors kept per run.
pub const ERRORS_KEPT: usize = 100;

/// A scraper as registered from a ScrapeConfig.
#[derive(Debug, Clone)]
pub struct ScraperRecord {
    /// ScrapeConfig name.
    pub name: String,
    /// ScrapeConfig namespace.
    pub namespace: String,
    /// The spec with secrets elided.
    pub spec: serde_json::Value,
    /// Where the definition lives.
    pub source: ScraperSource,
}

/// The final counters of a run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Outcome.
    pub status: Option<RunStatus>,
    /// Items produced.
    pub scraped: i64,
    /// Items inserted.
    pub created: i64,
    /// Items rewritten.
    pub updated: i64,
    /// Items only touched.
    pub unchanged: i64,
    /// Items soft-deleted.
    pub deleted: i64,
    /// Changes recorded.
    pub changes: i64,
    /// Unresolved edges.
    pub edges_unresolved: i64,
    /// The safety valve fired.
    pub deletions_blocked: bool,
    /// Errors (first 100 kept).
    pub errors: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl Store {
    /// Registers (or updates) a scraper and returns its id. With
    /// `update_spec = false` an existing row is left as it is.
    pub async fn upsert_scraper(&self, record: &ScraperRecord, update_spec: bool) -> Result<Uuid> {
        let id = ids::scraper_id(&record.namespace, &record.name);
        let now = super::now();
        let (_guard, txn) = self.write_txn().await?;
        let action = if update_spec {
            "DO UPDATE SET spec = excluded.spec, source = excluded.source, updated_at = excluded.updated_at, deleted_at = NULL"
        } else {
            "DO NOTHING"
        };
        let sql = format!(
            "INSERT INTO scrapers (id, name, namespace, spec, source, owner_token, created_at, updated_at, deleted_at) \
             VALUES (?, ?, ?, ?, ?, NULL, ?, ?, NULL) ON CONFLICT (id) {action}"
        );
        txn.execute_raw(stmt(
            self.backend(),
            &sql,
            vec![
                id.into(),
                record.name.clone().into(),
                record.namespace.clone().into(),
                record.spec.clone().into(),
                record.source.as_str().into(),
                now.into(),
                now.into(),
            ],
        ))
        .await?;
        txn.commit().await?;
        Ok(id)
    }

    /// One scraper by id.
    pub async fn get_scraper(&self, id: Uuid) -> Result<Option<scraper::Model>> {
        let mut select = scraper::Entity::find_by_id(id);
        if let Some(visible) = self.visible_scraper("scrapers.id") {
            select = select.filter(visible);
        }
        Ok(select.one(&self.db).await?)
    }

    /// All scrapers, by namespace and name.
    pub async fn list_scrapers(&self) -> Result<Vec<scraper::Model>> {
        let mut select = scraper::Entity::find();
        if let Some(visible) = self.visible_scraper("scrapers.id") {
            select = select.filter(visible);
        }
        Ok(select
            .filter(scraper::Column::DeletedAt.is_null())
            .order_by_asc(scraper::Column::Namespace)
            .order_by_asc(scraper::Column::Name)
            .all(&self.db)
            .await?)
    }

    /// Records the start of a run.
    pub async fn start_run(
        &self,
        scraper_id: Uuid,
        mode: RunMode,
    ) -> Result<(Uuid, DateTime<Utc>)> {
        let id = ids::row_id();
        let now = super::now();
        let (_guard, txn) = self.write_txn().await?;
        txn.execute_raw(stmt(
            self.backend(),
            "INSERT INTO scrape_runs (id, scraper_id, mode, status, started_at, finished_at, items_scraped, items_created, \
             items_updated, items_unchanged, items_deleted, changes_created, edges_unresolved, deletions_blocked, errors, warnings) \
             VALUES (?, ?, ?, ?, ?, NULL, 0, 0, 0, 0, 0, 0, 0, ?, ?, ?)",
            vec![
                id.into(),
                scraper_id.into(),
                mode.as_str().into(),
                RunStatus::Running.as_str().into(),
                now.into(),
                false.into(),
                json!([]).into(),
                json!([]).into(),
            ],
        ))
        .await?;
        txn.commit().await?;
        Ok((id, now))
    }

    /// Records the end of a run and prunes old runs of the scraper.
    pub async fn finish_run(
        &self,
        run_id: Uuid,
        scraper_id: Uuid,
        summary: &RunSummary,
    ) -> Result<()> {
        let now = super::now();
        let status = summary.status.unwrap_or(RunStatus::Succeeded);
        let errors: Vec<&String> = summary.errors.iter().take(ERRORS_KEPT).collect();
        let (_guard, txn) = self.write_txn().await?;
        txn.execute_raw(stmt(
            self.backend(),
            "UPDATE scrape_runs SET status = ?, finished_at = ?, items_scraped = ?, items_created = ?, items_updated = ?, \
             items_unchanged = ?, items_deleted = ?, changes_created = ?, edges_unresolved = ?, deletions_blocked = ?, \
             errors = ?, warnings = ? WHERE id = ?",
            vec![
                status.as_str().into(),
                now.into(),
                summary.scraped.into(),
                summary.created.into(),
                summary.updated.into(),
                summary.unchanged.into(),
                summary.deleted.into(),
                summary.changes.into(),
                summary.edges_unresolved.into(),
                summary.deletions_blocked.into(),
                json!(errors).into(),
                json!(summary.warnings).into(),
                run_id.into(),
            ],
        ))
        .await?;
        let keep: Vec<Uuid> = scrape_run::Entity::find()
            .select_only()
            .column(scrape_run::Column::Id)
            .filter(scrape_run::Column::ScraperId.eq(scraper_id))
            .order_by_desc(scrape_run::Column::StartedAt)
            .offset(RUNS_KEPT as u64)
            .limit(1000)
            .into_tuple()
            .all(&*txn)
            .await?;
        for chunk in keep.chunks(500) {
            let sql = format!(
                "DELETE FROM scrape_runs WHERE id IN ({})",
                super::marks(chunk.len())
            );
            txn.execute_raw(stmt(
                self.backend(),
                &sql,
                chunk.iter().map(|u| Value::from(*u)).collect(),
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Runs of a scraper, newest first.
    pub async fn list_runs(&self, scraper_id: Uuid, limit: u64) -> Result<Vec<scrape_run::Model>> {
        let mut select = scrape_run::Entity::find();
        if let Some(visible) = self.visible_scraper("scrape_runs.scraper_id") {
            select = select.filter(visible);
        }
        Ok(select
            .filter(scrape_run::Column::ScraperId.eq(scraper_id))
            .order_by_desc(scrape_run::Column::StartedAt)
            .order_by_desc(scrape_run::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Whether the scraper has ever finished a run successfully.
    pub async fn has_succeeded_run(&self, scraper_id: Uuid) -> Result<bool> {
        let n = scrape_run::Entity::find()
            .filter(scrape_run::Column::ScraperId.eq(scraper_id))
            .filter(scrape_run::Column::Status.eq(RunStatus::Succeeded.as_str()))
            .limit(1)
            .all(&self.db)
            .await?
            .len();
        Ok(n > 0)
    }
}
