//! What a watching scraper reports besides items (SPEC §5): changes that
//! carry their source's own id (Kubernetes events), upserted on
//! `(config_id, external_change_id)` so a replay changes nothing, and
//! deletions the source reported.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::{MAX_PARAMS, Store, marks, stmt};
use crate::change_rules::{ChangeFields, ChangeRules, Verdict};
use crate::error::Result;
use crate::fingerprint::fingerprint;
use crate::ids;
use crate::model::{DeleteReason, ItemRef, Severity};

/// A change with a source-assigned id, e.g. a Kubernetes event.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalChange {
    /// The item it is about.
    pub target: ItemRef,
    /// The source's id for it (an event's uid).
    pub external_change_id: String,
    /// e.g. `BackOff`.
    pub change_type: String,
    /// How bad it is.
    pub severity: Severity,
    /// e.g. `kubelet`.
    pub source: String,
    /// One line.
    pub summary: String,
    /// Structured details.
    pub details: Option<serde_json::Value>,
    /// How often the source saw it (its own running count).
    pub count: i64,
    /// First seen by the source (when the source says).
    pub first_observed: Option<DateTime<Utc>>,
    /// Last seen by the source; when the source gives no time, the time
    /// of the first report, kept by replays.
    pub created_at: Option<DateTime<Utc>>,
}

/// What [`Store::upsert_external_changes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalChangeStats {
    /// New rows.
    pub inserted: i64,
    /// Rows whose count, time or text moved on.
    pub updated: i64,
    /// Replays of what is stored.
    pub unchanged: i64,
    /// Dropped: no live item matches the target.
    pub unknown_target: i64,
    /// Dropped by `transform.changes` (ignore or exclude).
    pub dropped_by_rules: i64,
    /// Items a change rule deleted.
    pub deleted_by_rules: i64,
    /// Change rules that failed (the first 100).
    pub rule_errors: Vec<String>,
}

/// The stored state of an external change.
struct StoredChange {
    id: Uuid,
    count: i64,
    created_at: DateTime<Utc>,
    summary: String,
}

impl Store {
    /// Upserts changes by `(config_id, external_change_id)` in one
    /// transaction. A change whose target is no live item is counted and
    /// dropped; a replay with the same count, time and summary writes
    /// nothing; a moved-on change takes the new count, time, text and
    /// severity and a new event cursor, and keeps its first observation.
    pub async fn upsert_external_changes(
        &self,
        changes: Vec<ExternalChange>,
        rules: Option<&ChangeRules>,
    ) -> Result<ExternalChangeStats> {
        let now = super::now();
        let mut stats = ExternalChangeStats::default();
        if changes.is_empty() {
            return Ok(stats);
        }
        let refs: Vec<ItemRef> = changes
            .iter()
            .map(|c| c.target.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let resolved = self.resolve_refs(&refs).await?;
        // The last report of an external id in the input wins.
        let mut latest: HashMap<(Uuid, String), ExternalChange> = HashMap::new();
        for change in changes {
            match resolved.get(&change.target) {
                Some(config_id) => {
                    latest.insert((*config_id, change.external_change_id.clone()), change);
                }
                None => stats.unknown_target += 1,
            }
        }
        if latest.is_empty() {
            return Ok(stats);
        }
        let mut keyed: Vec<((Uuid, String), ExternalChange)> = latest.into_iter().collect();
        let mut rule_deletes: Vec<Uuid> = Vec::new();
        if let Some(rules) = rules.filter(|r| !r.is_empty()) {
            keyed = self
                .apply_rules_to_external(rules, keyed, &mut stats, &mut rule_deletes)
                .await?;
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let backend = self.backend();
        let (_guard, txn) = self.write_txn().await?;
        if !rule_deletes.is_empty() {
            // Before the first write: the deletes move rollup counts.
            super::rollup::lock(&txn).await?;
        }
        let mut stored: HashMap<(Uuid, String), StoredChange> = HashMap::new();
        for chunk in keyed.chunks(MAX_PARAMS / 2) {
            let config_ids: Vec<Uuid> = chunk
                .iter()
                .map(|((c, _), _)| *c)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let sql = format!(
                "SELECT id, config_id, external_change_id, count, created_at, summary FROM config_changes \
                 WHERE config_id IN ({}) AND external_change_id IN ({})",
                marks(config_ids.len()),
                marks(chunk.len())
            );
            let mut values: Vec<Value> = config_ids.iter().map(|u| Value::from(*u)).collect();
            values.extend(chunk.iter().map(|((_, e), _)| Value::from(e.clone())));
            for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
                let key: (Uuid, String) = (
                    row.try_get("", "config_id")?,
                    row.try_get("", "external_change_id")?,
                );
                stored.insert(
                    key,
                    StoredChange {
                        id: row.try_get("", "id")?,
                        count: row.try_get("", "count")?,
                        created_at: row.try_get("", "created_at")?,
                        summary: row.try_get("", "summary")?,
                    },
                );
            }
        }
        let mut inserts: Vec<(Uuid, &ExternalChange)> = Vec::new();
        let mut updates: Vec<(Uuid, DateTime<Utc>, &ExternalChange)> = Vec::new();
        for ((config_id, external_id), change) in &keyed {
            match stored.get(&(*config_id, external_id.clone())) {
                None => inserts.push((*config_id, change)),
                Some(row)
                    if row.count == change.count.max(1)
                        && change.created_at.is_none_or(|t| t == row.created_at)
                        && row.summary == change.summary =>
                {
                    stats.unchanged += 1
                }
                Some(row) => {
                    updates.push((row.id, change.created_at.unwrap_or(row.created_at), change))
                }
            }
        }
        let seqs = Store::allocate_seq(
            &txn,
            crate::events::EventStream::Changes,
            inserts.len() + updates.len(),
        )
        .await?;
        let mut seqs = seqs.into_iter();
        for (row_id, created_at, change) in &updates {
            let seq = seqs.next().unwrap_or_default();
            txn.execute_raw(stmt(
                backend,
                "UPDATE config_changes SET count = ?, created_at = ?, summary = ?, details = ?, severity = ?, \
                 change_type = ?, seq = ? WHERE id = ?",
                vec![
                    change.count.max(1).into(),
                    (*created_at).into(),
                    change.summary.clone().into(),
                    change.details.clone().into(),
                    change.severity.as_str().into(),
                    change.change_type.clone().into(),
                    seq.into(),
                    (*row_id).into(),
                ],
            ))
            .await?;
            stats.updated += 1;
        }
        const COLUMNS: usize = 14;
        for chunk in inserts.chunks(MAX_PARAMS / COLUMNS) {
            let sql = format!(
                "INSERT INTO config_changes (id, seq, config_id, change_type, severity, source, summary, patches, diff, \
                 details, external_change_id, fingerprint, count, first_observed, created_at) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * COLUMNS);
            for (config_id, c) in chunk {
                values.extend([
                    Value::from(ids::row_id()),
                    Value::from(seqs.next().unwrap_or_default()),
                    Value::from(*config_id),
                    Value::from(c.change_type.clone()),
                    Value::from(c.severity.as_str()),
                    Value::from(c.source.clone()),
                    Value::from(c.summary.clone()),
                    Value::from(c.details.clone()),
                    Value::from(c.external_change_id.clone()),
                    Value::from(fingerprint(&c.change_type, c.details.as_ref())),
                    Value::from(c.count.max(1)),
                    Value::from(
                        c.first_observed
                            .unwrap_or(now)
                            .min(c.created_at.unwrap_or(now)),
                    ),
                    Value::from(c.created_at.unwrap_or(now)),
                ]);
            }
            txn.execute_raw(stmt(backend, &sql, values)).await?;
            stats.inserted += chunk.len() as i64;
        }
        if !rule_deletes.is_empty() {
            rule_deletes.sort();
            rule_deletes.dedup();
            stats.deleted_by_rules = super::ingest::soft_delete(
                &txn,
                &rule_deletes,
                DeleteReason::FromEvent,
                "rules",
                "deleted by a change mapping rule",
                super::now(),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(stats)
    }

    /// Runs `transform.changes` over resolved external changes: drops,
    /// renames, deletions, and moves to the nearest ancestor of a type.
    async fn apply_rules_to_external(
        &self,
        rules: &ChangeRules,
        keyed: Vec<((Uuid, String), ExternalChange)>,
        stats: &mut ExternalChangeStats,
        deletes: &mut Vec<Uuid>,
    ) -> Result<Vec<((Uuid, String), ExternalChange)>> {
        let ids: Vec<Uuid> = keyed
            .iter()
            .map(|((c, _), _)| *c)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let backend = self.backend();
        // Each target's document, fields and ancestors; then the ancestors' types.
        let mut context: HashMap<Uuid, (serde_json::Value, serde_json::Value, Vec<Uuid>)> =
            HashMap::new();
        for chunk in ids.chunks(1000) {
            let sql = format!(
                "SELECT id, type, name, namespace, tags, labels, config, path FROM config_items WHERE id IN ({})",
                marks(chunk.len())
            );
            let values: Vec<Value> = chunk.iter().map(|u| Value::from(*u)).collect();
            for r in self.db.query_all_raw(stmt(backend, &sql, values)).await? {
                let id: Uuid = r.try_get("", "id")?;
                let path: String = r.try_get("", "path")?;
                let item = serde_json::json!({
                    "id": id.to_string(),
                    "type": r.try_get::<String>("", "type")?,
                    "name": r.try_get::<String>("", "name")?,
                    "namespace": r.try_get::<Option<String>>("", "namespace")?,
                    "tags": r.try_get::<serde_json::Value>("", "tags")?,
                    "labels": r.try_get::<serde_json::Value>("", "labels")?,
                });
                let ancestors = path
                    .split('.')
                    .filter_map(|s| Uuid::parse_str(s).ok())
                    .collect();
                context.insert(id, (r.try_get("", "config")?, item, ancestors));
            }
        }
        let ancestor_ids: Vec<Uuid> = context
            .values()
            .flat_map(|(_, _, a)| a.iter().copied())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut types: HashMap<Uuid, String> = HashMap::new();
        for chunk in ancestor_ids.chunks(1000) {
            let sql = format!(
                "SELECT id, type FROM config_items WHERE id IN ({})",
                marks(chunk.len())
            );
            let values: Vec<Value> = chunk.iter().map(|u| Value::from(*u)).collect();
            for r in self.db.query_all_raw(stmt(backend, &sql, values)).await? {
                types.insert(r.try_get("", "id")?, r.try_get("", "type")?);
            }
        }
        let mut out = Vec::with_capacity(keyed.len());
        for ((config_id, external_id), mut change) in keyed {
            let Some((config, item, ancestors)) = context.get(&config_id) else {
                out.push(((config_id, external_id), change));
                continue;
            };
            let fields = ChangeFields {
                change_type: change.change_type.clone(),
                severity: change.severity,
                summary: change.summary.clone(),
                source: change.source.clone(),
            };
            let (verdict, errors) = rules.apply(
                fields,
                change.details.as_ref(),
                None,
                change.created_at.unwrap_or_else(super::now),
                config,
                item,
            );
            for e in errors {
                if stats.rule_errors.len() < 100 {
                    stats.rule_errors.push(format!("event {external_id}: {e}"));
                }
            }
            let mut take = |f: ChangeFields| {
                change.change_type = f.change_type;
                change.severity = f.severity;
                change.summary = f.summary;
            };
            match verdict {
                Verdict::Drop => stats.dropped_by_rules += 1,
                Verdict::Keep(f) => {
                    take(f);
                    out.push(((config_id, external_id), change));
                }
                Verdict::Delete(f) => {
                    take(f);
                    deletes.push(config_id);
                    out.push(((config_id, external_id), change));
                }
                Verdict::Up {
                    fields,
                    ancestor_type,
                    copy,
                } => {
                    take(fields);
                    let target = ancestors
                        .iter()
                        .rev()
                        .find(|a| types.get(a).is_some_and(|t| *t == ancestor_type))
                        .copied();
                    match target {
                        Some(t) => {
                            if copy {
                                out.push(((config_id, external_id.clone()), change.clone()));
                            }
                            out.push(((t, external_id), change));
                        }
                        None => out.push(((config_id, external_id), change)),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Soft-deletes the scraper's live items among `ids` because the source
    /// reported them gone, recording a `Deleted` change for each. Returns
    /// how many were deleted (ids already deleted or unknown are skipped).
    pub async fn delete_from_source(
        &self,
        scraper_id: Uuid,
        ids: &[Uuid],
        source: &str,
    ) -> Result<i64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = super::now();
        let (_guard, txn) = self.write_txn().await?;
        super::rollup::lock(&txn).await?;
        let backend = self.backend();
        let mut live: Vec<Uuid> = Vec::new();
        for chunk in ids.chunks(1000) {
            let sql = format!(
                "SELECT id FROM config_items WHERE scraper_id = ? AND deleted_at IS NULL AND id IN ({})",
                marks(chunk.len())
            );
            let mut values: Vec<Value> = vec![scraper_id.into()];
            values.extend(chunk.iter().map(|u| Value::from(*u)));
            for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
                live.push(row.try_get("", "id")?);
            }
        }
        let deleted = super::ingest::soft_delete(
            &txn,
            &live,
            DeleteReason::FromSource,
            source,
            "deleted at the source",
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(deleted)
    }
}
