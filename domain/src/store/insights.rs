//! Insights (SPEC §7): filtered keyset pages, most recently observed
//! first, and counts; and their lifecycle. Observations (analysis rules,
//! full-mode documents, pushes) upsert on the deterministic id: a new
//! finding opens, a re-observed one updates its row (and its `seq` only when
//! status, severity or message moved), a resolved one reopens, a silenced
//! one stays silenced. Open insights a scraper has not re-observed for the
//! resolve age are resolved after its succeeded runs; upkeep ends expired
//! silences and purges insights resolved for 30 days.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Value};
use uuid::Uuid;

use super::page::{KeyKind, KeyValue, Keyset, Page, PageRequest, SortKey};
use super::{MAX_PARAMS, Store, ids_where, stmt};
use crate::entities::insight;
use crate::error::{DomainError, Result};
use crate::ids;
use crate::model::{InsightObservation, ItemRef, ScrapedInsight, Severity};

/// How long an open insight may go unobserved before a succeeded run of its
/// scraper resolves it (SPEC §7).
pub const DEFAULT_RESOLVE_AFTER: Duration = Duration::hours(48);

/// How long resolved insights are kept.
pub const PURGE_RESOLVED_AFTER: Duration = Duration::days(30);

/// Insight statuses.
pub mod status {
    /// Observed and not dealt with.
    pub const OPEN: &str = "open";
    /// No longer observed, or resolved by hand.
    pub const RESOLVED: &str = "resolved";
    /// Hidden until a time (or for good).
    pub const SILENCED: &str = "silenced";
}

/// What writing a set of observations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsightStats {
    /// New findings.
    pub opened: i64,
    /// Resolved findings observed again.
    pub reopened: i64,
    /// Re-observed findings whose severity, summary or message moved.
    pub updated: i64,
    /// Re-observed findings with nothing new (only `last_observed` moves).
    pub unchanged: i64,
    /// Observations about items that do not exist (dropped).
    pub unknown_target: i64,
}

impl InsightStats {
    /// Adds another set's counters.
    pub fn add(&mut self, other: &InsightStats) {
        self.opened += other.opened;
        self.reopened += other.reopened;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.unknown_target += other.unknown_target;
    }
}

/// What [`Store::insight_upkeep`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsightUpkeep {
    /// Expired silences whose insight was re-observed meanwhile: open again.
    pub reopened: i64,
    /// Expired silences whose insight was not re-observed: resolved.
    pub resolved: i64,
    /// Resolved insights purged.
    pub purged: i64,
}

/// Which insights a list returns. Empty fields do not restrict.
#[derive(Debug, Clone, Default)]
pub struct InsightFilter {
    /// Insights of these items.
    pub config_ids: Vec<Uuid>,
    /// Exact analyzers.
    pub analyzers: Vec<String>,
    /// Exact analysis types (`security`, `cost`, …).
    pub types: Vec<String>,
    /// Exactly these severities.
    pub severities: Vec<Severity>,
    /// This severity or worse; intersects `severities`.
    pub min_severity: Option<Severity>,
    /// Statuses (`open`, `resolved`, `silenced`).
    pub statuses: Vec<String>,
}

fn keyset() -> Keyset {
    Keyset::new(
        vec![SortKey {
            sql: "last_observed".into(),
            descending: true,
            kind: KeyKind::Time,
        }],
        "id",
        true,
    )
}

fn key(m: &insight::Model) -> Vec<KeyValue> {
    vec![KeyValue::Time(m.last_observed), KeyValue::Uuid(m.id)]
}

fn condition(backend: sea_orm::DbBackend, filter: &InsightFilter) -> Condition {
    use insight::Column as C;
    let mut cond = Condition::all();
    if !filter.config_ids.is_empty() {
        cond = cond.add(super::id_in(backend, "config_id", &filter.config_ids));
    }
    if !filter.analyzers.is_empty() {
        cond = cond.add(C::Analyzer.is_in(filter.analyzers.iter().cloned()));
    }
    if !filter.types.is_empty() {
        cond = cond.add(C::AnalysisType.is_in(filter.types.iter().cloned()));
    }
    if let Some(severity) =
        super::severity_condition(C::Severity, &filter.severities, filter.min_severity)
    {
        cond = cond.add(severity);
    }
    if !filter.statuses.is_empty() {
        cond = cond.add(C::Status.is_in(filter.statuses.iter().cloned()));
    }
    cond
}

impl Store {
    /// A page of insights matching `filter`, most recently observed first.
    pub async fn list_insights(
        &self,
        filter: &InsightFilter,
        page: &PageRequest,
    ) -> Result<Page<insight::Model>> {
        let select = insight::Entity::find()
            .filter(self.with_visible_items("config_id", condition(self.backend(), filter)));
        keyset().fetch(self.reads(), select, page, key).await
    }

    /// How many insights match `filter`.
    pub async fn count_insights(&self, filter: &InsightFilter) -> Result<u64> {
        Ok(insight::Entity::find()
            .filter(self.with_visible_items("config_id", condition(self.backend(), filter)))
            .count(self.reads())
            .await?)
    }

    /// Insights by id.
    pub async fn get_insights(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, insight::Model>> {
        let base =
            insight::Entity::find().filter(self.with_visible_items("config_id", Condition::all()));
        self.rows_by_id(base, ids, |m| m.id).await
    }
}

struct StoredInsight {
    status: String,
    severity: String,
    summary: String,
    message: String,
}

/// Upserts observations of `scraper_id` about live items inside `txn`
/// (SPEC §7 lifecycle). Later observations of one id in the set win.
pub(crate) async fn write_observations(
    txn: &super::WriteTxn,
    scraper_id: Uuid,
    observations: Vec<(Uuid, ScrapedInsight)>,
    now: DateTime<Utc>,
) -> Result<InsightStats> {
    let mut stats = InsightStats::default();
    if observations.is_empty() {
        return Ok(stats);
    }
    let backend = txn.get_database_backend();
    let mut by_id: HashMap<Uuid, (Uuid, ScrapedInsight)> = HashMap::new();
    for (config_id, insight) in observations {
        let id = ids::insight_id(config_id, &insight.analyzer, &insight.key);
        by_id.insert(id, (config_id, insight));
    }
    let mut ids_sorted: Vec<Uuid> = by_id.keys().copied().collect();
    ids_sorted.sort();
    let mut stored: HashMap<Uuid, StoredInsight> = HashMap::new();
    for chunk in ids_sorted.chunks(1000) {
        let (list, values) = super::in_ids(backend, chunk);
        let sql =
            format!("SELECT id, status, severity, summary, message FROM insights WHERE id{list}");
        for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            stored.insert(
                row.try_get("", "id")?,
                StoredInsight {
                    status: row.try_get("", "status")?,
                    severity: row.try_get("", "severity")?,
                    summary: row.try_get("", "summary")?,
                    message: row.try_get("", "message")?,
                },
            );
        }
    }
    let mut inserts: Vec<Uuid> = Vec::new();
    // (id, new status, status changed)
    let mut rewrites: Vec<(Uuid, &'static str, bool)> = Vec::new();
    let mut touches: Vec<Uuid> = Vec::new();
    for id in &ids_sorted {
        let (_, insight) = &by_id[id];
        match stored.get(id) {
            None => {
                stats.opened += 1;
                inserts.push(*id);
            }
            Some(old) => {
                let moved = old.severity != insight.severity.as_str()
                    || old.summary != insight.summary
                    || old.message != insight.message;
                match old.status.as_str() {
                    status::RESOLVED => {
                        stats.reopened += 1;
                        rewrites.push((*id, status::OPEN, true));
                    }
                    status::SILENCED if moved => {
                        stats.updated += 1;
                        rewrites.push((*id, status::SILENCED, false));
                    }
                    _ if moved => {
                        stats.updated += 1;
                        rewrites.push((*id, status::OPEN, false));
                    }
                    _ => {
                        stats.unchanged += 1;
                        touches.push(*id);
                    }
                }
            }
        }
    }
    let mut seqs = Store::allocate_seq(
        txn,
        crate::events::EventStream::Insights,
        inserts.len() + rewrites.len(),
    )
    .await?
    .into_iter();
    const COLUMNS: usize = 15;
    for chunk in inserts.chunks(MAX_PARAMS / COLUMNS) {
        let sql = format!(
            "INSERT INTO insights (id, seq, config_id, scraper_id, analyzer, analysis_type, severity, status, \
             summary, message, details, first_observed, last_observed, silenced_until, status_changed_at) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"; chunk.len()].join(", ")
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * COLUMNS);
        for id in chunk {
            let (config_id, i) = &by_id[id];
            values.extend([
                Value::from(*id),
                Value::from(seqs.next().unwrap_or_default()),
                Value::from(*config_id),
                Value::from(scraper_id),
                Value::from(i.analyzer.clone()),
                Value::from(i.analysis_type.clone()),
                Value::from(i.severity.as_str()),
                Value::from(status::OPEN),
                Value::from(i.summary.clone()),
                Value::from(i.message.clone()),
                Value::from(i.details.clone()),
                Value::from(now),
                Value::from(now),
                Value::from(now),
            ]);
        }
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    for (id, new_status, status_changed) in &rewrites {
        let (_, i) = &by_id[id];
        let mut sql = String::from(
            "UPDATE insights SET seq = ?, status = ?, analysis_type = ?, severity = ?, summary = ?, message = ?, \
             details = ?, last_observed = ?, scraper_id = ?",
        );
        let mut values: Vec<Value> = vec![
            seqs.next().unwrap_or_default().into(),
            (*new_status).into(),
            i.analysis_type.clone().into(),
            i.severity.as_str().into(),
            i.summary.clone().into(),
            i.message.clone().into(),
            i.details.clone().into(),
            now.into(),
            scraper_id.into(),
        ];
        if *status_changed {
            sql.push_str(", status_changed_at = ?, silenced_until = NULL");
            values.push(now.into());
        }
        sql.push_str(" WHERE id = ?");
        values.push((*id).into());
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    for chunk in touches.chunks(1000) {
        let (list, mut ids_values) = super::in_ids(backend, chunk);
        let mut values: Vec<Value> = vec![now.into(), scraper_id.into()];
        values.append(&mut ids_values);
        txn.execute_raw(stmt(
            backend,
            &format!("UPDATE insights SET last_observed = ?, scraper_id = ? WHERE id{list}"),
            values,
        ))
        .await?;
    }
    Ok(stats)
}

/// Sets `status` on `ids` with fresh seqs; returns how many rows moved.
async fn set_status(
    txn: &super::WriteTxn,
    ids_changed: &[Uuid],
    new_status: &str,
    silenced_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<i64> {
    let backend = txn.get_database_backend();
    let seqs =
        Store::allocate_seq(txn, crate::events::EventStream::Insights, ids_changed.len()).await?;
    for (id, seq) in ids_changed.iter().zip(seqs) {
        txn.execute_raw(stmt(
            backend,
            "UPDATE insights SET status = ?, seq = ?, status_changed_at = ?, silenced_until = ? WHERE id = ?",
            vec![
                new_status.into(),
                seq.into(),
                now.into(),
                silenced_until.into(),
                (*id).into(),
            ],
        ))
        .await?;
    }
    Ok(ids_changed.len() as i64)
}

impl Store {
    /// Records observations of findings about items named by reference
    /// (pushes, full-mode entries about other items) for `scraper_id`.
    /// Observations about unknown items are counted and dropped; an invalid
    /// observation rejects the whole set before anything is written.
    pub async fn observe_insights(
        &self,
        scraper_id: Uuid,
        observations: Vec<InsightObservation>,
    ) -> Result<InsightStats> {
        for (n, o) in observations.iter().enumerate() {
            o.insight.validate().map_err(|e| match e {
                DomainError::Invalid { message, .. } => {
                    DomainError::invalid("insight", format!("insight {}: {message}", n + 1))
                }
                other => other,
            })?;
        }
        let refs: Vec<ItemRef> = observations.iter().map(|o| o.target.clone()).collect();
        let resolved = self.resolve_refs(&refs).await?;
        let mut stats = InsightStats::default();
        let mut known = Vec::with_capacity(observations.len());
        for o in observations {
            match resolved.get(&o.target) {
                Some(config_id) => known.push((*config_id, o.insight)),
                None => stats.unknown_target += 1,
            }
        }
        let (_guard, txn) = self.write_txn().await?;
        let written = write_observations(&txn, scraper_id, known, super::now()).await?;
        txn.commit().await?;
        stats.add(&written);
        Ok(stats)
    }

    /// Resolves the open insights of `scraper_id` last observed before
    /// `cutoff` (call it after a succeeded run). Returns how many.
    pub async fn resolve_unobserved_insights(
        &self,
        scraper_id: Uuid,
        cutoff: DateTime<Utc>,
    ) -> Result<i64> {
        let (_guard, txn) = self.write_txn().await?;
        let stale = ids_where(
            &*txn,
            "SELECT id FROM insights WHERE scraper_id = ? AND status = ? AND last_observed < ?",
            vec![scraper_id.into(), status::OPEN.into(), cutoff.into()],
        )
        .await?;
        let n = set_status(&txn, &stale, status::RESOLVED, None, super::now()).await?;
        txn.commit().await?;
        Ok(n)
    }

    /// Silences an insight until `until` (for good when `None`). `NotFound`
    /// when there is no such insight; an `until` in the past is invalid.
    pub async fn silence_insight(
        &self,
        id: Uuid,
        until: Option<DateTime<Utc>>,
    ) -> Result<insight::Model> {
        let now = super::now();
        if until.is_some_and(|u| u <= now) {
            return Err(DomainError::invalid(
                "until",
                "a silence must end in the future",
            ));
        }
        self.change_status(id, status::SILENCED, until, now).await
    }

    /// Resolves an insight by hand. `NotFound` when there is no such
    /// insight.
    pub async fn resolve_insight(&self, id: Uuid) -> Result<insight::Model> {
        self.change_status(id, status::RESOLVED, None, super::now())
            .await
    }

    async fn change_status(
        &self,
        id: Uuid,
        new_status: &str,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<insight::Model> {
        let (_guard, txn) = self.write_txn().await?;
        let Some(current) = insight::Entity::find_by_id(id)
            .filter(self.with_visible_items("config_id", Condition::all()))
            .one(&*txn)
            .await?
        else {
            return Err(DomainError::NotFound("insight"));
        };
        if current.status != new_status || current.silenced_until != until {
            set_status(&txn, &[id], new_status, until, now).await?;
        }
        let updated = insight::Entity::find_by_id(id)
            .one(&*txn)
            .await?
            .ok_or(DomainError::NotFound("insight"))?;
        txn.commit().await?;
        Ok(updated)
    }

    /// Ends expired silences (open again when re-observed while silenced,
    /// resolved otherwise) and purges insights resolved before
    /// `now - PURGE_RESOLVED_AFTER`.
    pub async fn insight_upkeep(&self, now: DateTime<Utc>) -> Result<InsightUpkeep> {
        let (_guard, txn) = self.write_txn().await?;
        let expired = "SELECT id FROM insights WHERE status = ? AND silenced_until IS NOT NULL AND silenced_until <= ?";
        let seen = ids_where(
            &*txn,
            &format!("{expired} AND last_observed > status_changed_at"),
            vec![status::SILENCED.into(), now.into()],
        )
        .await?;
        let unseen = ids_where(
            &*txn,
            &format!("{expired} AND NOT (last_observed > status_changed_at)"),
            vec![status::SILENCED.into(), now.into()],
        )
        .await?;
        let reopened = set_status(&txn, &seen, status::OPEN, None, now).await?;
        let resolved = set_status(&txn, &unseen, status::RESOLVED, None, now).await?;
        let purged = txn
            .execute_raw(stmt(
                self.backend(),
                "DELETE FROM insights WHERE status = ? AND status_changed_at < ?",
                vec![status::RESOLVED.into(), (now - PURGE_RESOLVED_AFTER).into()],
            ))
            .await?
            .rows_affected() as i64;
        txn.commit().await?;
        Ok(InsightUpkeep {
            reopened,
            resolved,
            purged,
        })
    }
}
