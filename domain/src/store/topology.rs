//! Topologies (SPEC §9): writing a component tree, attaching config items
//! and adopting components through selectors, and the component health
//! rollup.
//!
//! Health of a component:
//! - `health` is `healthExpr(summary)` when set, otherwise the worst
//!   rolled-up health of its attached items (unknown with none);
//! - `rolled_up_health` is the worst of `health` and its children's (own
//!   tree and adopted) rolled-up health, or `health` itself when a
//!   `healthExpr` decides (the expression sees the children's counts);
//! - `summary` counts attached items and children by rolled-up health, plus
//!   the attached items' open insights by severity.
//!
//! A change of an attached item's rolled-up health recomputes its
//! components and every component above them inside the ingest
//! transaction ([`recompute_for_items`]); each component whose rolled-up
//! health moved gets one `component_health_history` row (its `seq` is the
//! `component.health` event cursor).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::rollup::slot;
use super::{ItemFilter, Store, stmt};
use crate::error::{DomainError, Result};
use crate::ids::NAMESPACE;
use crate::model::Health;
use crate::search::{SearchExpr, SearchField, SearchOp, SearchValue, Term};

/// Which config items a component attaches: every given field must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigSelector {
    /// A search-language query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Exact config types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Exact namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Tag values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Label values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ConfigSelector {
    /// The item filter this selector stands for; a search that does not
    /// parse is an error.
    pub fn filter(&self) -> Result<ItemFilter> {
        let mut terms: Vec<SearchExpr> = Vec::new();
        if let Some(query) = &self.search {
            match crate::search::parse(query) {
                Ok(Some(expr)) => terms.push(expr),
                Ok(None) => {}
                Err(e) => return Err(DomainError::invalid("search", e.to_string())),
            }
        }
        let term = |field: SearchField, value: &str| {
            SearchExpr::Term(Term {
                field,
                op: SearchOp::Eq,
                value: SearchValue::Text(vec![value.to_string()]),
                column: 1,
            })
        };
        terms.extend(
            self.tags
                .iter()
                .map(|(k, v)| term(SearchField::Tag(k.clone()), v)),
        );
        terms.extend(
            self.labels
                .iter()
                .map(|(k, v)| term(SearchField::Label(k.clone()), v)),
        );
        Ok(ItemFilter {
            types: self.types.clone(),
            namespaces: self.namespaces.clone(),
            search: match terms.len() {
                0 => None,
                1 => terms.pop(),
                _ => Some(SearchExpr::And(terms)),
            },
            ..ItemFilter::default()
        })
    }

    /// Whether the selector restricts nothing (it would attach every item).
    pub fn is_empty(&self) -> bool {
        self.search.as_deref().is_none_or(|s| s.trim().is_empty())
            && self.types.is_empty()
            && self.namespaces.is_empty()
            && self.tags.is_empty()
            && self.labels.is_empty()
    }
}

/// Which components a component adopts as children: every given field
/// must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSelector {
    /// Component types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Component names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Component labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ComponentSelector {
    /// Whether a component of `component_type`, `name` and `labels` matches.
    pub fn matches(
        &self,
        component_type: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == component_type))
            && (self.names.is_empty() || self.names.iter().any(|n| n == name))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Whether the selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.names.is_empty() && self.labels.is_empty()
    }
}

/// One component of a topology, with its children.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    /// Display name, unique among its siblings.
    pub name: String,
    /// Component type (`Service`, `Database`, …).
    #[serde(rename = "type")]
    pub component_type: String,
    /// Labels other components' selectors match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Items it attaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigSelector>,
    /// Components it adopts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<ComponentSelector>,
    /// CEL over `summary` and `component`: its health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_expr: Option<String>,
    /// CEL over `summary` and `component`: its status text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_expr: Option<String>,
    /// Children.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentSpec>,
}

/// A topology ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyPlan {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Top-level components.
    pub components: Vec<ComponentSpec>,
}

impl TopologyPlan {
    /// The topology's id.
    pub fn id(&self) -> Uuid {
        topology_id(&self.namespace, &self.name)
    }
}

/// The id of a topology: UUIDv5(`topology|namespace|name`).
pub fn topology_id(namespace: &str, name: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("topology|{namespace}|{name}").as_bytes(),
    )
}

/// The id of a component: UUIDv5(`component|topology|parent|type|name`),
/// stable across evaluations.
pub fn component_id(
    topology: Uuid,
    parent: Option<Uuid>,
    component_type: &str,
    name: &str,
) -> Uuid {
    let parent = parent.map(|p| p.to_string()).unwrap_or_default();
    Uuid::new_v5(
        &NAMESPACE,
        format!("component|{topology}|{parent}|{component_type}|{name}").as_bytes(),
    )
}

/// A component of a plan with its place in the tree.
#[derive(Debug, Clone)]
pub struct FlatComponent {
    /// Its id.
    pub id: Uuid,
    /// Its parent in the tree.
    pub parent: Option<Uuid>,
    /// Ancestor ids joined with `.`.
    pub path: String,
    /// The spec (children left in place; ignore them).
    pub spec: ComponentSpec,
}

/// The plan's components, parents before children.
pub fn flatten(plan: &TopologyPlan) -> Vec<FlatComponent> {
    fn walk(
        topology: Uuid,
        parent: Option<(Uuid, String)>,
        specs: &[ComponentSpec],
        out: &mut Vec<FlatComponent>,
    ) {
        for spec in specs {
            let parent_id = parent.as_ref().map(|(p, _)| *p);
            let id = component_id(topology, parent_id, &spec.component_type, &spec.name);
            let path = match &parent {
                None => String::new(),
                Some((p, pp)) if pp.is_empty() => p.to_string(),
                Some((p, pp)) => format!("{pp}.{p}"),
            };
            out.push(FlatComponent {
                id,
                parent: parent_id,
                path: path.clone(),
                spec: spec.clone(),
            });
            walk(topology, Some((id, path)), &spec.components, out);
        }
    }
    let mut out = Vec::new();
    walk(plan.id(), None, &plan.components, &mut out);
    out
}

/// A component as adoption sees it.
#[derive(Debug, Clone)]
pub struct AdoptionCandidate {
    /// Its id.
    pub id: Uuid,
    /// Its tree parent.
    pub parent: Option<Uuid>,
    /// Its type.
    pub component_type: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its adoption selectors.
    pub selectors: Vec<ComponentSelector>,
}

/// `(parent, child, index of the parent's selector that matched)`.
pub type AdoptionEdge = (Uuid, Uuid, usize);

/// The adoption edges `(parent, child, selector index)` among `candidates`
/// (a component never adopts itself), and the first cycle through tree and
/// adoption edges, if any, as component names.
pub fn adoption_edges(
    candidates: &[AdoptionCandidate],
) -> (Vec<AdoptionEdge>, Option<Vec<String>>) {
    let mut edges = Vec::new();
    for parent in candidates {
        for (i, selector) in parent.selectors.iter().enumerate() {
            if selector.is_empty() {
                continue;
            }
            for child in candidates {
                if child.id != parent.id
                    && selector.matches(&child.component_type, &child.name, &child.labels)
                {
                    edges.push((parent.id, child.id, i));
                }
            }
        }
    }
    // Cycle search over tree and adoption edges (iterative DFS).
    let mut next: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for c in candidates {
        if let Some(p) = c.parent {
            next.entry(p).or_default().push(c.id);
        }
    }
    for (p, c, _) in &edges {
        next.entry(*p).or_default().push(*c);
    }
    let names: HashMap<Uuid, &str> = candidates.iter().map(|c| (c.id, c.name.as_str())).collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    let mut marks: HashMap<Uuid, Mark> = HashMap::new();
    for start in candidates.iter().map(|c| c.id) {
        if marks.contains_key(&start) {
            continue;
        }
        let mut stack: Vec<(Uuid, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Active);
        while let Some((node, i)) = stack.last().copied() {
            let children = next.get(&node).map(Vec::as_slice).unwrap_or_default();
            if i < children.len() {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let child = children[i];
                match marks.get(&child) {
                    Some(Mark::Active) => {
                        let from = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..]
                            .iter()
                            .map(|(n, _)| names.get(n).copied().unwrap_or("?").to_string())
                            .collect();
                        cycle.push(names.get(&child).copied().unwrap_or("?").to_string());
                        return (edges, Some(cycle));
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(child, Mark::Active);
                        stack.push((child, 0));
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    (edges, None)
}

/// What [`Store::apply_topology`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologyOutcome {
    /// Live components of the topology.
    pub components: i64,
    /// Live item attachments.
    pub attached: i64,
    /// Live adoptions by its components.
    pub adopted: i64,
    /// Components removed (no longer produced).
    pub removed: i64,
    /// Components whose rolled-up health moved.
    pub health_changes: i64,
}

/// A component's stored definition (the `selectors` column).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredDefinition {
    #[serde(default)]
    configs: Vec<ConfigSelector>,
    #[serde(default)]
    selectors: Vec<ComponentSelector>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    health_expr: Option<String>,
    #[serde(default)]
    status_expr: Option<String>,
}

impl Store {
    /// Writes a topology: its components (upserted by stable id, the ones
    /// no longer produced soft-deleted), the items their config selectors
    /// attach, the components their selectors adopt (across topologies; a
    /// link that would close a cycle is skipped), and every affected
    /// component's health. When a selector fails, nothing is removed.
    pub async fn apply_topology(&self, plan: &TopologyPlan) -> Result<TopologyOutcome> {
        let topology = plan.id();
        let flat = flatten(plan);
        let now = super::now();
        let backend = self.backend();

        // Items each component's config selectors attach.
        let mut attach: Vec<(Uuid, Uuid, String)> = Vec::new();
        let mut failed = false;
        for c in &flat {
            for (i, selector) in c.spec.configs.iter().enumerate() {
                if selector.is_empty() {
                    continue;
                }
                let filter = match selector.filter() {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(component = %c.spec.name, error = %e, "topology selector failed");
                        failed = true;
                        continue;
                    }
                };
                for id in self.matching_item_ids(&filter).await? {
                    attach.push((c.id, id, format!("configs[{i}]")));
                }
            }
        }

        let (_guard, txn) = self.write_txn().await?;
        super::rollup::lock(&txn).await?;
        // Components.
        let live_ids: HashSet<Uuid> = flat.iter().map(|c| c.id).collect();
        for c in &flat {
            let definition = StoredDefinition {
                configs: c.spec.configs.clone(),
                selectors: c.spec.selectors.clone(),
                labels: c.spec.labels.clone(),
                health_expr: c.spec.health_expr.clone(),
                status_expr: c.spec.status_expr.clone(),
            };
            txn.execute_raw(stmt(
                backend,
                "INSERT INTO components (id, topology_id, parent_id, path, name, type, health, status, properties, selectors, \
                 rolled_up_health, summary, created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, NULL) \
                 ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id, path = excluded.path, name = excluded.name, \
                 type = excluded.type, selectors = excluded.selectors, updated_at = excluded.updated_at, deleted_at = NULL",
                vec![
                    c.id.into(),
                    topology.into(),
                    c.parent.into(),
                    c.path.clone().into(),
                    c.spec.name.clone().into(),
                    c.spec.component_type.clone().into(),
                    Health::Unknown.as_str().into(),
                    json!([]).into(),
                    serde_json::to_value(&definition).unwrap_or_default().into(),
                    Health::Unknown.as_str().into(),
                    json!({}).into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await?;
        }
        let existing = txn
            .query_all_raw(stmt(
                backend,
                "SELECT id FROM components WHERE topology_id = ? AND deleted_at IS NULL",
                vec![topology.into()],
            ))
            .await?;
        let mut removed: Vec<Uuid> = Vec::new();
        for row in existing {
            let id: Uuid = row.try_get("", "id")?;
            if !live_ids.contains(&id) {
                removed.push(id);
            }
        }
        if !failed {
            for id in &removed {
                txn.execute_raw(stmt(
                    backend,
                    "UPDATE components SET deleted_at = ? WHERE id = ?",
                    vec![now.into(), (*id).into()],
                ))
                .await?;
                for sql in [
                    "UPDATE config_component_relationships SET deleted_at = ? WHERE component_id = ? AND deleted_at IS NULL",
                    "UPDATE component_relationships SET deleted_at = ? WHERE (component_id = ? OR parent_id = ?) AND deleted_at IS NULL",
                ] {
                    let mut values: Vec<Value> = vec![now.into(), (*id).into()];
                    if sql.contains("parent_id = ?") {
                        values.push((*id).into());
                    }
                    txn.execute_raw(stmt(backend, sql, values)).await?;
                }
            }
        }

        // Item attachments.
        let attached = sync_links(
            &txn,
            "config_component_relationships",
            "component_id",
            "config_id",
            &flat.iter().map(|c| c.id).collect::<Vec<_>>(),
            &attach,
            !failed,
            now,
        )
        .await?;

        // Adoption, across every live component.
        let rows = txn
            .query_all_raw(stmt(
                backend,
                "SELECT id, parent_id, type, name, selectors FROM components WHERE deleted_at IS NULL",
                vec![],
            ))
            .await?;
        let mut candidates = Vec::with_capacity(rows.len());
        for row in rows {
            let definition: serde_json::Value = row.try_get("", "selectors")?;
            let definition: StoredDefinition =
                serde_json::from_value(definition).unwrap_or_default();
            candidates.push(AdoptionCandidate {
                id: row.try_get("", "id")?,
                parent: row.try_get("", "parent_id")?,
                component_type: row.try_get("", "type")?,
                name: row.try_get("", "name")?,
                labels: definition.labels,
                selectors: definition.selectors,
            });
        }
        let (edges, cycle) = adoption_edges(&candidates);
        let mut adopt: Vec<(Uuid, Uuid, String)> = edges
            .into_iter()
            .filter(|(parent, _, _)| live_ids.contains(parent))
            .map(|(parent, child, i)| (parent, child, format!("selectors[{i}]")))
            .collect();
        if let Some(cycle) = cycle {
            // Another topology closed a loop with this one: adopt nothing
            // that is part of it.
            tracing::warn!(cycle = %cycle.join(" → "), "component adoption would form a cycle; skipped");
            adopt.clear();
        }
        let adopted = sync_links(
            &txn,
            "component_relationships",
            "parent_id",
            "component_id",
            &flat.iter().map(|c| c.id).collect::<Vec<_>>(),
            &adopt,
            !failed,
            now,
        )
        .await?;

        // Health of the topology's components, the ones they adopted and
        // everything above them.
        let mut seeds: Vec<Uuid> = flat.iter().map(|c| c.id).collect();
        seeds.extend(removed.iter().copied());
        let health_changes = recompute_components(&txn, seeds, Work::recount_all(), now).await?;
        txn.commit().await?;
        Ok(TopologyOutcome {
            components: flat.len() as i64,
            attached,
            adopted,
            removed: if failed { 0 } else { removed.len() as i64 },
            health_changes,
        })
    }

    /// Ids of the live items `filter` selects (no paging: topology
    /// selectors attach every match).
    async fn matching_item_ids(&self, filter: &ItemFilter) -> Result<Vec<Uuid>> {
        let filtered = self.filtered(filter).await?;
        let rows = self
            .analytic_rows(
                format!("SELECT ci.id AS id FROM ({}) ci", filtered.sql),
                filtered.values,
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get::<Uuid>("", "id").map_err(DomainError::from))
            .collect()
    }

    /// The component and every component under it (its tree and adopted
    /// components, transitively).
    pub async fn subtree_components(&self, id: Uuid) -> Result<Vec<Uuid>> {
        let backend = self.backend();
        let mut subtree: HashSet<Uuid> = HashSet::from([id]);
        let mut frontier = vec![id];
        while !frontier.is_empty() {
            let (list, values) = super::in_ids(backend, &frontier);
            let (list2, values2) = super::in_ids(backend, &frontier);
            let mut all = values;
            all.extend(values2);
            let rows = self
                .reads()
                .query_all_raw(stmt(
                    backend,
                    &format!(
                        "SELECT id AS c FROM components WHERE parent_id{list} AND deleted_at IS NULL \
                         UNION SELECT component_id AS c FROM component_relationships WHERE parent_id{list2} AND deleted_at IS NULL"
                    ),
                    all,
                ))
                .await?;
            frontier = Vec::new();
            for r in rows {
                let c: Uuid = r.try_get("", "c")?;
                if subtree.insert(c) {
                    frontier.push(c);
                }
            }
        }
        Ok(subtree.into_iter().collect())
    }

    /// Open insights by severity and changes since `since` of the distinct
    /// live items attached anywhere in the component's subtree.
    pub async fn component_activity(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<(crate::store::InsightCounts, i64)> {
        let backend = self.backend();
        let components = self.subtree_components(id).await?;
        let mut counts = crate::store::InsightCounts::default();
        let mut changes = 0;
        let scope = self.scope_sql("ci.");
        for chunk in components.chunks(1000) {
            let (list, mut values) = super::in_ids(backend, chunk);
            let visible = super::scope::and_clause(scope.as_ref(), &mut values);
            let items = format!(
                "SELECT l.config_id FROM config_component_relationships l JOIN config_items ci ON ci.id = l.config_id \
                 WHERE l.component_id{list} AND l.deleted_at IS NULL AND ci.deleted_at IS NULL{visible}"
            );
            let rows = self
                .reads()
                .query_all_raw(stmt(
                    backend,
                    &format!(
                        "SELECT severity, COUNT(*) AS n FROM insights WHERE status = 'open' AND config_id IN ({items}) GROUP BY severity"
                    ),
                    values.clone(),
                ))
                .await?;
            for r in rows {
                let n: i64 = r.try_get("", "n")?;
                match r.try_get::<String>("", "severity")?.as_str() {
                    "critical" => counts.critical += n,
                    "high" => counts.high += n,
                    "medium" => counts.medium += n,
                    "low" => counts.low += n,
                    _ => counts.info += n,
                }
            }
            values.push(since.into());
            if let Some(r) = self
                .reads()
                .query_one_raw(stmt(
                    backend,
                    &format!(
                        "SELECT COUNT(*) AS n FROM config_changes WHERE config_id IN ({items}) AND created_at >= ?"
                    ),
                    values,
                ))
                .await?
            {
                changes += r.try_get::<i64>("", "n")?;
            }
        }
        Ok((counts, changes))
    }

    /// Spend over `window` of the distinct live items attached anywhere in
    /// the component's subtree (its tree and adopted components,
    /// transitively), one entry per currency (SPEC §8).
    pub async fn component_cost(
        &self,
        id: Uuid,
        window: super::costs::CostWindow,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::costs::Money>> {
        let backend = self.backend();
        let components = self.subtree_components(id).await?;
        let from = now - window.length();
        let mut parts: Vec<(String, i64)> = Vec::new();
        let scope = self.scope_sql("ci.");
        for chunk in components.chunks(1000) {
            let (list, mut values) = super::in_ids(backend, chunk);
            let visible = super::scope::and_clause(scope.as_ref(), &mut values);
            values.push(from.into());
            values.push(now.into());
            let sql = format!(
                "SELECT r.currency, r.period_start, r.period_end, r.effective_cost FROM cost_records r \
                 WHERE r.config_id IN (SELECT l.config_id FROM config_component_relationships l \
                 JOIN config_items ci ON ci.id = l.config_id WHERE l.component_id{list} AND l.deleted_at IS NULL \
                 AND ci.deleted_at IS NULL{visible}) AND r.period_end > ? AND r.period_start < ?"
            );
            for r in self
                .reads()
                .query_all_raw(stmt(backend, &sql, values))
                .await?
            {
                parts.push(super::costs::prorated_part(&r, from, now)?);
            }
        }
        Ok(super::costs::by_currency(parts))
    }

    /// The live components of a topology at most `depth` levels deep (1:
    /// the top level), by depth and name.
    pub async fn topology_components(
        &self,
        topology: Uuid,
        depth: usize,
    ) -> Result<Vec<crate::entities::component::Model>> {
        use crate::entities::component;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let mut rows = component::Entity::find()
            .filter(self.with_visible_components(sea_orm::Condition::all()))
            .filter(component::Column::TopologyId.eq(topology))
            .filter(component::Column::DeletedAt.is_null())
            .order_by_asc(component::Column::Name)
            .order_by_asc(component::Column::Id)
            .all(self.reads())
            .await?;
        let level = |c: &component::Model| {
            if c.path.is_empty() {
                1
            } else {
                c.path.split('.').count() + 1
            }
        };
        rows.retain(|c| level(c) <= depth);
        rows.sort_by_key(level);
        Ok(rows)
    }

    /// A component's health transitions, oldest first: `(previous,
    /// current, seq)`.
    pub async fn component_health_history(
        &self,
        component: Uuid,
    ) -> Result<Vec<(String, String, i64)>> {
        let rows = self
            .reads()
            .query_all_raw(stmt(
                self.backend(),
                "SELECT previous, current, seq FROM component_health_history WHERE component_id = ? ORDER BY seq",
                vec![component.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("", "previous")?,
                    r.try_get("", "current")?,
                    r.try_get("", "seq")?,
                ))
            })
            .collect()
    }
}

/// Makes the live links `(owner, target, selector)` of `owners` in `table`
/// exactly `wanted`: missing ones inserted (or revived), others tombstoned
/// when `tombstone`. Returns the number of wanted links.
#[allow(clippy::too_many_arguments)]
async fn sync_links(
    txn: &DatabaseTransaction,
    table: &str,
    owner_column: &str,
    target_column: &str,
    owners: &[Uuid],
    wanted: &[(Uuid, Uuid, String)],
    tombstone: bool,
    now: DateTime<Utc>,
) -> Result<i64> {
    let backend = txn.get_database_backend();
    let mut live: HashSet<(Uuid, Uuid, String)> = HashSet::new();
    for chunk in owners.chunks(1000) {
        let (list, values) = super::in_ids(backend, chunk);
        let sql = format!(
            "SELECT {owner_column} AS o, {target_column} AS t, selector_id FROM {table} \
             WHERE {owner_column}{list} AND deleted_at IS NULL"
        );
        for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            live.insert((
                row.try_get("", "o")?,
                row.try_get("", "t")?,
                row.try_get("", "selector_id")?,
            ));
        }
    }
    let wanted_set: HashSet<(Uuid, Uuid, String)> = wanted.iter().cloned().collect();
    let missing: Vec<&(Uuid, Uuid, String)> =
        wanted_set.iter().filter(|w| !live.contains(*w)).collect();
    for chunk in missing.chunks(super::MAX_PARAMS / 5) {
        let sql = format!(
            "INSERT INTO {table} ({owner_column}, {target_column}, selector_id, created_at, deleted_at) VALUES {} \
             ON CONFLICT ({owner_column}, {target_column}, selector_id) DO UPDATE SET deleted_at = NULL",
            vec!["(?, ?, ?, ?, NULL)"; chunk.len()].join(", ")
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
        for (o, t, s) in chunk {
            values.extend([
                Value::from(*o),
                Value::from(*t),
                Value::from(s.clone()),
                Value::from(now),
            ]);
        }
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    if tombstone {
        for (o, t, s) in live.iter().filter(|l| !wanted_set.contains(*l)) {
            txn.execute_raw(stmt(
                backend,
                &format!(
                    "UPDATE {table} SET deleted_at = ? WHERE {owner_column} = ? AND {target_column} = ? AND selector_id = ?"
                ),
                vec![now.into(), (*o).into(), (*t).into(), s.clone().into()],
            ))
            .await?;
        }
    }
    Ok(wanted_set.len() as i64)
}

/// How an item's rolled-up health moved, as components see it: `None`
/// means absent (a new, revived or deleted item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ItemMove {
    /// The item.
    pub id: Uuid,
    /// Rolled-up health before, if it counted.
    pub previous: Option<Health>,
    /// Rolled-up health after, if it counts.
    pub current: Option<Health>,
}

/// Recomputes the components that attach any of the moved items and
/// everything above them, inside the ingest transaction. A move between
/// two healths adjusts the attached-item counts the component keeps in
/// its summary; an appearance or removal recounts that component. Returns
/// how many components' rolled-up health moved.
pub(crate) async fn recompute_for_items(
    txn: &super::WriteTxn,
    moves: &[ItemMove],
    now: DateTime<Utc>,
) -> Result<i64> {
    if moves.is_empty() {
        return Ok(0);
    }
    let backend = txn.get_database_backend();
    let by_id: HashMap<Uuid, ItemMove> = moves.iter().map(|m| (m.id, *m)).collect();
    let ids: Vec<Uuid> = by_id.keys().copied().collect();
    let mut work = Work::default();
    for chunk in ids.chunks(1000) {
        let (list, values) = super::in_ids(backend, chunk);
        let sql = format!(
            "SELECT DISTINCT component_id, config_id FROM config_component_relationships WHERE config_id{list} AND deleted_at IS NULL"
        );
        for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            let component: Uuid = row.try_get("", "component_id")?;
            let item: Uuid = row.try_get("", "config_id")?;
            let Some(m) = by_id.get(&item) else { continue };
            match (m.previous, m.current) {
                (Some(a), Some(b)) => {
                    let d = work.deltas.entry(component).or_default();
                    d[slot(a)] -= 1;
                    d[slot(b)] += 1;
                }
                _ => {
                    work.recount.insert(component);
                }
            }
        }
    }
    if work.deltas.is_empty() && work.recount.is_empty() {
        return Ok(0);
    }
    let seeds: Vec<Uuid> = work
        .deltas
        .keys()
        .chain(work.recount.iter())
        .copied()
        .collect();
    recompute_components(txn, seeds, work, now).await
}

/// The component view of the item rollup's transitions.
pub(crate) fn moves(transitions: &[super::rollup::RollupTransition]) -> Vec<ItemMove> {
    transitions
        .iter()
        .map(|t| ItemMove {
            id: t.id,
            previous: Some(t.previous),
            current: Some(t.current),
        })
        .collect()
}

/// What a recompute knows beyond its seeds: attached-item count deltas per
/// component, and the components whose attached items must be recounted.
#[derive(Debug, Default)]
pub(crate) struct Work {
    deltas: HashMap<Uuid, [i64; 4]>,
    recount: HashSet<Uuid>,
    all: bool,
}

impl Work {
    /// Recount every affected component's attached items.
    pub(crate) fn recount_all() -> Work {
        Work {
            all: true,
            ..Work::default()
        }
    }
}

struct ComponentRow {
    id: Uuid,
    name: String,
    component_type: String,
    path: String,
    health: Health,
    rolled_up: Health,
    status: Option<String>,
    summary: serde_json::Value,
    deleted: bool,
    definition: StoredDefinition,
}

fn parse_health(s: &str) -> Health {
    s.parse().unwrap_or(Health::Unknown)
}

async fn load_components(txn: &DatabaseTransaction, ids: &[Uuid]) -> Result<Vec<ComponentRow>> {
    let backend = txn.get_database_backend();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let (list, values) = super::in_ids(backend, chunk);
        let sql = format!(
            "SELECT id, name, type, path, parent_id, health, rolled_up_health, status, summary, selectors, deleted_at \
             FROM components WHERE id{list}"
        );
        for r in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            let definition: serde_json::Value = r.try_get("", "selectors")?;
            out.push(ComponentRow {
                id: r.try_get("", "id")?,
                name: r.try_get("", "name")?,
                component_type: r.try_get("", "type")?,
                path: r.try_get("", "path")?,
                health: parse_health(&r.try_get::<String>("", "health")?),
                rolled_up: parse_health(&r.try_get::<String>("", "rolled_up_health")?),
                status: r.try_get("", "status")?,
                summary: r.try_get("", "summary")?,
                deleted: r
                    .try_get::<Option<DateTime<Utc>>>("", "deleted_at")?
                    .is_some(),
                definition: serde_json::from_value(definition).unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// Recomputes `seeds` and every component above them (tree ancestors and
/// adopters, transitively), children before parents, writing the ones
/// that moved and a history row for each whose rolled-up health moved.
pub(crate) async fn recompute_components(
    txn: &super::WriteTxn,
    seeds: Vec<Uuid>,
    work: Work,
    now: DateTime<Utc>,
) -> Result<i64> {
    let backend = txn.get_database_backend();
    // The closure upwards.
    let mut affected: HashSet<Uuid> = HashSet::new();
    let mut frontier: Vec<Uuid> = seeds;
    let mut rows: HashMap<Uuid, ComponentRow> = HashMap::new();
    while !frontier.is_empty() {
        frontier.retain(|id| affected.insert(*id));
        if frontier.is_empty() {
            break;
        }
        let loaded = load_components(txn, &frontier).await?;
        let mut next: Vec<Uuid> = Vec::new();
        for row in &loaded {
            next.extend(row.path.split('.').filter_map(|s| Uuid::parse_str(s).ok()));
        }
        for chunk in frontier.chunks(1000) {
            let (list, values) = super::in_ids(backend, chunk);
            let sql = format!(
                "SELECT DISTINCT parent_id FROM component_relationships WHERE component_id{list} AND deleted_at IS NULL"
            );
            for r in txn.query_all_raw(stmt(backend, &sql, values)).await? {
                next.push(r.try_get("", "parent_id")?);
            }
        }
        for row in loaded {
            rows.insert(row.id, row);
        }
        frontier = next;
    }
    let ids: Vec<Uuid> = rows.keys().copied().collect();
    if ids.is_empty() {
        return Ok(0);
    }

    // Attached items by rolled-up health and their open insights: kept in
    // each summary and adjusted by the deltas, or recounted; and each
    // component's children (own and adopted) with their stored health.
    let mut item_counts: HashMap<Uuid, [i64; 4]> = HashMap::new();
    let mut insight_counts: HashMap<Uuid, BTreeMap<String, i64>> = HashMap::new();
    let mut recount: Vec<Uuid> = Vec::new();
    for (id, row) in &rows {
        let stored = row
            .summary
            .get("itemHealth")
            .map(super::rollup::decode_counts);
        match stored {
            Some(counts) if !work.all && !work.recount.contains(id) => {
                let mut counts = counts;
                if let Some(d) = work.deltas.get(id) {
                    for (c, d) in counts.iter_mut().zip(d) {
                        *c = (*c + d).max(0);
                    }
                }
                item_counts.insert(*id, counts);
                let insights = row.summary.get("insights").cloned().unwrap_or_default();
                let kept: BTreeMap<String, i64> = ["critical", "high", "medium", "low", "info"]
                    .iter()
                    .map(|k| (k.to_string(), insights[*k].as_i64().unwrap_or(0)))
                    .collect();
                insight_counts.insert(*id, kept);
            }
            _ => recount.push(*id),
        }
    }
    for chunk in recount.chunks(1000) {
        let (list, values) = super::in_ids(backend, chunk);
        let sql = format!(
            "SELECT l.component_id AS c, ci.rolled_up_health AS h, COUNT(DISTINCT ci.id) AS n \
             FROM config_component_relationships l JOIN config_items ci ON ci.id = l.config_id \
             WHERE l.component_id{list} AND l.deleted_at IS NULL AND ci.deleted_at IS NULL GROUP BY l.component_id, ci.rolled_up_health"
        );
        for r in txn
            .query_all_raw(stmt(backend, &sql, values.clone()))
            .await?
        {
            let h = parse_health(&r.try_get::<String>("", "h")?);
            item_counts.entry(r.try_get("", "c")?).or_default()[slot(h)] +=
                r.try_get::<i64>("", "n")?;
        }
        let sql = format!(
            "SELECT l.component_id AS c, i.severity AS s, COUNT(DISTINCT i.id) AS n \
             FROM config_component_relationships l JOIN insights i ON i.config_id = l.config_id \
             WHERE l.component_id{list} AND l.deleted_at IS NULL AND i.status = 'open' GROUP BY l.component_id, i.severity"
        );
        for r in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            insight_counts
                .entry(r.try_get("", "c")?)
                .or_default()
                .insert(r.try_get("", "s")?, r.try_get("", "n")?);
        }
    }
    let mut children: HashMap<Uuid, Vec<(Uuid, Health)>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        let (list, values) = super::in_ids(backend, chunk);
        let sql = format!(
            "SELECT parent_id AS p, id AS c, rolled_up_health AS h FROM components WHERE parent_id{list} AND deleted_at IS NULL \
             UNION SELECT l.parent_id AS p, c.id AS c, c.rolled_up_health AS h FROM component_relationships l \
             JOIN components c ON c.id = l.component_id WHERE l.parent_id{} AND l.deleted_at IS NULL AND c.deleted_at IS NULL",
            super::in_ids(backend, chunk).0
        );
        let mut both = values;
        both.extend(super::in_ids(backend, chunk).1);
        for r in txn.query_all_raw(stmt(backend, &sql, both)).await? {
            children.entry(r.try_get("", "p")?).or_default().push((
                r.try_get("", "c")?,
                parse_health(&r.try_get::<String>("", "h")?),
            ));
        }
    }

    // Children before parents.
    let mut order: Vec<Uuid> = Vec::with_capacity(ids.len());
    let mut done: HashSet<Uuid> = HashSet::new();
    let mut pending: Vec<Uuid> = ids.clone();
    pending.sort();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|id| {
            let ready = children.get(id).is_none_or(|cs| {
                cs.iter()
                    .all(|(c, _)| !affected.contains(c) || done.contains(c) || c == id)
            });
            if ready {
                order.push(*id);
                done.insert(*id);
            }
            !ready
        });
        if pending.len() == before {
            // A cycle slipped past validation: settle the rest as they are.
            order.append(&mut pending);
        }
    }

    let mut computed: HashMap<Uuid, Health> = HashMap::new();
    let mut moved = 0;
    let mut history: Vec<(Uuid, Health, Health)> = Vec::new();
    let mut updates: Vec<serde_json::Value> = Vec::new();
    for id in order {
        let Some(row) = rows.get(&id) else { continue };
        if row.deleted {
            continue;
        }
        let items = item_counts.get(&id).copied().unwrap_or_default();
        let mut tally = items;
        let mut worst_child = Health::Unknown;
        let kids = children.get(&id).cloned().unwrap_or_default();
        for (child, stored) in &kids {
            let h = computed.get(child).copied().unwrap_or(*stored);
            tally[slot(h)] += 1;
            worst_child = worst_child.max(h);
        }
        let insights = insight_counts.get(&id).cloned().unwrap_or_default();
        let open: i64 = insights.values().sum();
        let summary = json!({
            "healthy": tally[1], "warning": tally[2], "unhealthy": tally[3], "unknown": tally[0],
            "items": items.iter().sum::<i64>(), "children": kids.len(),
            "itemHealth": super::rollup::encode_counts(&items),
            "insights": {"total": open, "critical": insights.get("critical").copied().unwrap_or(0),
                         "high": insights.get("high").copied().unwrap_or(0),
                         "medium": insights.get("medium").copied().unwrap_or(0),
                         "low": insights.get("low").copied().unwrap_or(0),
                         "info": insights.get("info").copied().unwrap_or(0)},
        });
        let own_items = super::rollup::rolled_up(Health::Unknown, &items);
        let variables_component = json!({"name": row.name, "type": row.component_type});
        let evaluate = |source: &str| -> Option<serde_json::Value> {
            let expr = crate::celx::Expression::compile(source).ok()?;
            match expr.evaluate(&[("summary", &summary), ("component", &variables_component)]) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(component = %row.name, error = %e, "component expression failed");
                    None
                }
            }
        };
        let from_expr = row
            .definition
            .health_expr
            .as_deref()
            .and_then(evaluate)
            .and_then(|v| v.as_str().and_then(|s| s.parse::<Health>().ok()));
        let (health, rolled_up) = match from_expr {
            Some(h) => (h, h),
            None => (own_items, own_items.max(worst_child)),
        };
        let status = row
            .definition
            .status_expr
            .as_deref()
            .and_then(evaluate)
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .unwrap_or_else(|| {
                if tally[3] == 0 && tally[2] == 0 {
                    "ok".to_string()
                } else {
                    format!("{} unhealthy, {} warning", tally[3], tally[2])
                }
            });
        computed.insert(id, rolled_up);
        if health != row.health
            || rolled_up != row.rolled_up
            || Some(&status) != row.status.as_ref()
            || summary != row.summary
        {
            updates.push(json!({
                "id": id, "health": health.as_str(), "rolled": rolled_up.as_str(),
                "status": status, "summary": summary,
            }));
        }
        if rolled_up != row.rolled_up {
            moved += 1;
            history.push((id, row.rolled_up, rolled_up));
        }
    }
    write_component_health(txn, &updates, now).await?;
    let seqs = Store::allocate_seq(
        txn,
        crate::events::EventStream::ComponentHealth,
        history.len(),
    )
    .await?;
    let rows: Vec<(Uuid, Health, Health, i64)> = history
        .into_iter()
        .zip(seqs)
        .map(|((id, p, c), seq)| (id, p, c, seq))
        .collect();
    for chunk in rows.chunks(super::MAX_PARAMS / 6) {
        let sql = format!(
            "INSERT INTO component_health_history (id, seq, component_id, previous, current, at) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for (id, previous, current, seq) in chunk {
            values.extend([
                Value::from(crate::ids::row_id()),
                Value::from(*seq),
                Value::from(*id),
                Value::from(previous.as_str()),
                Value::from(current.as_str()),
                Value::from(now),
            ]);
        }
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(moved)
}

/// Stores recomputed component health: one statement per 1,000 rows on
/// PostgreSQL, per 400 on SQLite.
async fn write_component_health(
    txn: &DatabaseTransaction,
    updates: &[serde_json::Value],
    now: DateTime<Utc>,
) -> Result<()> {
    let backend = txn.get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        for chunk in updates.chunks(1000) {
            txn.execute_raw(stmt(
                backend,
                "UPDATE components AS c SET health = r.health, rolled_up_health = r.rolled, status = r.status, \
                 summary = r.summary, updated_at = ? FROM jsonb_to_recordset(CAST(? AS jsonb)) \
                 AS r(id uuid, health text, rolled text, status text, summary jsonb) WHERE c.id = r.id",
                vec![
                    now.into(),
                    serde_json::Value::Array(chunk.to_vec()).to_string().into(),
                ],
            ))
            .await?;
        }
        return Ok(());
    }
    // SQLite: one `CASE` statement per 400 rows (each statement is a round
    // trip to the database thread).
    for chunk in updates.chunks(400) {
        let ids: Vec<Uuid> = chunk
            .iter()
            .map(|u| {
                u["id"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .unwrap_or_default()
            })
            .collect();
        let mut sql = String::from("UPDATE components SET updated_at = ?");
        let mut values: Vec<Value> = vec![now.into()];
        for (column, key) in [
            ("health", "health"),
            ("rolled_up_health", "rolled"),
            ("status", "status"),
            ("summary", "summary"),
        ] {
            sql.push_str(&format!(", {column} = CASE id"));
            for (id, u) in ids.iter().zip(chunk) {
                sql.push_str(" WHEN ? THEN ?");
                values.push((*id).into());
                values.push(match key {
                    "summary" => Value::from(u[key].clone()),
                    _ => Value::from(u[key].as_str().map(str::to_string)),
                });
            }
            sql.push_str(&format!(" ELSE {column} END"));
        }
        sql.push_str(&format!(" WHERE id IN ({})", super::marks(ids.len())));
        values.extend(ids.iter().map(|id| Value::from(*id)));
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, kind: &str, selectors: Vec<ComponentSelector>) -> AdoptionCandidate {
        AdoptionCandidate {
            id: Uuid::new_v5(&NAMESPACE, name.as_bytes()),
            parent: None,
            component_type: kind.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            selectors,
        }
    }

    fn by_type(t: &str) -> ComponentSelector {
        ComponentSelector {
            types: vec![t.into()],
            ..ComponentSelector::default()
        }
    }

    #[test]
    fn adoption_skips_self_and_finds_cycles() {
        let a = candidate("a", "Queue", vec![by_type("Queue")]);
        let b = candidate("b", "Db", vec![]);
        let (edges, cycle) = adoption_edges(&[a.clone(), b.clone()]);
        assert!(edges.is_empty(), "a matches only itself");
        assert!(cycle.is_none());

        let c = candidate("c", "Queue", vec![by_type("Queue")]);
        let (_, cycle) = adoption_edges(&[a, c]);
        assert_eq!(cycle.map(|c| c.len()), Some(3), "a → c → a");
    }

    #[test]
    fn component_ids_are_stable_and_flatten_keeps_parents_first() {
        let plan = TopologyPlan {
            namespace: "platform".into(),
            name: "checkout".into(),
            components: vec![ComponentSpec {
                name: "Checkout".into(),
                component_type: "Service".into(),
                components: vec![ComponentSpec {
                    name: "DB".into(),
                    component_type: "Database".into(),
                    ..ComponentSpec::default()
                }],
                ..ComponentSpec::default()
            }],
        };
        let flat = flatten(&plan);
        assert_eq!(flat.len(), 2);
        assert_eq!(flat[1].parent, Some(flat[0].id));
        assert_eq!(flat[1].path, flat[0].id.to_string());
        assert_eq!(flatten(&plan)[1].id, flat[1].id);
    }
}
