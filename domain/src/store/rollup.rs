//! Health rollup over hard descendants (SPEC §6, "Item rollup").
//!
//! Every item keeps `descendant_health`, the health counts of its live hard
//! descendants (the items whose `path` runs through it), and
//! `rolled_up_health`, the worst of its own health and those counts. Writers
//! collect a [`RollupDelta`] while they change items — an insert, a health
//! transition or a delete moves one count on every ancestor in the item's
//! path; a re-parent recomputes the counts of its old and new ancestors —
//! and apply it in the same transaction. [`Store::recompute_rollups`]
//! rebuilds every count from the paths (at startup and every 6 h) and
//! reports the drift it repaired.
//!
//! On PostgreSQL, two batches that share an ancestor would update its
//! counts in whatever order their rows come; a transaction with rollup work
//! therefore takes [`lock`] before its first write, which serializes exactly
//! those transactions and cannot deadlock with the ones that have none.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Value};
use serde_json::json;
use uuid::Uuid;

use super::{Store, marks, stmt};
use crate::error::Result;
use crate::model::Health;

/// Health counts indexed by [`Health`] order (unknown, healthy, warning,
/// unhealthy).
pub type DescendantCounts = [i64; 4];

/// The advisory lock (`pg_advisory_xact_lock(space, key)`) that serializes
/// transactions with rollup work on PostgreSQL.
const ROLLUP_LOCK: (i32, i32) = (0x5354_5242, 1);

/// The index of `h` in a [`DescendantCounts`].
pub(crate) fn slot(h: Health) -> usize {
    match h {
        Health::Unknown => 0,
        Health::Healthy => 1,
        Health::Warning => 2,
        Health::Unhealthy => 3,
    }
}

/// Decodes a stored `descendant_health` object; missing keys count zero.
pub fn decode_counts(value: &serde_json::Value) -> DescendantCounts {
    let mut counts = [0; 4];
    for h in Health::ALL {
        counts[slot(*h)] = value.get(h.as_str()).and_then(|v| v.as_i64()).unwrap_or(0);
    }
    counts
}

/// Encodes counts as stored: only the non-zero ones.
pub fn encode_counts(counts: &DescendantCounts) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for h in Health::ALL {
        let n = counts[slot(*h)];
        if n != 0 {
            map.insert(h.as_str().to_string(), json!(n));
        }
    }
    serde_json::Value::Object(map)
}

/// The worst of `own` and every health with a non-zero count.
pub fn rolled_up(own: Health, counts: &DescendantCounts) -> Health {
    Health::ALL
        .iter()
        .copied()
        .filter(|h| counts[slot(*h)] > 0)
        .fold(own, Health::max)
}

/// The ancestor ids in a `path` (ids joined with `.`); malformed segments
/// are skipped.
fn ancestors(path: &str) -> impl Iterator<Item = Uuid> + '_ {
    path.split('.')
        .filter(|s| !s.is_empty())
        .filter_map(|s| Uuid::parse_str(s).ok())
}

/// Takes the rollup lock for the rest of `txn` (PostgreSQL; SQLite's writer
/// lock already serializes writers). Call it before the transaction's first
/// write.
pub(crate) async fn lock(txn: &DatabaseTransaction) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(stmt(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(?, ?)",
            vec![ROLLUP_LOCK.0.into(), ROLLUP_LOCK.1.into()],
        ))
        .await?;
    }
    Ok(())
}

/// What one item whose rolled-up health moved went from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupTransition {
    /// The item.
    pub id: Uuid,
    /// Its rolled-up health before.
    pub previous: Health,
    /// Its rolled-up health after.
    pub current: Health,
}

/// Rollup work collected while a transaction writes items.
#[derive(Debug, Default)]
pub(crate) struct RollupDelta {
    deltas: HashMap<Uuid, DescendantCounts>,
    recompute: HashSet<Uuid>,
    own: HashSet<Uuid>,
}

impl RollupDelta {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty() && self.recompute.is_empty() && self.own.is_empty()
    }

    /// `by` items of health `health` appeared (or, negative, left) under
    /// every ancestor in `path`.
    pub fn count(&mut self, path: &str, health: Health, by: i64) {
        for a in ancestors(path) {
            self.deltas.entry(a).or_default()[slot(health)] += by;
        }
    }

    /// An item moved to or from `path` with its subtree: its ancestors'
    /// counts are recomputed from the paths after the writes.
    pub fn recompute_ancestors(&mut self, path: &str) {
        self.recompute.extend(ancestors(path));
    }

    /// The item's own health changed (or it was revived): its rolled-up
    /// health is re-derived.
    pub fn own_changed(&mut self, id: Uuid) {
        self.own.insert(id);
    }

    /// Writes the collected work into `txn`, after the items themselves.
    /// Returns the items whose rolled-up health moved.
    pub async fn apply(self, txn: &DatabaseTransaction) -> Result<Vec<RollupTransition>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let backend = txn.get_database_backend();
        let mut targets: Vec<Uuid> = self
            .deltas
            .keys()
            .chain(self.recompute.iter())
            .chain(self.own.iter())
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        targets.sort();
        let mut updates: Vec<(Uuid, DescendantCounts, Health)> = Vec::new();
        let mut transitions = Vec::new();
        for chunk in targets.chunks(1000) {
            let (list, values) = super::in_ids(backend, chunk);
            let sql = format!(
                "SELECT id, path, health, descendant_health, rolled_up_health FROM config_items WHERE id{list}"
            );
            for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
                let id: Uuid = row.try_get("", "id")?;
                let path: String = row.try_get("", "path")?;
                let own: Health = row
                    .try_get::<String>("", "health")?
                    .parse()
                    .unwrap_or(Health::Unknown);
                let stored: serde_json::Value = row.try_get("", "descendant_health")?;
                let stored = decode_counts(&stored);
                let previous: Health = row
                    .try_get::<String>("", "rolled_up_health")?
                    .parse()
                    .unwrap_or(Health::Unknown);
                let counts = if self.recompute.contains(&id) {
                    subtree_counts(txn, &path, id).await?
                } else {
                    let mut counts = stored;
                    if let Some(delta) = self.deltas.get(&id) {
                        for (c, d) in counts.iter_mut().zip(delta) {
                            // A negative count is drift; the recompute job repairs it.
                            *c = (*c + d).max(0);
                        }
                    }
                    counts
                };
                let current = rolled_up(own, &counts);
                if counts != stored || current != previous {
                    updates.push((id, counts, current));
                }
                if current != previous {
                    transitions.push(RollupTransition {
                        id,
                        previous,
                        current,
                    });
                }
            }
        }
        write_rollups(txn, &updates).await?;
        Ok(transitions)
    }
}

/// Counts of the live items under `id` (whose own path is `path`).
async fn subtree_counts(
    txn: &DatabaseTransaction,
    path: &str,
    id: Uuid,
) -> Result<DescendantCounts> {
    let prefix = if path.is_empty() {
        id.to_string()
    } else {
        format!("{path}.{id}")
    };
    let rows = txn
        .query_all_raw(stmt(
            txn.get_database_backend(),
            "SELECT health, COUNT(*) AS n FROM config_items WHERE deleted_at IS NULL AND (path = ? OR path LIKE ?) GROUP BY health",
            vec![prefix.clone().into(), format!("{prefix}.%").into()],
        ))
        .await?;
    let mut counts = [0; 4];
    for row in rows {
        let health: Health = row
            .try_get::<String>("", "health")?
            .parse()
            .unwrap_or(Health::Unknown);
        counts[slot(health)] += row.try_get::<i64>("", "n")?;
    }
    Ok(counts)
}

/// Stores new counts and rolled-up health: one statement per 1,000 rows on
/// PostgreSQL, per 500 on SQLite.
async fn write_rollups(
    txn: &DatabaseTransaction,
    updates: &[(Uuid, DescendantCounts, Health)],
) -> Result<()> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        for chunk in updates.chunks(1000) {
            let payload: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(id, counts, h)| json!({"id": id, "d": encode_counts(counts), "h": h.as_str()}))
                .collect();
            txn.execute_raw(stmt(
                backend,
                "UPDATE config_items AS c SET descendant_health = r.d, rolled_up_health = r.h \
                 FROM jsonb_to_recordset(CAST(? AS jsonb)) AS r(id uuid, d jsonb, h text) WHERE c.id = r.id",
                vec![serde_json::Value::Array(payload).to_string().into()],
            ))
            .await?;
        }
    } else {
        // One `CASE` statement per 500 rows (each statement is a round trip
        // to the database thread).
        for chunk in updates.chunks(500) {
            let mut sql = String::from("UPDATE config_items SET descendant_health = CASE id");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
            for (id, counts, _) in chunk {
                sql.push_str(" WHEN ? THEN ?");
                values.push((*id).into());
                values.push(Value::from(encode_counts(counts)));
            }
            sql.push_str(" ELSE descendant_health END, rolled_up_health = CASE id");
            for (id, _, h) in chunk {
                sql.push_str(" WHEN ? THEN ?");
                values.push((*id).into());
                values.push(h.as_str().into());
            }
            sql.push_str(&format!(
                " ELSE rolled_up_health END WHERE id IN ({})",
                marks(chunk.len())
            ));
            values.extend(chunk.iter().map(|(id, _, _)| Value::from(*id)));
            txn.execute_raw(stmt(backend, &sql, values)).await?;
        }
    }
    Ok(())
}

/// What [`Store::recompute_rollups`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupDrift {
    /// Items examined.
    pub items: i64,
    /// Items whose stored counts or rolled-up health were wrong, now fixed.
    pub repaired: i64,
}

impl Store {
    /// Rebuilds every item's descendant counts and rolled-up health from
    /// the paths, fixing the rows that drifted (SPEC §6: at startup and
    /// every 6 h). Holds the writer lock while it runs.
    pub async fn recompute_rollups(&self) -> Result<RollupDrift> {
        let (_guard, txn) = self.write_txn().await?;
        lock(&txn).await?;
        let backend = self.backend();
        let rows = txn
            .query_all_raw(stmt(
                backend,
                "SELECT id, path, health, descendant_health, rolled_up_health, deleted_at IS NULL AS live FROM config_items",
                vec![],
            ))
            .await?;
        struct Row {
            id: Uuid,
            own: Health,
            stored: DescendantCounts,
            rolled: Health,
        }
        let mut counts: HashMap<Uuid, DescendantCounts> = HashMap::new();
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.try_get("", "id")?;
            let path: String = row.try_get("", "path")?;
            let own: Health = row
                .try_get::<String>("", "health")?
                .parse()
                .unwrap_or(Health::Unknown);
            let live: bool = row.try_get("", "live")?;
            if live {
                for a in ancestors(&path) {
                    counts.entry(a).or_default()[slot(own)] += 1;
                }
            }
            let stored: serde_json::Value = row.try_get("", "descendant_health")?;
            items.push(Row {
                id,
                own,
                stored: decode_counts(&stored),
                rolled: row
                    .try_get::<String>("", "rolled_up_health")?
                    .parse()
                    .unwrap_or(Health::Unknown),
            });
        }
        drop(rows);
        let mut updates = Vec::new();
        for row in &items {
            let fresh = counts.get(&row.id).copied().unwrap_or_default();
            let current = rolled_up(row.own, &fresh);
            if fresh != row.stored || current != row.rolled {
                updates.push((row.id, fresh, current));
            }
        }
        write_rollups(&txn, &updates).await?;
        txn.commit().await?;
        Ok(RollupDrift {
            items: items.len() as i64,
            repaired: updates.len() as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolled_up_is_the_worst_present() {
        assert_eq!(rolled_up(Health::Unknown, &[0; 4]), Health::Unknown);
        assert_eq!(rolled_up(Health::Healthy, &[3, 0, 0, 0]), Health::Healthy);
        assert_eq!(rolled_up(Health::Healthy, &[0, 5, 1, 0]), Health::Warning);
        assert_eq!(rolled_up(Health::Warning, &[0, 5, 0, 1]), Health::Unhealthy);
        assert_eq!(
            rolled_up(Health::Unhealthy, &[0, 5, 0, 0]),
            Health::Unhealthy
        );
    }

    #[test]
    fn counts_round_trip_and_skip_zeroes() {
        let counts = [0, 4, 0, 1];
        let encoded = encode_counts(&counts);
        assert_eq!(encoded, json!({"healthy": 4, "unhealthy": 1}));
        assert_eq!(decode_counts(&encoded), counts);
        assert_eq!(decode_counts(&json!({})), [0; 4]);
    }

    #[test]
    fn deltas_reach_every_ancestor() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let mut delta = RollupDelta::default();
        delta.count(&format!("{a}.{b}"), Health::Unhealthy, 1);
        delta.count(&a.to_string(), Health::Healthy, -1);
        assert_eq!(delta.deltas[&a], [0, -1, 0, 1]);
        assert_eq!(delta.deltas[&b], [0, 0, 0, 1]);
        delta.count("", Health::Healthy, 1);
        assert_eq!(delta.deltas.len(), 2);
    }
}
