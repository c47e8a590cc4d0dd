//! Scoped reads (SPEC §12): a [`Store`] handle made by [`Store::scoped`]
//! applies its [`Scope`] in SQL to every read: items, their changes,
//! insights, costs and relationships, components, scrapers and runs. What
//! it hides does not exist for its caller: lookups miss, lists and counts
//! leave it out, walks stop at it.
//!
//! Derived rows follow their items: a change, insight, cost record or
//! relationship is visible when its item (both items, for a relationship)
//! is. A component is visible when at least one live item is attached to it
//! and every live item attached to it is visible. A scraper (and its runs)
//! is visible when it owns a visible item.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{DbBackend, Value};
use uuid::Uuid;

use super::Store;
use crate::entities::{component, config_item, scraper};
use crate::error::Result;
use crate::scope::{Glob, Scope};

/// SQL text with `?` placeholders and its values, in order.
#[derive(Debug, Clone)]
pub(crate) struct ScopeSql {
    pub(crate) text: String,
    pub(crate) values: Vec<Value>,
}

/// ` AND <condition>` to append to a statement whose values are `values`
/// (the condition's own are appended to them); nothing when unscoped.
pub(crate) fn and_clause(sql: Option<&ScopeSql>, values: &mut Vec<Value>) -> String {
    match sql {
        Some(s) => {
            values.extend(s.values.iter().cloned());
            format!(" AND {}", s.text)
        }
        None => String::new(),
    }
}

/// `column` matching `glob` (case-sensitive on both backends); its value
/// is appended to `values`.
pub(crate) fn glob_sql(
    backend: DbBackend,
    column: &str,
    glob: &str,
    values: &mut Vec<Value>,
) -> String {
    match Glob::of(glob) {
        Glob::Exact(v) => {
            values.push(v.to_string().into());
            format!("{column} = ?")
        }
        glob @ Glob::Pattern(raw) => {
            if backend == DbBackend::Postgres {
                values.push(glob.like_pattern().into());
                format!("{column} LIKE ? ESCAPE '\\'")
            } else {
                // GLOB is case-sensitive and takes `*` and `?` as they
                // are (LIKE ignores ASCII case on SQLite).
                values.push(raw.to_string().into());
                format!("{column} GLOB ?")
            }
        }
    }
}

/// `column` matching any of `globs`.
fn globs_sql(
    backend: DbBackend,
    column: &str,
    globs: &[String],
    values: &mut Vec<Value>,
) -> String {
    let parts: Vec<String> = globs
        .iter()
        .map(|g| glob_sql(backend, column, g, values))
        .collect();
    format!("({})", parts.join(" OR "))
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The condition that `scope` allows a row of `config_items` (columns
/// prefixed by `prefix`, e.g. `ci.`), null-safe.
pub(crate) fn scope_sql(backend: DbBackend, scope: &Scope, prefix: &str) -> ScopeSql {
    let mut values = Vec::new();
    let mut parts = Vec::new();
    if let Some(namespaces) = &scope.namespaces {
        let column = format!("{prefix}namespace");
        parts.push(format!(
            "{column} IS NOT NULL AND {}",
            globs_sql(backend, &column, namespaces, &mut values)
        ));
    }
    if let Some(types) = &scope.types {
        parts.push(globs_sql(
            backend,
            &format!("{prefix}type"),
            types,
            &mut values,
        ));
    }
    if let Some(tags) = &scope.tags {
        for (key, allowed) in tags {
            let lookup = if backend == DbBackend::Postgres {
                values.push(key.clone().into());
                format!("({prefix}tags ->> ?)")
            } else {
                values.push(
                    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\"")).into(),
                );
                format!("json_extract({prefix}tags, ?)")
            };
            values.extend(allowed.iter().map(|v| Value::from(v.clone())));
            parts.push(format!("{lookup} IN ({})", marks(allowed.len())));
        }
    }
    if let Some(scrapers) = &scope.scrapers {
        values.extend(scrapers.iter().map(|v| Value::from(v.clone())));
        parts.push(format!(
            "{prefix}scraper_id IN (SELECT id FROM scrapers WHERE name IN ({}))",
            marks(scrapers.len())
        ));
    }
    if parts.is_empty() {
        parts.push("TRUE".into());
    }
    ScopeSql {
        text: format!("COALESCE(({}), FALSE)", parts.join(") AND (")),
        values,
    }
}

impl Store {
    /// This handle restricted to what `scope` allows (SPEC §12). Clones
    /// share the pools and the event bus.
    pub fn scoped(&self, scope: impl Into<Arc<Scope>>) -> Store {
        let mut store = self.clone();
        store.scope = Some(scope.into());
        store
    }

    /// The scope reads are restricted to, if any.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_deref()
    }

    /// The scope condition on `config_items` columns prefixed by `prefix`.
    pub(crate) fn scope_sql(&self, prefix: &str) -> Option<ScopeSql> {
        self.scope
            .as_deref()
            .map(|scope| scope_sql(self.backend(), scope, prefix))
    }

    /// The scope as a filter on a `config_items` select.
    pub(crate) fn item_scope(&self) -> Option<Expr> {
        self.scope_sql("")
            .map(|s| super::cust(self.backend(), &s.text, s.values))
    }

    /// `column IN (visible item ids)`, as raw SQL to splice into a
    /// statement: the rule for rows that belong to an item.
    pub(crate) fn visible_items_sql(&self, column: &str) -> Option<ScopeSql> {
        self.scope_sql("").map(|s| ScopeSql {
            text: format!("{column} IN (SELECT id FROM config_items WHERE {})", s.text),
            values: s.values,
        })
    }

    /// [`Store::visible_items_sql`] as a filter.
    pub(crate) fn visible_items(&self, column: &str) -> Option<Expr> {
        self.visible_items_sql(column)
            .map(|s| super::cust(self.backend(), &s.text, s.values))
    }

    /// The rule for `components` rows (unaliased): at least one live
    /// attached item, all of them visible.
    pub(crate) fn visible_components(&self) -> Option<Expr> {
        let inside = self.scope_sql("ci.")?;
        let links = "FROM config_component_relationships l JOIN config_items ci ON ci.id = l.config_id \
                     WHERE l.component_id = components.id AND l.deleted_at IS NULL AND ci.deleted_at IS NULL";
        let text = format!(
            "EXISTS (SELECT 1 {links} AND {0}) AND NOT EXISTS (SELECT 1 {links} AND NOT {0})",
            inside.text
        );
        let mut values = inside.values.clone();
        values.extend(inside.values);
        Some(super::cust(self.backend(), &text, values))
    }

    /// The rule for rows of a scraper, whose id is `scraper_column`
    /// (`scrapers.id`, `scrape_runs.scraper_id`): the scraper owns a
    /// visible item.
    pub(crate) fn visible_scraper(&self, scraper_column: &str) -> Option<Expr> {
        let inside = self.scope_sql("ci.")?;
        Some(super::cust(
            self.backend(),
            &format!(
                "EXISTS (SELECT 1 FROM config_items ci WHERE ci.scraper_id = {scraper_column} AND {})",
                inside.text
            ),
            inside.values,
        ))
    }

    /// Adds the scope condition on items to `cond`.
    pub(crate) fn with_item_scope(&self, cond: Condition) -> Condition {
        match self.item_scope() {
            Some(scope) => cond.add(scope),
            None => cond,
        }
    }

    /// Adds the component rule ([`Store::visible_components`]) to `cond`.
    pub(crate) fn with_visible_components(&self, cond: Condition) -> Condition {
        match self.visible_components() {
            Some(visible) => cond.add(visible),
            None => cond,
        }
    }

    /// Adds `column IN (visible item ids)` to `cond`.
    pub(crate) fn with_visible_items(&self, column: &str, cond: Condition) -> Condition {
        match self.visible_items(column) {
            Some(visible) => cond.add(visible),
            None => cond,
        }
    }

    /// The ids among `ids` that name visible items (all of them when
    /// unscoped): one statement per 1,000 ids.
    pub(crate) async fn visible_ids(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
        use sea_orm::{EntityTrait, QueryFilter, QuerySelect};
        if self.scope.is_none() {
            return Ok(ids.iter().copied().collect());
        }
        let mut out = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let mut select = config_item::Entity::find()
                .select_only()
                .column(config_item::Column::Id)
                .filter(super::id_in(self.backend(), "id", chunk));
            if let Some(scope) = self.item_scope() {
                select = select.filter(scope);
            }
            let found: Vec<Uuid> = select.into_tuple().all(self.reads()).await?;
            out.extend(found);
        }
        Ok(out)
    }

    /// The in-memory form of the scope for events about items (`None`
    /// when unscoped). Scraper names are resolved once, here.
    pub(crate) async fn item_gate(&self) -> Result<Option<ItemGate>> {
        use sea_orm::{EntityTrait, QuerySelect};
        let Some(scope) = self.scope.clone() else {
            return Ok(None);
        };
        let scrapers = if scope.scrapers.is_some() {
            let rows: Vec<(Uuid, String)> = scraper::Entity::find()
                .select_only()
                .column(scraper::Column::Id)
                .column(scraper::Column::Name)
                .into_tuple()
                .all(self.reads())
                .await?;
            rows.into_iter().collect()
        } else {
            HashMap::new()
        };
        Ok(Some(ItemGate { scope, scrapers }))
    }

    /// The components visible now (`None` when unscoped): what a scoped
    /// component subscription delivers.
    pub(crate) async fn visible_component_ids(&self) -> Result<Option<HashSet<Uuid>>> {
        use sea_orm::{EntityTrait, QueryFilter, QuerySelect};
        let Some(visible) = self.visible_components() else {
            return Ok(None);
        };
        let ids: Vec<Uuid> = component::Entity::find()
            .select_only()
            .column(component::Column::Id)
            .filter(visible)
            .into_tuple()
            .all(self.reads())
            .await?;
        Ok(Some(ids.into_iter().collect()))
    }
}

/// A scope checked in memory against item snapshots (subscription delivery).
pub(crate) struct ItemGate {
    scope: Arc<Scope>,
    scrapers: HashMap<Uuid, String>,
}

impl ItemGate {
    /// Whether the scope allows `item`.
    pub(crate) fn allows(&self, item: &config_item::Model) -> bool {
        self.scope.allows(
            item,
            self.scrapers.get(&item.scraper_id).map(String::as_str),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_dimension_is_one_anded_null_safe_term() {
        let scope = Scope::parse(&json!({
            "namespaces": ["payments", "team-*"],
            "types": ["Kubernetes::*"],
            "tags": {"env": ["prod"]},
            "scrapers": ["k8s"]
        }))
        .expect("scope");
        let sql = scope_sql(DbBackend::Sqlite, &scope, "ci.");
        assert_eq!(
            sql.text,
            "COALESCE((ci.namespace IS NOT NULL AND (ci.namespace = ? OR ci.namespace GLOB ?)) AND \
             ((ci.type GLOB ?)) AND (json_extract(ci.tags, ?) IN (?)) AND \
             (ci.scraper_id IN (SELECT id FROM scrapers WHERE name IN (?))), FALSE)"
        );
        assert_eq!(sql.values.len(), 6);
        let pg = scope_sql(DbBackend::Postgres, &scope, "");
        assert!(pg.text.contains("namespace LIKE ? ESCAPE '\\'"));
        assert!(pg.text.contains("(tags ->> ?) IN (?)"));
        assert_eq!(pg.values[2], Value::from("Kubernetes::%".to_string()));
    }
}
