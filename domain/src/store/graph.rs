//! Relationship traversal (SPEC §4): one recursive query, on both backends,
//! walking outgoing and/or incoming edges with a relation filter, a depth
//! limit, a node cap and cycle safety.
//!
//! Each walk is a recursive CTE over `(id, depth)` rows joined `UNION`
//! (not `UNION ALL`): a row repeats only with a larger depth, and depth is
//! bounded, so cycles terminate. Deleted items stop a path unless asked
//! for. `BOTH` is the union of a pure incoming and a pure outgoing walk, so
//! a walk never turns around and never reaches siblings through a parent.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::{Store, marks, stmt};
use crate::entities::config_relationship;
use crate::error::{DomainError, Result};

/// Default walk depth.
pub const DEFAULT_DEPTH: u32 = 3;
/// Deepest allowed walk.
pub const MAX_DEPTH: u32 = 10;
/// Default and largest node cap.
pub const MAX_NODES: usize = 5000;

/// Which way edges are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `from → to`: downstream.
    Outgoing,
    /// `to → from`: upstream.
    Incoming,
    /// Both walks, unioned.
    Both,
}

/// Which edges are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// Hard (parent) edges only.
    Hard,
    /// Soft edges only.
    Soft,
    /// Any edge.
    Both,
}

/// A traversal request.
#[derive(Debug, Clone)]
pub struct TraversalQuery {
    /// Starting items (not part of the result).
    pub roots: Vec<Uuid>,
    /// Which way to walk.
    pub direction: Direction,
    /// Which edges to follow.
    pub relation: RelationKind,
    /// Hops, 1–10.
    pub depth: u32,
    /// Most nodes returned, 1–5000.
    pub node_limit: usize,
    /// Walk through soft-deleted items and edges' deleted ends.
    pub include_deleted: bool,
}

impl TraversalQuery {
    /// A walk from `roots` with the SPEC defaults.
    pub fn new(roots: Vec<Uuid>) -> Self {
        TraversalQuery {
            roots,
            direction: Direction::Both,
            relation: RelationKind::Both,
            depth: DEFAULT_DEPTH,
            node_limit: MAX_NODES,
            include_deleted: false,
        }
    }
}

/// A node reached by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    /// The item.
    pub id: Uuid,
    /// Minimum number of hops from a root.
    pub depth: u32,
    /// The walk that reached it at that depth.
    pub direction: Direction,
}

/// The nodes a walk reached, in `(depth, id)` order.
#[derive(Debug, Clone, Default)]
pub struct TraversalResult {
    /// Reached nodes.
    pub nodes: Vec<GraphNode>,
    /// The node cap cut the walk short.
    pub truncated: bool,
}

fn walk_cte(
    name: &str,
    near: &str,
    far: &str,
    relation: &str,
    deleted: &str,
    roots: &str,
) -> String {
    format!(
        "{name}(id, depth) AS ( \
           SELECT r.{far}, CAST(1 AS BIGINT) FROM config_relationships r JOIN config_items c ON c.id = r.{far} \
           WHERE r.{near} IN ({roots}) AND r.deleted_at IS NULL {relation} {deleted} \
           UNION \
           SELECT r.{far}, w.depth + 1 FROM {name} w JOIN config_relationships r ON r.{near} = w.id \
           JOIN config_items c ON c.id = r.{far} \
           WHERE w.depth < ? AND r.deleted_at IS NULL {relation} {deleted} )"
    )
}

impl Store {
    /// Walks the relationship graph from `query.roots`.
    pub async fn traverse(&self, query: &TraversalQuery) -> Result<TraversalResult> {
        if query.depth == 0 || query.depth > MAX_DEPTH {
            return Err(DomainError::invalid(
                "depth",
                format!("must be between 1 and {MAX_DEPTH}"),
            ));
        }
        if query.node_limit == 0 || query.node_limit > MAX_NODES {
            return Err(DomainError::invalid(
                "nodeLimit",
                format!("must be between 1 and {MAX_NODES}"),
            ));
        }
        if query.roots.is_empty() {
            return Ok(TraversalResult::default());
        }
        if query.roots.len() > 1000 {
            return Err(DomainError::invalid("rootIds", "at most 1000 roots"));
        }
        let relation = match query.relation {
            RelationKind::Hard => "AND r.hard = ?",
            RelationKind::Soft => "AND r.hard = ?",
            RelationKind::Both => "",
        };
        let deleted = if query.include_deleted {
            ""
        } else {
            "AND c.deleted_at IS NULL"
        };
        let roots = marks(query.roots.len());
        let walk_values = |values: &mut Vec<Value>| {
            values.extend(query.roots.iter().map(|u| Value::from(*u)));
            if query.relation != RelationKind::Both {
                values.push((query.relation == RelationKind::Hard).into());
            }
            values.push(i64::from(query.depth).into());
            if query.relation != RelationKind::Both {
                values.push((query.relation == RelationKind::Hard).into());
            }
        };
        let mut ctes = Vec::new();
        let mut selects = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if matches!(query.direction, Direction::Outgoing | Direction::Both) {
            ctes.push(walk_cte(
                "down", "from_id", "to_id", relation, deleted, &roots,
            ));
            selects.push(
                "SELECT id, MIN(depth) AS depth, CAST(0 AS BIGINT) AS dir FROM down GROUP BY id",
            );
            walk_values(&mut values);
        }
        if matches!(query.direction, Direction::Incoming | Direction::Both) {
            ctes.push(walk_cte(
                "up", "to_id", "from_id", relation, deleted, &roots,
            ));
            selects.push(
                "SELECT id, MIN(depth) AS depth, CAST(1 AS BIGINT) AS dir FROM up GROUP BY id",
            );
            walk_values(&mut values);
        }
        let sql = format!(
            "WITH RECURSIVE {} SELECT id, depth, dir FROM ({}) t WHERE id NOT IN ({roots}) ORDER BY depth, id, dir",
            ctes.join(", "),
            selects.join(" UNION ALL "),
        );
        values.extend(query.roots.iter().map(|u| Value::from(*u)));
        let rows = self
            .db
            .query_all_raw(stmt(self.backend(), &sql, values))
            .await?;

        let mut best: HashMap<Uuid, GraphNode> = HashMap::new();
        for r in rows {
            let id: Uuid = r.try_get("", "id")?;
            let depth: i64 = r.try_get("", "depth")?;
            let dir: i64 = r.try_get("", "dir")?;
            let node = GraphNode {
                id,
                depth: depth as u32,
                direction: if dir == 0 {
                    Direction::Outgoing
                } else {
                    Direction::Incoming
                },
            };
            best.entry(id)
                .and_modify(|n| {
                    if node.depth < n.depth {
                        *n = node.clone();
                    }
                })
                .or_insert(node);
        }
        let mut nodes: Vec<GraphNode> = best.into_values().collect();
        nodes.sort_by_key(|a| (a.depth, a.id));
        let truncated = nodes.len() > query.node_limit;
        nodes.truncate(query.node_limit);
        Ok(TraversalResult { nodes, truncated })
    }

    /// Live edges whose both ends are in `ids` (the edges of a walk's
    /// subgraph), restricted to `relation`, sorted by `(from, to, relation)`.
    pub async fn edges_among(
        &self,
        ids: &[Uuid],
        relation: RelationKind,
    ) -> Result<Vec<config_relationship::Model>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > MAX_NODES + 1000 {
            return Err(DomainError::invalid(
                "graph",
                format!("at most {} nodes", MAX_NODES + 1000),
            ));
        }
        use config_relationship::Column as C;
        let mut select = config_relationship::Entity::find()
            .filter(C::DeletedAt.is_null())
            .filter(C::FromId.is_in(ids.iter().copied()))
            .filter(C::ToId.is_in(ids.iter().copied()));
        match relation {
            RelationKind::Hard => select = select.filter(C::Hard.eq(true)),
            RelationKind::Soft => select = select.filter(C::Hard.eq(false)),
            RelationKind::Both => {}
        }
        Ok(select
            .order_by_asc(C::FromId)
            .order_by_asc(C::ToId)
            .order_by_asc(C::Relation)
            .all(&self.db)
            .await?)
    }

    /// Relationships by id.
    pub async fn get_relationships(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, config_relationship::Model>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            for m in config_relationship::Entity::find()
                .filter(config_relationship::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?
            {
                out.insert(m.id, m);
            }
        }
        Ok(out)
    }
}
