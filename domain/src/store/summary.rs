//! Aggregates over a filtered set of items (SPEC §11 `facets` and
//! `catalogSummary`): value counts of types, classes, tag and label keys and
//! values, change types and analyzers; and per-group counts of health,
//! rolled-up health, recent changes, open insights and cost.
//!
//! Each aggregate wraps the item filter's own `SELECT` as a subquery, so it
//! sees exactly the rows a list with that filter would.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait, Statement, Value,
};

use super::Store;
use super::items::ItemFilter;
use crate::entities::config_item;
use crate::error::{DomainError, Result};
use crate::model::Health;

/// Parallel workers an aggregate may use on PostgreSQL (the server's own
/// default).
const ANALYTIC_PARALLEL_WORKERS: u32 = 2;

/// A value and how many items (or rows) carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueCount {
    /// The value.
    pub value: String,
    /// How many.
    pub count: i64,
}

/// Which facet to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Facet {
    /// Config types.
    Types,
    /// Config classes.
    Classes,
    /// Tag keys.
    TagKeys,
    /// Values of one tag.
    TagValues(String),
    /// Label keys.
    LabelKeys,
    /// Values of one label.
    LabelValues(String),
    /// Change types of the items' changes.
    ChangeTypes,
    /// Analyzers of the items' open insights.
    Analyzers,
}

/// What a summary groups items by (up to three keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    /// Config type.
    Type,
    /// Config class.
    Class,
    /// Namespace (`""` for none).
    Namespace,
    /// Health.
    Health,
    /// A tag's value (`""` when absent).
    Tag(String),
    /// A label's value (`""` when absent).
    Label(String),
}

impl GroupKey {
    /// Parses `type`, `class`, `namespace`, `health`, `tag:<k>` or `label:<k>`.
    pub fn parse(text: &str) -> Result<GroupKey> {
        let bad = || {
            DomainError::invalid(
                "groupBy",
                format!("'{text}' is not type, class, namespace, health, tag:<key> or label:<key>"),
            )
        };
        Ok(match text {
            "type" => GroupKey::Type,
            "class" => GroupKey::Class,
            "namespace" => GroupKey::Namespace,
            "health" => GroupKey::Health,
            _ => match text.split_once(':') {
                Some(("tag", k)) if !k.is_empty() => GroupKey::Tag(k.to_string()),
                Some(("label", k)) if !k.is_empty() => GroupKey::Label(k.to_string()),
                _ => return Err(bad()),
            },
        })
    }

    /// The name the key is reported under.
    pub fn name(&self) -> String {
        match self {
            GroupKey::Type => "type".into(),
            GroupKey::Class => "class".into(),
            GroupKey::Namespace => "namespace".into(),
            GroupKey::Health => "health".into(),
            GroupKey::Tag(k) => format!("tag:{k}"),
            GroupKey::Label(k) => format!("label:{k}"),
        }
    }
}

/// Health values counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthTally {
    /// Healthy.
    pub healthy: i64,
    /// Warning.
    pub warning: i64,
    /// Unhealthy.
    pub unhealthy: i64,
    /// Unknown.
    pub unknown: i64,
}

/// One group of a catalog summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryGroup {
    /// The group's value of each `groupBy` key, in order.
    pub key: Vec<(String, String)>,
    /// Items.
    pub count: i64,
    /// Own health of the items.
    pub health: HealthTally,
    /// Rolled-up health of the items.
    pub rolled_up_health: HealthTally,
    /// Change rows of the items created since the window start.
    pub changes: i64,
    /// Open insights of the items, by severity.
    pub insights: super::InsightCounts,
    /// Cost over 30 days by currency, in micro-units (never summed across
    /// currencies).
    pub cost_30d: BTreeMap<String, i64>,
}

/// The subquery of the filtered items, with its values.
pub(crate) struct Filtered {
    pub(crate) sql: String,
    pub(crate) values: Vec<Value>,
}

/// Appends a value to a statement whose placeholders are already rendered
/// for `backend`, returning its placeholder.
pub(crate) fn push_value(backend: DbBackend, values: &mut Vec<Value>, value: Value) -> String {
    values.push(value);
    // Numbered, so an expression can use its value more than once (in
    // SELECT and GROUP BY); SQLite numbers plain `?` the same way.
    match backend {
        DbBackend::Postgres => format!("${}", values.len()),
        _ => format!("?{}", values.len()),
    }
}

fn json_key(backend: DbBackend, column: &str, key: &str, values: &mut Vec<Value>) -> String {
    match backend {
        DbBackend::Postgres => {
            let p = push_value(backend, values, Value::from(key.to_string()));
            format!("({column} ->> {p})")
        }
        _ => {
            let path = format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""));
            let p = push_value(backend, values, Value::from(path));
            format!("json_extract({column}, {p})")
        }
    }
}

pub(crate) fn group_expr(backend: DbBackend, key: &GroupKey, values: &mut Vec<Value>) -> String {
    match key {
        GroupKey::Type => "ci.type".into(),
        GroupKey::Class => "ci.config_class".into(),
        GroupKey::Namespace => "COALESCE(ci.namespace, '')".into(),
        GroupKey::Health => "ci.health".into(),
        GroupKey::Tag(k) => format!("COALESCE({}, '')", json_key(backend, "ci.tags", k, values)),
        GroupKey::Label(k) => format!(
            "COALESCE({}, '')",
            json_key(backend, "ci.labels", k, values)
        ),
    }
}

/// Numbers SQLite's bare `?` placeholders (`?1`, `?2`…) in order. The
/// filtered subquery is embedded after expressions that use numbered
/// placeholders ([`push_value`]), and SQLite gives a bare `?` the number
/// after the largest one seen so far in the text, not its position.
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted && !chars.peek().is_some_and(char::is_ascii_digit) => {
                n += 1;
                out.push_str(&n.to_string());
            }
            _ => {}
        }
    }
    out
}

impl Store {
    pub(crate) async fn filtered(&self, filter: &ItemFilter) -> Result<Filtered> {
        use config_item::Column as C;
        let statement = config_item::Entity::find()
            .select_only()
            .columns([
                C::Id,
                C::ItemType,
                C::ConfigClass,
                C::Namespace,
                C::Health,
                C::RolledUpHealth,
                C::Tags,
                C::Labels,
                C::Currency,
                C::CostTotal30d,
            ])
            .filter(self.item_condition(filter).await?)
            .build(self.backend());
        let sql = if self.backend() == DbBackend::Sqlite {
            number_placeholders(&statement.sql)
        } else {
            statement.sql
        };
        Ok(Filtered {
            sql,
            values: statement.values.map(|v| v.0).unwrap_or_default(),
        })
    }

    /// Runs an aggregate over many rows. On PostgreSQL it may use parallel
    /// workers and is planned for its own parameters (the pool's
    /// connections run without workers, on generic plans, see
    /// [`Store::connect`]): inside a read-only transaction, so the settings
    /// end with it.
    pub(crate) async fn analytic_rows(
        &self,
        sql: String,
        values: Vec<Value>,
    ) -> Result<Vec<sea_orm::QueryResult>> {
        let statement = Statement::from_sql_and_values(self.backend(), sql, values);
        if self.backend() != DbBackend::Postgres {
            return Ok(self.reads().query_all_raw(statement).await?);
        }
        use sea_orm::{AccessMode, TransactionTrait};
        let txn = self
            .reads()
            .begin_with_config(None, Some(AccessMode::ReadOnly))
            .await?;
        txn.execute_unprepared(&format!(
            "SET LOCAL max_parallel_workers_per_gather = {ANALYTIC_PARALLEL_WORKERS}; \
             SET LOCAL plan_cache_mode = auto"
        ))
        .await?;
        let rows = txn.query_all_raw(statement).await?;
        txn.commit().await?;
        Ok(rows)
    }

    /// Counts the values of one facet over the items `filter` selects,
    /// most frequent first (at most 1,000 values).
    pub async fn facet(&self, filter: &ItemFilter, facet: &Facet) -> Result<Vec<ValueCount>> {
        let backend = self.backend();
        let Filtered {
            sql: inner,
            mut values,
        } = self.filtered(filter).await?;
        let pg = backend == DbBackend::Postgres;
        let (value_expr, from) = match facet {
            Facet::Types => ("ci.type".to_string(), format!("({inner}) ci")),
            Facet::Classes => ("ci.config_class".to_string(), format!("({inner}) ci")),
            Facet::TagKeys | Facet::LabelKeys => {
                let column = if *facet == Facet::TagKeys {
                    "tags"
                } else {
                    "labels"
                };
                if pg {
                    (
                        "k".to_string(),
                        format!("({inner}) ci, jsonb_object_keys(ci.{column}) k"),
                    )
                } else {
                    (
                        "j.key".to_string(),
                        format!("({inner}) ci, json_each(ci.{column}) j"),
                    )
                }
            }
            Facet::TagValues(k) | Facet::LabelValues(k) => {
                let column = if matches!(facet, Facet::TagValues(_)) {
                    "ci.tags"
                } else {
                    "ci.labels"
                };
                (
                    json_key(backend, column, k, &mut values),
                    format!("({inner}) ci"),
                )
            }
            Facet::ChangeTypes => (
                "c.change_type".to_string(),
                format!("({inner}) ci JOIN config_changes c ON c.config_id = ci.id"),
            ),
            Facet::Analyzers => {
                let open = push_value(backend, &mut values, Value::from("open"));
                (
                    "i.analyzer".to_string(),
                    format!(
                        "({inner}) ci JOIN insights i ON i.config_id = ci.id AND i.status = {open}"
                    ),
                )
            }
        };
        let sql = format!(
            "SELECT {value_expr} AS value, COUNT(*) AS n FROM {from} WHERE {value_expr} IS NOT NULL \
             GROUP BY {value_expr} ORDER BY n DESC, value LIMIT 1000"
        );
        let mut out = Vec::new();
        for row in self.analytic_rows(sql, values).await? {
            out.push(ValueCount {
                value: row.try_get("", "value")?,
                count: row.try_get("", "n")?,
            });
        }
        Ok(out)
    }

    /// Groups the items `filter` selects by up to three keys and counts,
    /// per group, items by health and rolled-up health, changes since
    /// `changes_since`, open insights by severity and 30-day cost by
    /// currency. Groups come sorted by their key values.
    pub async fn catalog_summary(
        &self,
        filter: &ItemFilter,
        group_by: &[GroupKey],
        changes_since: DateTime<Utc>,
    ) -> Result<Vec<SummaryGroup>> {
        if group_by.is_empty() || group_by.len() > 3 {
            return Err(DomainError::invalid(
                "groupBy",
                format!("takes 1 to 3 keys, got {}", group_by.len()),
            ));
        }
        let backend = self.backend();
        let mut groups: BTreeMap<Vec<String>, SummaryGroup> = BTreeMap::new();
        let names: Vec<String> = group_by.iter().map(GroupKey::name).collect();
        let group = |groups: &mut BTreeMap<Vec<String>, SummaryGroup>, key: Vec<String>| {
            let names = names.clone();
            groups
                .entry(key.clone())
                .or_insert_with(|| SummaryGroup {
                    key: names.into_iter().zip(key).collect(),
                    ..SummaryGroup::default()
                })
                .clone()
        };

        // One statement per aggregate, each over the same filtered rows,
        // compiled once (a search's relationship walks run once).
        let filtered = self.filtered(filter).await?;
        for aggregate in ["items", "changes", "insights", "cost"] {
            let inner = &filtered.sql;
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
            let grouped = exprs.join(", ");
            let sql = match aggregate {
                "items" => {
                    let tally = |column: &str| {
                        Health::ALL
                            .iter()
                            .map(|h| {
                                format!(
                                    "CAST(SUM(CASE WHEN ci.{column} = '{0}' THEN 1 ELSE 0 END) AS BIGINT) AS {column}_{0}",
                                    h.as_str()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    format!(
                        "SELECT {}, COUNT(*) AS n, {}, {} FROM ({inner}) ci GROUP BY {grouped}",
                        selected.join(", "),
                        tally("health"),
                        tally("rolled_up_health"),
                    )
                }
                "changes" => {
                    let since = push_value(backend, &mut values, Value::from(changes_since));
                    format!(
                        "SELECT {}, COUNT(*) AS n FROM ({inner}) ci JOIN config_changes c ON c.config_id = ci.id \
                         WHERE c.created_at >= {since} GROUP BY {grouped}",
                        selected.join(", ")
                    )
                }
                "insights" => {
                    let open = push_value(backend, &mut values, Value::from("open"));
                    format!(
                        "SELECT {}, i.severity AS severity, COUNT(*) AS n FROM ({inner}) ci \
                         JOIN insights i ON i.config_id = ci.id AND i.status = {open} GROUP BY {grouped}, i.severity",
                        selected.join(", ")
                    )
                }
                _ => format!(
                    "SELECT {}, ci.currency AS currency, CAST(SUM(ci.cost_total_30d) AS BIGINT) AS n FROM ({inner}) ci \
                     WHERE ci.currency IS NOT NULL AND ci.cost_total_30d IS NOT NULL GROUP BY {grouped}, ci.currency",
                    selected.join(", ")
                ),
            };
            for row in self.analytic_rows(sql, values).await? {
                let mut key = Vec::with_capacity(group_by.len());
                for i in 0..group_by.len() {
                    let value: Option<String> = row.try_get("", &format!("g{i}"))?;
                    key.push(value.unwrap_or_default());
                }
                let mut g = group(&mut groups, key.clone());
                let n: i64 = row.try_get("", "n")?;
                match aggregate {
                    "items" => {
                        g.count = n;
                        for (column, tally) in [
                            ("health", &mut g.health),
                            ("rolled_up_health", &mut g.rolled_up_health),
                        ] {
                            for h in Health::ALL {
                                let c: i64 =
                                    row.try_get("", &format!("{column}_{}", h.as_str()))?;
                                match h {
                                    Health::Healthy => tally.healthy = c,
                                    Health::Warning => tally.warning = c,
                                    Health::Unhealthy => tally.unhealthy = c,
                                    Health::Unknown => tally.unknown = c,
                                }
                            }
                        }
                    }
                    "changes" => g.changes = n,
                    "insights" => {
                        let severity: String = row.try_get("", "severity")?;
                        match severity.as_str() {
                            "critical" => g.insights.critical += n,
                            "high" => g.insights.high += n,
                            "medium" => g.insights.medium += n,
                            "low" => g.insights.low += n,
                            _ => g.insights.info += n,
                        }
                    }
                    _ => {
                        let currency: String = row.try_get("", "currency")?;
                        g.cost_30d.insert(currency, n);
                    }
                }
                groups.insert(key, g);
            }
        }
        Ok(groups.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_placeholders_are_numbered_outside_literals() {
        assert_eq!(
            number_placeholders("a = ? AND b = '?' AND c IN (?, ?3)"),
            "a = ?1 AND b = '?' AND c IN (?2, ?3)"
        );
    }

    #[test]
    fn group_keys_parse() {
        assert_eq!(GroupKey::parse("type").ok(), Some(GroupKey::Type));
        assert_eq!(
            GroupKey::parse("tag:team").ok(),
            Some(GroupKey::Tag("team".into()))
        );
        assert!(GroupKey::parse("tag:").is_err());
        assert!(GroupKey::parse("colour").is_err());
        assert_eq!(GroupKey::Label("app".into()).name(), "label:app");
    }
}
