//! Batched reads behind the API's data loaders: one statement for many
//! items, however many rows of a page ask (SPEC §11, no N+1). Each takes a
//! set of ids and returns what it found, keyed by id; missing ids are
//! absent from the result.

use std::collections::HashMap;

use sea_orm::sea_query::Condition;
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{Store, in_ids, stmt};
use crate::entities::{config_change, config_item, scrape_run, scraper};
use crate::error::Result;

/// Open insights of one item, by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsightCounts {
    /// Critical.
    pub critical: i64,
    /// High.
    pub high: i64,
    /// Medium.
    pub medium: i64,
    /// Low.
    pub low: i64,
    /// Info.
    pub info: i64,
}

impl InsightCounts {
    /// All open insights.
    pub fn total(&self) -> i64 {
        self.critical + self.high + self.medium + self.low + self.info
    }
}

/// Ids per statement: far below both backends' parameter limits.
const CHUNK: usize = 1000;

impl Store {
    /// Rows of `base` whose `id` column is in `ids`, keyed by id.
    pub(crate) async fn rows_by_id<E: EntityTrait>(
        &self,
        base: sea_orm::Select<E>,
        ids: &[Uuid],
        id_of: fn(&E::Model) -> Uuid,
    ) -> Result<HashMap<Uuid, E::Model>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            for m in base
                .clone()
                .filter(super::id_in(self.backend(), "id", chunk))
                .all(self.reads())
                .await?
            {
                out.insert(id_of(&m), m);
            }
        }
        Ok(out)
    }

    /// Items by id, deleted ones included, without their config documents
    /// (`null`; see [`Store::get_configs`]).
    pub async fn get_items(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, config_item::Model>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let rows = super::items::slim_items(self.backend(), super::ItemColumns::All)
                .filter(super::id_in(self.backend(), "id", chunk))
                .filter(self.with_item_scope(Condition::all()))
                .into_model::<super::items::SlimItem>()
                .all(self.reads())
                .await?;
            out.extend(rows.into_iter().map(|row| (row.0.id, row.0)));
        }
        Ok(out)
    }

    /// Scrapers by id.
    pub async fn get_scrapers(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, scraper::Model>> {
        let mut base = scraper::Entity::find();
        if let Some(visible) = self.visible_scraper("scrapers.id") {
            base = base.filter(visible);
        }
        self.rows_by_id(base, ids, |m| m.id).await
    }

    /// Changes by id.
    pub async fn get_changes(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, config_change::Model>> {
        let base = config_change::Entity::find()
            .filter(self.with_visible_items("config_id", Condition::all()));
        self.rows_by_id(base, ids, |m| m.id).await
    }

    /// Scrape runs by id.
    pub async fn get_runs(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, scrape_run::Model>> {
        let mut base = scrape_run::Entity::find();
        if let Some(visible) = self.visible_scraper("scrape_runs.scraper_id") {
            base = base.filter(visible);
        }
        self.rows_by_id(base, ids, |m| m.id).await
    }

    /// The `limit` latest changes of each item (newest first), in one
    /// statement per chunk of items: a window function picks each item's
    /// top rows through the `(config_id, created_at)` index.
    pub async fn latest_changes(
        &self,
        config_ids: &[Uuid],
        limit: u64,
    ) -> Result<HashMap<Uuid, Vec<config_change::Model>>> {
        let mut out: HashMap<Uuid, Vec<config_change::Model>> = HashMap::new();
        for chunk in config_ids.chunks(CHUNK) {
            let (list, mut values) = in_ids(self.backend(), chunk);
            let visible =
                super::scope::and_clause(self.visible_items_sql("config_id").as_ref(), &mut values);
            values.push((limit as i64).into());
            let sql = format!(
                "SELECT id, seq, config_id, change_type, severity, source, summary, patches, diff, details, \
                 external_change_id, fingerprint, count, first_observed, created_at, created_by FROM ( \
                   SELECT c.*, ROW_NUMBER() OVER (PARTITION BY config_id ORDER BY created_at DESC, id DESC) AS rn \
                   FROM config_changes c WHERE config_id{list}{visible} ) ranked \
                 WHERE rn <= ? ORDER BY config_id, created_at DESC, id DESC"
            );
            let rows = config_change::Entity::find()
                .from_raw_sql(stmt(self.backend(), &sql, values))
                .all(self.reads())
                .await?;
            for row in rows {
                out.entry(row.config_id).or_default().push(row);
            }
        }
        Ok(out)
    }

    /// Open insights per item, by severity.
    pub async fn open_insight_counts(
        &self,
        config_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, InsightCounts>> {
        let mut out: HashMap<Uuid, InsightCounts> = HashMap::new();
        for chunk in config_ids.chunks(CHUNK) {
            let (list, mut values) = in_ids(self.backend(), chunk);
            values.insert(0, "open".into());
            let visible =
                super::scope::and_clause(self.visible_items_sql("config_id").as_ref(), &mut values);
            let sql = format!(
                "SELECT config_id, severity, COUNT(*) AS n FROM insights \
                 WHERE status = ? AND config_id{list}{visible} GROUP BY config_id, severity"
            );
            for row in self
                .reads()
                .query_all_raw(stmt(self.backend(), &sql, values))
                .await?
            {
                let id: Uuid = row.try_get("", "config_id")?;
                let severity: String = row.try_get("", "severity")?;
                let n: i64 = row.try_get("", "n")?;
                let counts = out.entry(id).or_default();
                match severity.as_str() {
                    "critical" => counts.critical += n,
                    "high" => counts.high += n,
                    "medium" => counts.medium += n,
                    "low" => counts.low += n,
                    _ => counts.info += n,
                }
            }
        }
        Ok(out)
    }
}
