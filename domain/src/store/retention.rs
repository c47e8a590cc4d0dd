//! Retention (SPEC §5): change history is pruned by per-type rules
//! (`retention.changes[] {type glob, maxAge, maxCount}`, 60 days by
//! default), and items soft-deleted longer than `purgeDeletedAfter` (7 days
//! by default) are hard-deleted with their changes, insights, edges, external
//! ids and component links. Every delete runs in batches of
//! [`RETENTION_BATCH`] rows, each its own short transaction, so a large
//! backlog never holds the writer for long.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Value};
use uuid::Uuid;

use super::scope::glob_sql;
use super::{Store, ids_where, in_ids, stmt};
use crate::error::Result;

/// Rows deleted per statement.
pub const RETENTION_BATCH: usize = 1000;

/// How long changes are kept when no rule says otherwise.
pub const DEFAULT_CHANGE_MAX_AGE: Duration = Duration::days(60);

/// How long soft-deleted items are kept before they are hard-deleted.
pub const DEFAULT_PURGE_DELETED_AFTER: Duration = Duration::days(7);

/// One `retention.changes[]` rule. A change is governed by the first rule
/// whose `types` glob matches its type; within a rule, `max_count` counts
/// per item, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRetentionRule {
    /// Glob over the change type (`*` and `?`).
    pub types: String,
    /// Changes older than this are deleted; `None` keeps them by age.
    pub max_age: Option<Duration>,
    /// At most this many of the matched changes are kept per item.
    pub max_count: Option<u64>,
}

/// What a scraper keeps (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Change rules in order; changes no rule matches get
    /// [`DEFAULT_CHANGE_MAX_AGE`].
    pub changes: Vec<ChangeRetentionRule>,
    /// Soft-deleted items older than this are hard-deleted; `None` keeps
    /// them.
    pub purge_deleted_after: Option<Duration>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            changes: Vec::new(),
            purge_deleted_after: Some(DEFAULT_PURGE_DELETED_AFTER),
        }
    }
}

impl RetentionPolicy {
    /// The rules in force: the configured ones, then a catch-all with the
    /// default age unless a configured rule already matches every type.
    pub fn effective_rules(&self) -> Vec<ChangeRetentionRule> {
        let mut rules = self.changes.clone();
        if !rules.iter().any(|r| r.types.chars().all(|c| c == '*')) {
            rules.push(ChangeRetentionRule {
                types: "*".into(),
                max_age: Some(DEFAULT_CHANGE_MAX_AGE),
                max_count: None,
            });
        }
        rules
    }
}

/// Whose items a retention pass covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionTarget {
    /// The items of one scraper.
    Scraper(Uuid),
    /// The items of every scraper but these (the ones with policies of
    /// their own).
    OtherThan(Vec<Uuid>),
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Changes deleted by age or count.
    pub changes_deleted: u64,
    /// Soft-deleted items hard-deleted.
    pub items_purged: u64,
}

/// `scraper_id` restricted to the target, with its values.
fn target_sql(backend: DbBackend, target: &RetentionTarget, column: &str) -> (String, Vec<Value>) {
    match target {
        RetentionTarget::Scraper(id) => (format!("{column} = ?"), vec![Value::from(*id)]),
        RetentionTarget::OtherThan(ids) => {
            let (list, values) = in_ids(backend, ids);
            (format!("NOT ({column}{list})"), values)
        }
    }
}

impl Store {
    /// Applies `policy` to the changes and deleted items of `target`, as of
    /// `now`.
    pub async fn apply_retention(
        &self,
        target: &RetentionTarget,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        let rules = policy.effective_rules();
        for (i, rule) in rules.iter().enumerate() {
            if rule.max_age.is_none() && rule.max_count.is_none() {
                continue;
            }
            // The rule governs the changes it matches that no earlier rule
            // matched.
            let mut values = Vec::new();
            let (items, item_values) = target_sql(self.backend(), target, "scraper_id");
            values.extend(item_values);
            let mut governed = vec![glob_sql(
                self.backend(),
                "c.change_type",
                &rule.types,
                &mut values,
            )];
            for earlier in &rules[..i] {
                governed.push(format!(
                    "NOT {}",
                    glob_sql(self.backend(), "c.change_type", &earlier.types, &mut values)
                ));
            }
            let scope = format!(
                "c.config_id IN (SELECT id FROM config_items WHERE {items}) AND {}",
                governed.join(" AND ")
            );
            if let Some(age) = rule.max_age {
                let mut values = values.clone();
                values.push((now - age).into());
                let select = format!(
                    "SELECT c.id FROM config_changes c WHERE {scope} AND c.created_at < ? LIMIT {RETENTION_BATCH}"
                );
                loop {
                    let ids = ids_where(self.connection(), &select, values.clone()).await?;
                    let n = self.delete_changes(&ids).await?;
                    report.changes_deleted += n;
                    if ids.len() < RETENTION_BATCH {
                        break;
                    }
                }
            }
            if let Some(count) = rule.max_count {
                let mut values = values.clone();
                values.push(i64::try_from(count).unwrap_or(i64::MAX).into());
                let select = format!(
                    "SELECT r.id FROM (SELECT c.id, ROW_NUMBER() OVER \
                     (PARTITION BY c.config_id ORDER BY c.created_at DESC, c.seq DESC) AS rn \
                     FROM config_changes c WHERE {scope}) r WHERE r.rn > ?"
                );
                let ids = ids_where(self.connection(), &select, values).await?;
                for chunk in ids.chunks(RETENTION_BATCH) {
                    report.changes_deleted += self.delete_changes(chunk).await?;
                }
            }
        }
        if let Some(after) = policy.purge_deleted_after {
            report.items_purged = self.purge_deleted_items(target, now - after).await?;
        }
        Ok(report)
    }

    /// Hard-deletes the target's items soft-deleted before `cutoff` that no
    /// item still kept names as its parent, with everything that hangs off
    /// them; cost records stay, unlinked.
    async fn purge_deleted_items(
        &self,
        target: &RetentionTarget,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        let (items, mut values) = target_sql(self.backend(), target, "i.scraper_id");
        values.push(cutoff.into());
        values.push(cutoff.into());
        let select = format!(
            "SELECT i.id FROM config_items i WHERE {items} AND i.deleted_at IS NOT NULL \
             AND i.deleted_at < ? AND NOT EXISTS (SELECT 1 FROM config_items k \
             WHERE k.parent_id = i.id AND (k.deleted_at IS NULL OR k.deleted_at >= ?)) \
             ORDER BY i.deleted_at, i.id LIMIT {RETENTION_BATCH}"
        );
        let mut purged = 0;
        loop {
            let ids = ids_where(self.connection(), &select, values.clone()).await?;
            if ids.is_empty() {
                break;
            }
            let (_guard, txn) = self.write_txn().await?;
            let (list, list_values) = in_ids(self.backend(), &ids);
            for sql in [
                format!("DELETE FROM config_changes WHERE config_id{list}"),
                format!("DELETE FROM insights WHERE config_id{list}"),
                format!("DELETE FROM config_relationships WHERE from_id{list}"),
                format!("DELETE FROM config_relationships WHERE to_id{list}"),
                format!("DELETE FROM config_external_ids WHERE config_id{list}"),
                format!("DELETE FROM config_component_relationships WHERE config_id{list}"),
                format!("UPDATE cost_records SET config_id = NULL WHERE config_id{list}"),
            ] {
                txn.execute_raw(stmt(self.backend(), &sql, list_values.clone()))
                    .await?;
            }
            purged += txn
                .execute_raw(stmt(
                    self.backend(),
                    &format!("DELETE FROM config_items WHERE deleted_at IS NOT NULL AND id{list}"),
                    list_values,
                ))
                .await?
                .rows_affected();
            txn.commit().await?;
            if ids.len() < RETENTION_BATCH {
                break;
            }
        }
        Ok(purged)
    }

    /// Deletes changes by id in one transaction.
    async fn delete_changes(&self, ids: &[Uuid]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let (list, values) = in_ids(self.backend(), ids);
        let (_guard, txn) = self.write_txn().await?;
        let n = txn
            .execute_raw(stmt(
                self.backend(),
                &format!("DELETE FROM config_changes WHERE id{list}"),
                values,
            ))
            .await?
            .rows_affected();
        txn.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catch_all_with_the_default_age_follows_the_configured_rules() {
        let policy = RetentionPolicy {
            changes: vec![ChangeRetentionRule {
                types: "Pulled".into(),
                max_age: Some(Duration::days(7)),
                max_count: None,
            }],
            ..Default::default()
        };
        let rules = policy.effective_rules();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].types, "*");
        assert_eq!(rules[1].max_age, Some(DEFAULT_CHANGE_MAX_AGE));
    }

    #[test]
    fn a_configured_catch_all_replaces_the_default() {
        let policy = RetentionPolicy {
            changes: vec![ChangeRetentionRule {
                types: "*".into(),
                max_age: None,
                max_count: Some(500),
            }],
            ..Default::default()
        };
        assert_eq!(policy.effective_rules(), policy.changes);
    }
}
