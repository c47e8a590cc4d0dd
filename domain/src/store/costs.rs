//! Costs (SPEC §8): imported FOCUS-shaped rows, their match to items by
//! external id, each item's windowed totals, and the rollups over a
//! subtree and over groups of items.
//!
//! A row costs `effective` over its half-open period; a window takes the
//! part of it that overlaps (prorated by time). Money is `i64` micro-units
//! and is never added across currencies: every total is a list with one
//! entry per currency.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Value};
use uuid::Uuid;

use super::summary::{GroupKey, group_expr, push_value};
use super::{ItemFilter, MAX_PARAMS, Store, stmt};
use crate::error::{DomainError, Result};

/// One cost row as a source reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostRow {
    /// The resource's id at the provider (matched, lower-cased, against
    /// items' external ids).
    pub external_id: String,
    /// The service billed (`AmazonRDS`), if given.
    pub service: Option<String>,
    /// Start of the charge period (inclusive).
    pub period_start: DateTime<Utc>,
    /// End of the charge period (exclusive).
    pub period_end: DateTime<Utc>,
    /// Billed cost, micro-units.
    pub billed: i64,
    /// Effective cost (after discounts), micro-units: what totals add up.
    pub effective: i64,
    /// ISO currency code.
    pub currency: String,
}

impl CostRow {
    /// Checks a row: an id, a period that ends after it starts,
    /// non-negative costs and a currency.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(DomainError::invalid("cost row", m.to_string()));
        if self.external_id.trim().is_empty() {
            return bad("the resource id is empty");
        }
        if self.period_end <= self.period_start {
            return bad("the charge period ends before it starts");
        }
        if self.billed < 0 || self.effective < 0 {
            return bad("a cost is negative");
        }
        if self.currency.trim().is_empty() {
            return bad("the currency is empty");
        }
        Ok(())
    }

    /// What identifies the charge besides its resource and period: the
    /// service and currency. A re-import with corrected amounts updates the
    /// row instead of adding to it.
    fn fingerprint(&self) -> String {
        crate::fingerprint::fingerprint(
            "cost",
            Some(&serde_json::json!([self.service, self.currency])),
        )
    }
}

/// An amount in one currency, in micro-units.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money {
    /// Micro-units.
    pub amount: i64,
    /// ISO currency code.
    pub currency: String,
}

/// A cost window ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostWindow {
    /// The last day.
    D1,
    /// The last 7 days.
    D7,
    /// The last 30 days.
    D30,
}

impl CostWindow {
    /// The window's length.
    pub fn length(self) -> Duration {
        match self {
            CostWindow::D1 => Duration::days(1),
            CostWindow::D7 => Duration::days(7),
            CostWindow::D30 => Duration::days(30),
        }
    }
}

/// The part of `effective` (spent evenly over `[start, end)`) that falls
/// inside `[from, to)`, rounded to the nearest micro-unit.
pub fn prorate(
    effective: i64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> i64 {
    let total = (end - start).num_milliseconds();
    let overlap = (end.min(to) - start.max(from)).num_milliseconds();
    if total <= 0 || overlap <= 0 {
        return 0;
    }
    if overlap >= total {
        return effective;
    }
    ((effective as i128 * overlap as i128 + total as i128 / 2) / total as i128) as i64
}

/// `(currency, prorated effective cost)` of a row with `currency`,
/// `period_start`, `period_end` and `effective_cost` columns, for the window
/// `[from, to)`.
pub(crate) fn prorated_part(
    r: &sea_orm::QueryResult,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(String, i64)> {
    Ok((
        r.try_get("", "currency")?,
        prorate(
            r.try_get("", "effective_cost")?,
            r.try_get("", "period_start")?,
            r.try_get("", "period_end")?,
            from,
            to,
        ),
    ))
}

/// Sums `(currency, amount)` pairs per currency, sorted by currency.
pub(crate) fn by_currency(parts: impl IntoIterator<Item = (String, i64)>) -> Vec<Money> {
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for (currency, amount) in parts {
        *sums.entry(currency).or_default() += amount;
    }
    sums.into_iter()
        .map(|(currency, amount)| Money { amount, currency })
        .collect()
}

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostImport {
    /// Rows inserted or whose amounts changed.
    pub written: i64,
    /// Rows already stored as they are.
    pub unchanged: i64,
    /// Rows matched to an item.
    pub matched: i64,
    /// Rows that match no item (kept, reported).
    pub unattributed_rows: i64,
    /// Their spend, per currency.
    pub unattributed: Vec<Money>,
}

/// An item's totals in one currency, micro-units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostTotals {
    /// ISO currency code.
    pub currency: String,
    /// `total_1d / 1440`.
    pub per_minute: i64,
    /// Last day.
    pub total_1d: i64,
    /// Last 7 days.
    pub total_7d: i64,
    /// Last 30 days.
    pub total_30d: i64,
}

/// A group of the cost report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostGroup {
    /// The group's key values, in `groupBy` order.
    pub key: Vec<(String, String)>,
    /// Items in the group with any cost in the window.
    pub items: i64,
    /// Spend per currency.
    pub cost: Vec<Money>,
}

/// The cost report: spend per group and the spend no item claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostReport {
    /// Groups, sorted by key.
    pub groups: Vec<CostGroup>,
    /// Spend of rows that match no item, per currency.
    pub unattributed: Vec<Money>,
    /// More than one currency appears.
    pub mixed_currency: bool,
}

impl Store {
    /// Imports the rows of one source of `scraper_id` in one transaction:
    /// each is upserted on `(scraper, external id, period, fingerprint)`,
    /// matched to the oldest live item with that external id, and the
    /// totals of the items they touch are recomputed. An invalid row
    /// rejects the whole set (its 1-based number in the error) before
    /// anything is written.
    pub async fn import_costs(&self, scraper_id: Uuid, rows: Vec<CostRow>) -> Result<CostImport> {
        for (n, row) in rows.iter().enumerate() {
            row.validate().map_err(|e| match e {
                DomainError::Invalid { message, .. } => {
                    DomainError::invalid("cost row", format!("row {}: {message}", n + 1))
                }
                other => other,
            })?;
        }
        let mut rows = rows;
        for row in &mut rows {
            row.external_id = row.external_id.trim().to_lowercase();
        }
        let now = super::now();
        let backend = self.backend();
        let (_guard, txn) = self.write_txn().await?;

        // Match: the oldest live item carrying the external id.
        let mut wanted: Vec<String> = rows.iter().map(|r| r.external_id.clone()).collect();
        wanted.sort();
        wanted.dedup();
        let mut owner: HashMap<String, Uuid> = HashMap::new();
        for chunk in wanted.chunks(MAX_PARAMS / 2) {
            let sql = format!(
                "SELECT e.external_id AS e, c.id AS id, c.created_at AS t FROM config_external_ids e \
                 JOIN config_items c ON c.id = e.config_id WHERE c.deleted_at IS NULL AND e.external_id IN ({})",
                super::marks(chunk.len())
            );
            let values: Vec<Value> = chunk.iter().map(|e| Value::from(e.clone())).collect();
            let mut oldest: HashMap<String, (DateTime<Utc>, Uuid)> = HashMap::new();
            for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
                let e: String = row.try_get("", "e")?;
                let candidate = (row.try_get("", "t")?, row.try_get("", "id")?);
                let slot = oldest.entry(e).or_insert(candidate);
                if candidate < *slot {
                    *slot = candidate;
                }
            }
            owner.extend(oldest.into_iter().map(|(e, (_, id))| (e, id)));
        }

        let mut import = CostImport::default();
        let mut unattributed: Vec<(String, i64)> = Vec::new();
        let mut touched: Vec<Uuid> = Vec::new();
        for row in &rows {
            let config_id = owner.get(&row.external_id).copied();
            let fingerprint = row.fingerprint();
            let existing = txn
                .query_one_raw(stmt(
                    backend,
                    "SELECT id, config_id, billed_cost, effective_cost FROM cost_records WHERE scraper_id = ? \
                     AND external_id = ? AND period_start = ? AND period_end = ? AND fingerprint = ?",
                    vec![
                        scraper_id.into(),
                        row.external_id.clone().into(),
                        row.period_start.into(),
                        row.period_end.into(),
                        fingerprint.clone().into(),
                    ],
                ))
                .await?;
            match existing {
                Some(stored) => {
                    let id: Uuid = stored.try_get("", "id")?;
                    let old_config: Option<Uuid> = stored.try_get("", "config_id")?;
                    let same = stored.try_get::<i64>("", "billed_cost")? == row.billed
                        && stored.try_get::<i64>("", "effective_cost")? == row.effective
                        && old_config == config_id;
                    if same {
                        import.unchanged += 1;
                    } else {
                        import.written += 1;
                        txn.execute_raw(stmt(
                            backend,
                            "UPDATE cost_records SET config_id = ?, billed_cost = ?, effective_cost = ?, imported_at = ? WHERE id = ?",
                            vec![
                                config_id.into(),
                                row.billed.into(),
                                row.effective.into(),
                                now.into(),
                                id.into(),
                            ],
                        ))
                        .await?;
                        touched.extend(old_config);
                    }
                }
                None => {
                    import.written += 1;
                    txn.execute_raw(stmt(
                        backend,
                        "INSERT INTO cost_records (id, scraper_id, external_id, config_id, service, period_start, period_end, \
                         billed_cost, effective_cost, currency, fingerprint, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        vec![
                            crate::ids::row_id().into(),
                            scraper_id.into(),
                            row.external_id.clone().into(),
                            config_id.into(),
                            row.service.clone().into(),
                            row.period_start.into(),
                            row.period_end.into(),
                            row.billed.into(),
                            row.effective.into(),
                            row.currency.clone().into(),
                            fingerprint.into(),
                            now.into(),
                        ],
                    ))
                    .await?;
                }
            }
            match config_id {
                Some(id) => {
                    import.matched += 1;
                    touched.push(id);
                }
                None => {
                    import.unattributed_rows += 1;
                    unattributed.push((row.currency.clone(), row.effective));
                }
            }
        }
        import.unattributed = by_currency(unattributed);
        touched.sort();
        touched.dedup();
        write_item_totals(&txn, &touched, now).await?;
        txn.commit().await?;
        Ok(import)
    }

    /// Re-matches rows no item claimed (items may have appeared since) and
    /// recomputes every item's totals over windows ending `now` (SPEC §8:
    /// after imports and hourly). Returns how many items' totals moved.
    pub async fn recompute_costs(&self, now: DateTime<Utc>) -> Result<i64> {
        let backend = self.backend();
        let (_guard, txn) = self.write_txn().await?;
        txn.execute_raw(stmt(
            backend,
            "UPDATE cost_records SET config_id = (SELECT e.config_id FROM config_external_ids e \
             JOIN config_items c ON c.id = e.config_id WHERE e.external_id = cost_records.external_id \
             AND c.deleted_at IS NULL ORDER BY c.created_at, c.id LIMIT 1) WHERE config_id IS NULL",
            vec![],
        ))
        .await?;
        // Items with rows in the 30-day window, and items still showing a
        // cost that has aged out.
        let since = now - CostWindow::D30.length();
        let rows = txn
            .query_all_raw(stmt(
                backend,
                "SELECT DISTINCT config_id AS id FROM cost_records WHERE config_id IS NOT NULL AND period_end > ? \
                 UNION SELECT id FROM config_items WHERE cost_total_30d IS NOT NULL OR currency IS NOT NULL",
                vec![since.into()],
            ))
            .await?;
        let mut ids: Vec<Uuid> = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(row.try_get("", "id")?);
        }
        let moved = write_item_totals(&txn, &ids, now).await?;
        txn.commit().await?;
        Ok(moved)
    }

    /// Each item's totals per currency over windows ending `now`.
    pub async fn item_costs(
        &self,
        ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<HashMap<Uuid, Vec<CostTotals>>> {
        if self.scope().is_some() {
            let visible = self.visible_ids(ids).await?;
            let ids: Vec<Uuid> = ids
                .iter()
                .copied()
                .filter(|i| visible.contains(i))
                .collect();
            return totals_of(self.reads(), &ids, now).await;
        }
        totals_of(self.reads(), ids, now).await
    }

    /// Spend of the item and its live hard descendants over `window`,
    /// per currency.
    pub async fn subtree_cost(
        &self,
        id: Uuid,
        window: CostWindow,
        now: DateTime<Utc>,
    ) -> Result<Vec<Money>> {
        let backend = self.backend();
        let (visible, mut values) = match self.scope_sql("c.") {
            Some(s) => (format!(" AND {}", s.text), s.values),
            None => (String::new(), Vec::new()),
        };
        let Some(row) = self
            .reads()
            .query_one_raw(stmt(
                backend,
                &format!("SELECT c.path FROM config_items c WHERE c.id = ?{visible}"),
                std::iter::once(id.into()).chain(values.clone()).collect(),
            ))
            .await?
        else {
            return Ok(Vec::new());
        };
        let path: String = row.try_get("", "path")?;
        let prefix = if path.is_empty() {
            id.to_string()
        } else {
            format!("{path}.{id}")
        };
        let from = now - window.length();
        let rows = self
            .reads()
            .query_all_raw(stmt(
                backend,
                &format!(
                    "SELECT r.currency, r.period_start, r.period_end, r.effective_cost FROM cost_records r \
                     JOIN config_items c ON c.id = r.config_id WHERE (c.id = ? OR ((c.path = ? OR c.path LIKE ?) AND c.deleted_at IS NULL)) \
                     AND r.period_end > ? AND r.period_start < ?{visible}"
                ),
                {
                    let mut all: Vec<Value> = vec![
                        id.into(),
                        prefix.clone().into(),
                        format!("{prefix}.%").into(),
                        from.into(),
                        now.into(),
                    ];
                    all.append(&mut values);
                    all
                },
            ))
            .await?;
        let mut parts = Vec::with_capacity(rows.len());
        for r in rows {
            parts.push(prorated_part(&r, from, now)?);
        }
        Ok(by_currency(parts))
    }

    /// Spend over `window` of the items `filter` selects, grouped by up to
    /// three keys (`type`, `class`, `namespace`, `tag:<k>`, `label:<k>`),
    /// with the spend no item claims.
    pub async fn cost_report(
        &self,
        filter: &ItemFilter,
        group_by: &[GroupKey],
        window: CostWindow,
        now: DateTime<Utc>,
    ) -> Result<CostReport> {
        if group_by.is_empty() || group_by.len() > 3 {
            return Err(DomainError::invalid(
                "groupBy",
                format!("takes 1 to 3 keys, got {}", group_by.len()),
            ));
        }
        let backend = self.backend();
        let from = now - window.length();
        let filtered = self.filtered(filter).await?;
        let mut values = filtered.values.clone();
        let exprs: Vec<String> = group_by
            .iter()
            .map(|k| group_expr(backend, k, &mut values))
            .collect();
        let selected: Vec<String> = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS g{i}"))
            .collect();
        let from_mark = push_value(backend, &mut values, Value::from(from));
        let to_mark = push_value(backend, &mut values, Value::from(now));
        let sql = format!(
            "SELECT {}, ci.id AS item, r.currency AS currency, r.period_start AS ps, r.period_end AS pe, \
             r.effective_cost AS cost FROM ({}) ci JOIN cost_records r ON r.config_id = ci.id \
             WHERE r.period_end > {from_mark} AND r.period_start < {to_mark}",
            selected.join(", "),
            filtered.sql
        );
        let names: Vec<String> = group_by.iter().map(GroupKey::name).collect();
        // Per group: the items with spend, and their prorated parts.
        let mut groups: BTreeMap<Vec<String>, GroupSpend> = BTreeMap::new();
        for row in self.analytic_rows(sql, values).await? {
            let mut key = Vec::with_capacity(group_by.len());
            for i in 0..group_by.len() {
                key.push(
                    row.try_get::<Option<String>>("", &format!("g{i}"))?
                        .unwrap_or_default(),
                );
            }
            let entry = groups.entry(key).or_default();
            entry.0.insert(row.try_get("", "item")?);
            entry.1.push((
                row.try_get("", "currency")?,
                prorate(
                    row.try_get("", "cost")?,
                    row.try_get("", "ps")?,
                    row.try_get("", "pe")?,
                    from,
                    now,
                ),
            ));
        }
        // Spend no item claims belongs to no scope: a scoped caller sees none.
        let unclaimed = if self.scope().is_some() {
            Vec::new()
        } else {
            self.reads()
                .query_all_raw(stmt(
                    backend,
                    "SELECT currency, period_start, period_end, effective_cost FROM cost_records \
                 WHERE config_id IS NULL AND period_end > ? AND period_start < ?",
                    vec![from.into(), now.into()],
                ))
                .await?
        };
        let mut unattributed = Vec::with_capacity(unclaimed.len());
        for r in unclaimed {
            unattributed.push(prorated_part(&r, from, now)?);
        }
        let mut currencies = std::collections::BTreeSet::new();
        let groups: Vec<CostGroup> = groups
            .into_iter()
            .map(|(key, (items, parts))| {
                let cost = by_currency(parts);
                currencies.extend(cost.iter().map(|m| m.currency.clone()));
                CostGroup {
                    key: names.iter().cloned().zip(key).collect(),
                    items: items.len() as i64,
                    cost,
                }
            })
            .collect();
        let unattributed = by_currency(unattributed);
        currencies.extend(unattributed.iter().map(|m| m.currency.clone()));
        Ok(CostReport {
            groups,
            unattributed,
            mixed_currency: currencies.len() > 1,
        })
    }
}

/// A report group's items with spend and their `(currency, amount)` parts.
type GroupSpend = (std::collections::HashSet<Uuid>, Vec<(String, i64)>);

/// Totals per item and currency from the rows of the last 30 days.
async fn totals_of(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<HashMap<Uuid, Vec<CostTotals>>> {
    let backend = db.get_database_backend();
    let since = now - CostWindow::D30.length();
    let mut sums: HashMap<Uuid, BTreeMap<String, CostTotals>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        let (list, mut values) = super::in_ids(backend, chunk);
        values.push(since.into());
        values.push(now.into());
        let sql = format!(
            "SELECT config_id, currency, period_start, period_end, effective_cost FROM cost_records \
             WHERE config_id{list} AND period_end > ? AND period_start < ?"
        );
        for r in db.query_all_raw(stmt(backend, &sql, values)).await? {
            let id: Uuid = r.try_get("", "config_id")?;
            let currency: String = r.try_get("", "currency")?;
            let cost: i64 = r.try_get("", "effective_cost")?;
            let start: DateTime<Utc> = r.try_get("", "period_start")?;
            let end: DateTime<Utc> = r.try_get("", "period_end")?;
            let t = sums
                .entry(id)
                .or_default()
                .entry(currency.clone())
                .or_insert_with(|| CostTotals {
                    currency,
                    ..CostTotals::default()
                });
            for (window, slot) in [
                (CostWindow::D1, &mut t.total_1d),
                (CostWindow::D7, &mut t.total_7d),
                (CostWindow::D30, &mut t.total_30d),
            ] {
                *slot += prorate(cost, start, end, now - window.length(), now);
            }
        }
    }
    Ok(sums
        .into_iter()
        .map(|(id, by)| {
            let totals = by
                .into_values()
                .map(|mut t| {
                    t.per_minute = t.total_1d / 1440;
                    t
                })
                .collect();
            (id, totals)
        })
        .collect())
}

/// Writes the scalar cost fields of `ids`: the totals when the item has
/// one currency, NULL when it has none or several. Returns how many rows
/// changed.
async fn write_item_totals(
    txn: &sea_orm::DatabaseTransaction,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<i64> {
    let backend = txn.get_database_backend();
    let totals = totals_of(txn, ids, now).await?;
    let mut moved = 0;
    for id in ids {
        let single = match totals.get(id).map(Vec::as_slice) {
            Some([one]) => Some(one.clone()),
            _ => None,
        };
        let values: Vec<Value> = match &single {
            Some(t) => vec![
                Some(t.per_minute).into(),
                Some(t.total_1d).into(),
                Some(t.total_7d).into(),
                Some(t.total_30d).into(),
                Some(t.currency.clone()).into(),
            ],
            None => vec![
                Option::<i64>::None.into(),
                Option::<i64>::None.into(),
                Option::<i64>::None.into(),
                Option::<i64>::None.into(),
                Option::<String>::None.into(),
            ],
        };
        let mut values = values;
        values.push((*id).into());
        let sql = if backend == DbBackend::Postgres {
            "UPDATE config_items SET cost_per_minute = ?, cost_total_1d = ?, cost_total_7d = ?, cost_total_30d = ?, currency = ? \
             WHERE id = ? AND (cost_per_minute, cost_total_1d, cost_total_7d, cost_total_30d, currency) \
             IS DISTINCT FROM (?, ?, ?, ?, ?)"
        } else {
            "UPDATE config_items SET cost_per_minute = ?, cost_total_1d = ?, cost_total_7d = ?, cost_total_30d = ?, currency = ? \
             WHERE id = ? AND NOT (cost_per_minute IS ? AND cost_total_1d IS ? AND cost_total_7d IS ? AND cost_total_30d IS ? AND currency IS ?)"
        };
        let repeat: Vec<Value> = values[..5].to_vec();
        values.extend(repeat);
        moved += txn
            .execute_raw(stmt(backend, sql, values))
            .await?
            .rows_affected() as i64;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .expect("date")
            + Duration::hours(h as i64)
    }

    #[test]
    fn prorating_takes_the_overlapping_share() {
        // 24 units over a day; the window covers its last 6 hours.
        assert_eq!(
            prorate(24_000_000, at(0), at(24), at(18), at(48)),
            6_000_000
        );
        // Fully inside, fully outside, touching edges (half-open).
        assert_eq!(prorate(5, at(2), at(3), at(0), at(24)), 5);
        assert_eq!(prorate(5, at(2), at(3), at(3), at(24)), 0);
        assert_eq!(prorate(5, at(2), at(3), at(0), at(2)), 0);
        // A third of 10 micro-units rounds to 3.
        assert_eq!(prorate(10, at(0), at(3), at(0), at(1)), 3);
    }

    #[test]
    fn currencies_are_never_added() {
        let m = by_currency([("USD".into(), 5), ("EUR".into(), 2), ("USD".into(), 1)]);
        assert_eq!(
            m,
            vec![
                Money {
                    amount: 2,
                    currency: "EUR".into()
                },
                Money {
                    amount: 6,
                    currency: "USD".into()
                },
            ]
        );
    }

    #[test]
    fn rows_are_validated() {
        let row = CostRow {
            external_id: "i-1".into(),
            service: None,
            period_start: at(0),
            period_end: at(1),
            billed: 1,
            effective: 1,
            currency: "USD".into(),
        };
        assert!(row.validate().is_ok());
        assert!(
            CostRow {
                effective: -1,
                ..row.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            CostRow {
                period_end: at(0),
                ..row.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            CostRow {
                external_id: " ".into(),
                ..row.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            CostRow {
                currency: String::new(),
                ..row
            }
            .validate()
            .is_err()
        );
    }
}
