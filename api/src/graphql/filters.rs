//! Filter, ordering and walk inputs of the schema, and their conversion
//! into the domain's filters. Structured tag, label and relationship
//! filters become the same search terms the search language produces, so a
//! `filter` and a `search` string mean one thing to the store.

use async_graphql::{Enum, ID, InputObject};
use stratum_domain::search::{
    self, RelatedDirection, RelatedRelation, RelatedSpec, SearchExpr, SearchField, SearchOp,
    SearchValue, Term,
};
use stratum_domain::store::{self as domain_store, ItemFilter, ItemOrder, ItemSort};
use uuid::Uuid;

use super::types::{Health, parse_global_id};
use crate::error::{ApiError, ApiResult, gql};

/// Which way a walk follows edges.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum Direction {
    /// Upstream: towards owners and hosts.
    Incoming,
    /// Downstream: towards what an item owns, hosts or routes to.
    Outgoing,
    /// Both walks.
    #[default]
    Both,
}

/// Which edges a walk follows.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum RelationKind {
    /// Parent/child edges.
    Hard,
    /// Other edges.
    Soft,
    /// All edges.
    #[default]
    Both,
}

impl From<Direction> for domain_store::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Incoming => domain_store::Direction::Incoming,
            Direction::Outgoing => domain_store::Direction::Outgoing,
            Direction::Both => domain_store::Direction::Both,
        }
    }
}

impl From<RelationKind> for domain_store::RelationKind {
    fn from(r: RelationKind) -> Self {
        match r {
            RelationKind::Hard => domain_store::RelationKind::Hard,
            RelationKind::Soft => domain_store::RelationKind::Soft,
            RelationKind::Both => domain_store::RelationKind::Both,
        }
    }
}

/// How a [`KeyValueMatch`] tests a key.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum MatchOp {
    /// The value is one of `values` (`*` wildcards allowed at either end).
    #[default]
    Eq,
    /// The value is none of `values` (or the key is absent).
    Neq,
    /// The key is present.
    Exists,
    /// The key is absent.
    Absent,
}

/// A test on a tag or label.
#[derive(InputObject, Clone, Debug)]
pub struct KeyValueMatch {
    /// The tag or label key.
    pub key: String,
    /// Values for `EQ` and `NEQ`.
    #[graphql(default)]
    pub values: Vec<String>,
    /// The test; `EQ` by default.
    #[graphql(default)]
    pub op: MatchOp,
}

/// Restricts a list to the items a relationship walk reaches from one item
/// (the item itself excluded).
#[derive(InputObject, Clone, Debug)]
pub struct RelatedFilter {
    /// The root item: a global id or a raw UUID.
    pub id: ID,
    /// Direction; both by default.
    #[graphql(default)]
    pub direction: Direction,
    /// Relation; both by default.
    #[graphql(default)]
    pub relation: RelationKind,
    /// Hops, 1–10.
    #[graphql(default = 1)]
    pub depth: i32,
}

/// Filters for lists of config items.
#[derive(InputObject, Default, Clone, Debug)]
pub struct ConfigFilter {
    /// Only these items (global ids or raw UUIDs).
    pub ids: Option<Vec<ID>>,
    /// Exact types.
    pub types: Option<Vec<String>>,
    /// Exact classes.
    pub classes: Option<Vec<String>>,
    /// Exact namespaces.
    pub namespaces: Option<Vec<String>>,
    /// Any of these health values.
    pub health: Option<Vec<Health>>,
    /// Tag tests, all of which must hold.
    pub tags: Option<Vec<KeyValueMatch>>,
    /// Label tests, all of which must hold.
    pub labels: Option<Vec<KeyValueMatch>>,
    /// Only items a walk from one item reaches.
    pub related_to: Option<RelatedFilter>,
    /// Include soft-deleted items.
    #[graphql(default = false)]
    pub include_deleted: bool,
}

/// What items can be sorted by.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ConfigOrderField {
    /// Display name.
    Name,
    /// Config type.
    Type,
    /// First stored.
    CreatedAt,
    /// Last config change.
    UpdatedAt,
    /// Health, unknown < healthy < warning < unhealthy.
    Health,
    /// Cost over the last 30 days.
    #[graphql(name = "COST_30D")]
    Cost30d,
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum OrderDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key; every ordering ends on the item id.
#[derive(InputObject, Clone, Copy, Debug)]
pub struct ConfigOrder {
    /// The key.
    pub field: ConfigOrderField,
    /// The direction; ascending by default.
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl From<ConfigOrder> for ItemOrder {
    fn from(o: ConfigOrder) -> Self {
        ItemOrder {
            sort: match o.field {
                ConfigOrderField::Name => ItemSort::Name,
                ConfigOrderField::Type => ItemSort::Type,
                ConfigOrderField::CreatedAt => ItemSort::CreatedAt,
                ConfigOrderField::UpdatedAt => ItemSort::UpdatedAt,
                ConfigOrderField::Health => ItemSort::Health,
                ConfigOrderField::Cost30d => ItemSort::Cost30d,
            },
            descending: o.direction == OrderDirection::Desc,
        }
    }
}

/// An item id given as a global id (`ConfigItem:…`) or a raw UUID.
pub fn item_uuid(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id)
        .or_else(|_| parse_global_id("ConfigItem", id))
        .map_err(|_| {
            gql(ApiError::BadUserInput(format!(
                "'{id}' is not a config item id"
            )))
        })
}

fn key_terms(field: impl Fn(String) -> SearchField, matches: &[KeyValueMatch]) -> Vec<SearchExpr> {
    matches
        .iter()
        .map(|m| {
            let (op, value) = match m.op {
                MatchOp::Eq => (SearchOp::Eq, SearchValue::Text(m.values.clone())),
                MatchOp::Neq => (SearchOp::Ne, SearchValue::Text(m.values.clone())),
                MatchOp::Exists | MatchOp::Absent => (SearchOp::Exists, SearchValue::None),
            };
            let term = SearchExpr::Term(Term {
                field: field(m.key.clone()),
                op,
                value,
                column: 0,
            });
            if m.op == MatchOp::Absent {
                SearchExpr::Not(Box::new(term))
            } else {
                term
            }
        })
        .collect()
}

/// Builds the domain filter from the structured filter and a search query.
pub fn item_filter(filter: Option<ConfigFilter>, search: Option<&str>) -> ApiResult<ItemFilter> {
    let f = filter.unwrap_or_default();
    let mut terms: Vec<SearchExpr> = Vec::new();
    for m in f.tags.iter().chain(f.labels.iter()).flatten() {
        if matches!(m.op, MatchOp::Eq | MatchOp::Neq) && m.values.is_empty() {
            return Err(gql(ApiError::BadUserInput(format!(
                "the match on '{}' needs values for EQ and NEQ",
                m.key
            ))));
        }
    }
    terms.extend(key_terms(
        SearchField::Tag,
        f.tags.as_deref().unwrap_or_default(),
    ));
    terms.extend(key_terms(
        SearchField::Label,
        f.labels.as_deref().unwrap_or_default(),
    ));
    if let Some(related) = &f.related_to {
        if !(1..=search::MAX_RELATED_DEPTH as i32).contains(&related.depth) {
            return Err(gql(ApiError::BadUserInput(format!(
                "relatedTo.depth must be between 1 and {}, got {}",
                search::MAX_RELATED_DEPTH,
                related.depth
            ))));
        }
        terms.push(SearchExpr::Term(Term {
            field: SearchField::Related,
            op: SearchOp::Eq,
            value: SearchValue::Related(RelatedSpec {
                root: item_uuid(&related.id)?,
                direction: match related.direction {
                    Direction::Incoming => RelatedDirection::Incoming,
                    Direction::Outgoing => RelatedDirection::Outgoing,
                    Direction::Both => RelatedDirection::Both,
                },
                depth: related.depth as u32,
                relation: match related.relation {
                    RelationKind::Hard => RelatedRelation::Hard,
                    RelationKind::Soft => RelatedRelation::Soft,
                    RelationKind::Both => RelatedRelation::Both,
                },
            }),
            column: 0,
        }));
    }
    if let Some(query) = search {
        match search::parse(query) {
            Ok(Some(expr)) => terms.push(expr),
            Ok(None) => {}
            Err(e) => return Err(gql(ApiError::from(e))),
        }
    }
    Ok(ItemFilter {
        types: f.types.unwrap_or_default(),
        classes: f.classes.unwrap_or_default(),
        namespaces: f.namespaces.unwrap_or_default(),
        health: f
            .health
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect(),
        ids: f
            .ids
            .unwrap_or_default()
            .iter()
            .map(|id| item_uuid(id))
            .collect::<ApiResult<Vec<Uuid>>>()?,
        include_deleted: f.include_deleted,
        search: match terms.len() {
            0 => None,
            1 => terms.pop(),
            _ => Some(SearchExpr::And(terms)),
        },
        ..ItemFilter::default()
    })
}

/// Change severity, least to most severe.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl From<Severity> for stratum_domain::Severity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Info => stratum_domain::Severity::Info,
            Severity::Low => stratum_domain::Severity::Low,
            Severity::Medium => stratum_domain::Severity::Medium,
            Severity::High => stratum_domain::Severity::High,
            Severity::Critical => stratum_domain::Severity::Critical,
        }
    }
}

/// The domain's spelling of a `severities` argument.
fn domain_severities(severities: Option<Vec<Severity>>) -> Vec<stratum_domain::Severity> {
    severities
        .unwrap_or_default()
        .into_iter()
        .map(Into::into)
        .collect()
}

/// Which items' changes a recursive change search adds to its roots.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum Recursive {
    /// The roots only.
    #[default]
    None,
    /// And what the roots depend on (incoming walk).
    Upstream,
    /// And what depends on the roots (outgoing walk).
    Downstream,
    /// Both walks.
    All,
}

/// Filters for lists of changes (SPEC §5 "Queries").
#[derive(InputObject, Default, Clone, Debug)]
#[graphql(name = "ChangeFilter")]
pub struct ChangeFilterInput {
    /// Changes of these items (global ids or raw UUIDs).
    pub config_ids: Option<Vec<ID>>,
    /// Exact change types.
    pub change_types: Option<Vec<String>>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    /// Exactly these severities (intersected with `minSeverity`).
    pub severities: Option<Vec<Severity>>,
    /// Created at or after: `now-7d` or RFC 3339.
    pub from: Option<String>,
    /// Created before: `now-1h` or RFC 3339.
    pub to: Option<String>,
    /// Exact sources.
    pub sources: Option<Vec<String>>,
    /// Recorded by.
    pub created_by: Option<String>,
    /// Extend `configIds` with a relationship walk.
    #[graphql(default)]
    pub recursive: Recursive,
    /// Walk depth, 1–10 (default 3).
    pub depth: Option<i32>,
    /// Walk relation (default `HARD`).
    #[graphql(default_with = "RelationKind::Hard")]
    pub relation: RelationKind,
}

fn time_bound(what: &str, text: Option<&str>) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(text) = text else { return Ok(None) };
    search::parse_time(text)
        .map(|t| Some(t.resolve(chrono::Utc::now())))
        .ok_or_else(|| {
            gql(ApiError::BadUserInput(format!(
                "{what}: '{text}' is not a time (use now-7d, now-12h or RFC 3339)"
            )))
        })
}

/// Builds the domain change filter, running the recursive walks it asks for.
pub async fn change_filter(
    ctx: &async_graphql::Context<'_>,
    input: Option<ChangeFilterInput>,
) -> ApiResult<domain_store::ChangeFilter> {
    let f = input.unwrap_or_default();
    let mut config_ids = f
        .config_ids
        .unwrap_or_default()
        .iter()
        .map(|id| item_uuid(id))
        .collect::<ApiResult<Vec<Uuid>>>()?;
    let depth = f.depth.unwrap_or(3);
    if !(1..=10).contains(&depth) {
        return Err(gql(ApiError::BadUserInput(format!(
            "depth must be between 1 and 10, got {depth}"
        ))));
    }
    if f.recursive != Recursive::None {
        if config_ids.is_empty() {
            return Err(gql(ApiError::BadUserInput(
                "recursive needs configIds to start from".into(),
            )));
        }
        let store = ctx
            .data::<stratum_domain::Store>()
            .map_err(|_| gql(ApiError::Internal))?;
        let mut walk = domain_store::TraversalQuery::new(config_ids.clone());
        walk.direction = match f.recursive {
            Recursive::Upstream => domain_store::Direction::Incoming,
            Recursive::Downstream => domain_store::Direction::Outgoing,
            _ => domain_store::Direction::Both,
        };
        walk.relation = f.relation.into();
        walk.depth = depth as u32;
        let reached = store.traverse(&walk).await.map_err(gql)?;
        config_ids.extend(reached.nodes.into_iter().map(|n| n.id));
        config_ids.sort();
        config_ids.dedup();
    }
    Ok(domain_store::ChangeFilter {
        config_ids,
        change_types: f.change_types.unwrap_or_default(),
        severities: domain_severities(f.severities),
        min_severity: f.min_severity.map(Into::into),
        from: time_bound("from", f.from.as_deref())?,
        to: time_bound("to", f.to.as_deref())?,
        sources: f.sources.unwrap_or_default(),
        created_by: f.created_by,
    })
}

/// Lifecycle state of an insight.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum InsightStatus {
    /// Observed and not resolved.
    Open,
    /// Not re-observed, or resolved by hand.
    Resolved,
    /// Silenced until a time.
    Silenced,
}

impl InsightStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InsightStatus::Open => "open",
            InsightStatus::Resolved => "resolved",
            InsightStatus::Silenced => "silenced",
        }
    }
}

/// Filters for lists of insights.
#[derive(InputObject, Default, Clone, Debug)]
pub struct InsightFilter {
    /// Insights of these items (global ids or raw UUIDs).
    pub config_ids: Option<Vec<ID>>,
    /// Exact analyzers.
    pub analyzers: Option<Vec<String>>,
    /// Exact analysis types (`security`, `cost`, `reliability`, …).
    pub types: Option<Vec<String>>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    /// Exactly these severities.
    pub severities: Option<Vec<Severity>>,
    /// Statuses; open only by default.
    pub statuses: Option<Vec<InsightStatus>>,
}

/// Builds the domain insight filter.
pub fn insight_filter(input: Option<InsightFilter>) -> ApiResult<domain_store::InsightFilter> {
    let f = input.unwrap_or_default();
    Ok(domain_store::InsightFilter {
        config_ids: f
            .config_ids
            .unwrap_or_default()
            .iter()
            .map(|id| item_uuid(id))
            .collect::<ApiResult<Vec<Uuid>>>()?,
        analyzers: f.analyzers.unwrap_or_default(),
        types: f.types.unwrap_or_default(),
        severities: domain_severities(f.severities),
        min_severity: f.min_severity.map(Into::into),
        statuses: f
            .statuses
            .unwrap_or_else(|| vec![InsightStatus::Open])
            .into_iter()
            .map(|s| s.as_str().to_string())
            .collect(),
    })
}

/// Parses a component id: a `Component` global id or a raw UUID.
pub fn component_uuid(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id)
        .or_else(|_| parse_global_id("Component", id))
        .map_err(|e| gql(ApiError::BadUserInput(e.to_string())))
}

/// Which components a list returns.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ComponentFilter {
    /// Only these components (global ids or raw UUIDs).
    pub ids: Option<Vec<ID>>,
    /// Components of these topologies (raw UUIDs).
    pub topology_ids: Option<Vec<String>>,
    /// Exact component types.
    pub types: Option<Vec<String>>,
    /// Any of these own health values.
    pub health: Option<Vec<Health>>,
    /// Any of these rolled-up health values.
    pub rolled_up_health: Option<Vec<Health>>,
    /// Only the children of this component (its own and adopted ones).
    pub parent_id: Option<ID>,
    /// Only top-level components.
    #[graphql(default = false)]
    pub roots_only: bool,
    /// Include soft-deleted components.
    #[graphql(default = false)]
    pub include_deleted: bool,
}

/// Builds the domain component filter.
pub fn component_filter(
    input: Option<ComponentFilter>,
) -> ApiResult<domain_store::ComponentFilter> {
    let f = input.unwrap_or_default();
    let scope = match (f.parent_id, f.roots_only) {
        (Some(_), true) => {
            return Err(gql(ApiError::BadUserInput(
                "give parentId or rootsOnly, not both".into(),
            )));
        }
        (Some(parent), false) => domain_store::ComponentScope::ChildrenOf(component_uuid(&parent)?),
        (None, true) => domain_store::ComponentScope::Roots,
        (None, false) => domain_store::ComponentScope::All,
    };
    let topology_ids = f
        .topology_ids
        .unwrap_or_default()
        .iter()
        .map(|id| {
            Uuid::parse_str(id).map_err(|_| {
                gql(ApiError::BadUserInput(format!(
                    "'{id}' is not a topology id (a UUID)"
                )))
            })
        })
        .collect::<ApiResult<Vec<Uuid>>>()?;
    let health =
        |h: Option<Vec<Health>>| h.unwrap_or_default().into_iter().map(Into::into).collect();
    Ok(domain_store::ComponentFilter {
        ids: f
            .ids
            .unwrap_or_default()
            .iter()
            .map(|id| component_uuid(id))
            .collect::<ApiResult<Vec<Uuid>>>()?,
        topology_ids,
        types: f.types.unwrap_or_default(),
        health: health(f.health),
        rolled_up_health: health(f.rolled_up_health),
        scope,
        include_deleted: f.include_deleted,
    })
}
