//! Finding live items by what a relationship rule knows of them (SPEC §4
//! `transform.relationship`): an id, an external id, a type, a name, a
//! namespace and labels, optionally within one scraper.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::{Store, stmt};
use crate::error::Result;

/// What a relationship rule looks for; every given part must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemSelector {
    /// An item id.
    pub id: Option<Uuid>,
    /// One of its external ids (lower-cased on ingest).
    pub external_id: Option<String>,
    /// Its type.
    pub item_type: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Labels it carries (all of them).
    pub labels: BTreeMap<String, String>,
}

impl ItemSelector {
    /// Whether the selector names anything to look up by (labels alone
    /// would scan the catalog).
    pub fn is_indexed(&self) -> bool {
        self.id.is_some()
            || self.external_id.is_some()
            || self.item_type.is_some()
            || self.name.is_some()
    }
}

/// The most items one selector may match.
pub const MAX_MATCHES: usize = 1000;

impl Store {
    /// Live items matching `selector` (of `scraper_id` only, when given),
    /// at most [`MAX_MATCHES`], oldest first.
    pub async fn find_items(
        &self,
        selector: &ItemSelector,
        scraper_id: Option<Uuid>,
    ) -> Result<Vec<Uuid>> {
        if !selector.is_indexed() {
            return Ok(Vec::new());
        }
        let mut sql = String::from("SELECT i.id, i.labels FROM config_items i");
        let mut values: Vec<Value> = Vec::new();
        let mut clauses: Vec<&str> = vec!["i.deleted_at IS NULL"];
        if let Some(external) = &selector.external_id {
            sql.push_str(" JOIN config_external_ids e ON e.config_id = i.id");
            clauses.push("e.external_id = ?");
            values.push(external.to_lowercase().into());
        }
        let mut push = |clause: &'static str, value: Value| {
            clauses.push(clause);
            values.push(value);
        };
        if let Some(id) = selector.id {
            push("i.id = ?", id.into());
        }
        if let Some(t) = &selector.item_type {
            push("i.type = ?", t.clone().into());
        }
        if let Some(n) = &selector.name {
            push("i.name = ?", n.clone().into());
        }
        if let Some(ns) = &selector.namespace {
            push("i.namespace = ?", ns.clone().into());
        }
        if let Some(s) = scraper_id {
            push("i.scraper_id = ?", s.into());
        }
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
        sql.push_str(&format!(
            " ORDER BY i.created_at, i.id LIMIT {}",
            MAX_MATCHES * 4
        ));
        let rows = self
            .db
            .query_all_raw(stmt(self.backend(), &sql, values))
            .await?;
        let mut out = Vec::new();
        for row in rows {
            if !selector.labels.is_empty() {
                let labels: serde_json::Value = row.try_get("", "labels")?;
                if !selector.labels.iter().all(|(k, v)| {
                    labels.get(k).and_then(serde_json::Value::as_str) == Some(v.as_str())
                }) {
                    continue;
                }
            }
            out.push(row.try_get("", "id")?);
            if out.len() >= MAX_MATCHES {
                break;
            }
        }
        Ok(out)
    }
}
