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

/// The state of one direction's breadth-first walk.
struct Walk {
    direction: Direction,
    visited: HashSet<Uuid>,
    frontier: Vec<Uuid>,
}

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
        // A scoped walk starts only from visible roots and (below) only
        // steps onto visible items: it stops at the scope's boundary.
        let roots: Vec<Uuid> = if self.scope().is_some() {
            let visible = self.visible_ids(&query.roots).await?;
            query
                .roots
                .iter()
                .copied()
                .filter(|r| visible.contains(r))
                .collect()
        } else {
            query.roots.clone()
        };
        let mut best: HashMap<Uuid, GraphNode> = HashMap::new();
        let directions: &[Direction] = match query.direction {
            Direction::Outgoing => &[Direction::Outgoing],
            Direction::Incoming => &[Direction::Incoming],
            Direction::Both => &[Direction::Outgoing, Direction::Incoming],
        };
        // One walk per direction; each level of both walks is one statement.
        let mut walks: Vec<Walk> = directions
            .iter()
            .map(|&direction| Walk {
                direction,
                visited: roots.iter().copied().collect(),
                frontier: roots.clone(),
            })
            .collect();
        for depth in 1..=query.depth {
            let chunks = walks
                .iter()
                .map(|w| w.frontier.len().div_ceil(FRONTIER_CHUNK))
                .max()
                .unwrap_or(0);
            if chunks == 0 {
                break;
            }
            let mut next: Vec<Vec<Uuid>> = vec![Vec::new(); walks.len()];
            for c in 0..chunks {
                let parts: Vec<(usize, Direction, &[Uuid])> = walks
                    .iter()
                    .enumerate()
                    .filter_map(|(i, w)| {
                        w.frontier
                            .chunks(FRONTIER_CHUNK)
                            .nth(c)
                            .map(|chunk| (i, w.direction, chunk))
                    })
                    .collect();
                for (i, id) in self.neighbours(&parts, query).await? {
                    let Some(walk) = walks.get_mut(i) else {
                        continue;
                    };
                    if walk.visited.insert(id) {
                        next[i].push(id);
                        let node = GraphNode {
                            id,
                            depth,
                            direction: walk.direction,
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
            for (walk, mut found) in walks.iter_mut().zip(next) {
                // Every node at this depth is known; deeper ones would sort
                // after the cap, so a walk past it goes no further.
                if walk.visited.len() > query.node_limit + roots.len() {
                    found.clear();
                }
                found.sort();
                walk.frontier = found;
            }
        }
        let mut nodes: Vec<GraphNode> = best.into_values().collect();
        nodes.sort_by_key(|a| (a.depth, a.id));
        let truncated = nodes.len() > query.node_limit;
        nodes.truncate(query.node_limit);
        Ok(TraversalResult { nodes, truncated })
    }

    /// The far ends of live edges from each part's ids in its direction,
    /// through live items (unless deleted ones are asked for), in one
    /// statement; each result carries its part's walk index.
    async fn neighbours(
        &self,
        parts: &[(usize, Direction, &[Uuid])],
        query: &TraversalQuery,
    ) -> Result<Vec<(usize, Uuid)>> {
        let mut selects = Vec::with_capacity(parts.len());
        let mut values = Vec::new();
        for (walk, direction, ids) in parts {
            let (near, far) = match direction {
                Direction::Incoming => ("to_id", "from_id"),
                _ => ("from_id", "to_id"),
            };
            let (list, ids_values) = super::in_ids(self.backend(), ids);
            values.extend(ids_values);
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
            let visible = super::scope::and_clause(self.scope_sql("c.").as_ref(), &mut values);
            selects.push(format!(
                "SELECT DISTINCT r.{far} AS id, CAST({walk} AS BIGINT) AS walk FROM config_relationships r \
                 JOIN config_items c ON c.id = r.{far} WHERE r.{near}{list} AND r.deleted_at IS NULL {relation} {deleted} {visible}"
            ));
        }
        let rows = self
            .reads()
            .query_all_raw(stmt(self.backend(), &selects.join(" UNION ALL "), values))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let walk: i64 = row.try_get("", "walk")?;
            out.push((walk as usize, row.try_get::<Uuid>("", "id")?));
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
        if let Some(visible) = self.visible_items("from_id") {
            select = select.filter(visible);
        }
        if let Some(visible) = self.visible_items("to_id") {
            select = select.filter(visible);
        }
        match relation {
            RelationKind::Hard => select = select.filter(C::Hard.eq(true)),
            RelationKind::Soft => select = select.filter(C::Hard.eq(false)),
            RelationKind::Both => {}
        }
        Ok(select
            .order_by_asc(C::FromId)
            .order_by_asc(C::ToId)
            .order_by_asc(C::Relation)
            .all(self.reads())
            .await?)
    }

    /// Relationships by id.
    pub async fn get_relationships(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, config_relationship::Model>> {
        use sea_orm::{EntityTrait, QueryFilter};
        let mut base = config_relationship::Entity::find();
        for end in ["from_id", "to_id"] {
            if let Some(visible) = self.visible_items(end) {
                base = base.filter(visible);
            }
        }
        self.rows_by_id(base, ids, |m| m.id).await
    }
}
