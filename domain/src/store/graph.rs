//! Relationship traversal (SPEC §4), the same on both backends: walking
//! outgoing and/or incoming edges with a relation filter, a depth limit, a
//! node cap and cycle safety, and the edges among a walk's nodes.
//!
//! A walk is breadth-first with one indexed query per level (a recursive
//! CTE let the planner fall back to scanning every edge at each step:
//! seconds on a 300k-edge graph, see BENCHMARKS.md). A visited set ends
//! cycles. Deleted items stop a path unless asked for. `BOTH` is the union
//! of a pure incoming and a pure outgoing walk, so a walk never turns
//! around and never reaches siblings through a parent.

use std::collections::{HashMap, HashSet};

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::{Store, stmt};
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

/// Ids per level query.
const FRONTIER_CHUNK: usize = 1000;

impl Store {
    /// Walks the relationship graph from `query.roots`: breadth-first, one
    /// indexed query per level and chunk of 1,000 frontier ids, with a
    /// visited set (so cycles end) and the node cap (SPEC §4). `BOTH` is an
    /// incoming walk and an outgoing walk; a node keeps its smallest depth.
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
        let mut best: HashMap<Uuid, GraphNode> = HashMap::new();
        let walks: &[Direction] = match query.direction {
            Direction::Outgoing => &[Direction::Outgoing],
            Direction::Incoming => &[Direction::Incoming],
            Direction::Both => &[Direction::Outgoing, Direction::Incoming],
        };
        for &direction in walks {
            let mut visited: HashSet<Uuid> = query.roots.iter().copied().collect();
            let mut frontier: Vec<Uuid> = query.roots.clone();
            for depth in 1..=query.depth {
                if frontier.is_empty() {
                    break;
                }
                let mut next = Vec::new();
                for chunk in frontier.chunks(FRONTIER_CHUNK) {
                    for id in self.neighbours(chunk, direction, query).await? {
                        if visited.insert(id) {
                            next.push(id);
                            let node = GraphNode {
                                id,
                                depth,
                                direction,
                            };
                            best.entry(id)
                                .and_modify(|n| {
                                    if depth < n.depth {
                                        *n = node.clone();
                                    }
                                })
                                .or_insert(node);
                        }
                    }
                }
                frontier = next;
                // Every node at this depth is known; deeper ones would sort
                // after the cap.
                if visited.len() > query.node_limit + query.roots.len() {
                    break;
                }
            }
        }
        let mut nodes: Vec<GraphNode> = best.into_values().collect();
        nodes.sort_by_key(|a| (a.depth, a.id));
        let truncated = nodes.len() > query.node_limit;
        nodes.truncate(query.node_limit);
        Ok(TraversalResult { nodes, truncated })
    }

    /// The far ends of live edges from `ids` in one direction, through
    /// live items (unless deleted ones are asked for).
    async fn neighbours(
        &self,
        ids: &[Uuid],
        direction: Direction,
        query: &TraversalQuery,
    ) -> Result<Vec<Uuid>> {
        let (near, far) = match direction {
            Direction::Incoming => ("to_id", "from_id"),
            _ => ("from_id", "to_id"),
        };
        let (list, mut values) = super::in_ids(self.backend(), ids);
        let relation = match query.relation {
            RelationKind::Both => "",
            RelationKind::Hard | RelationKind::Soft => {
                values.push((query.relation == RelationKind::Hard).into());
                "AND r.hard = ?"
            }
        };
        let deleted = if query.include_deleted {
            ""
        } else {
            "AND c.deleted_at IS NULL"
        };
        let sql = format!(
            "SELECT DISTINCT r.{far} AS id FROM config_relationships r JOIN config_items c ON c.id = r.{far} \
             WHERE r.{near}{list} AND r.deleted_at IS NULL {relation} {deleted}"
        );
        let rows = self
            .db
            .query_all_raw(stmt(self.backend(), &sql, values))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row.try_get::<Uuid>("", "id")?);
        }
        out.sort();
        Ok(out)
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
            .filter(super::id_in(self.backend(), "from_id", ids))
            .filter(super::id_in(self.backend(), "to_id", ids));
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
        self.rows_by_id::<config_relationship::Entity>(ids, |m| m.id)
            .await
    }
}
