//! GraphQL object types, the Relay `Node` interface, and the query root.
//! Edges a list can fan out on go through [`super::loaders`].

use async_graphql::connection::{Connection, ConnectionNameType, Edge, EdgeNameType};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, ID, Interface, Json, Object, OutputType, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use stratum_domain::entities::{
    component, config_change, config_item, config_relationship, insight, scrape_run, scraper,
};
use stratum_domain::store::{
    ChangeFilter, Facet, GroupKey, HealthTally, ItemColumns, ItemFilter, ItemOrder, TraversalQuery,
    latest_page,
};
use stratum_domain::{Health as DomainHealth, Store};
use uuid::Uuid;

use super::connection::{connection, page_in_memory, page_request};
use super::filters::{
    ChangeFilterInput, ComponentFilter, ConfigFilter, ConfigOrder, Direction, InsightFilter,
    InsightStatus, RelationKind, change_filter, component_filter, insight_filter, item_filter,
    item_uuid,
};
use super::loaders::{
    CatalogLoader, ChangeKey, ComponentChildrenKey, ComponentKey, ConfigDocKey, InsightCountKey,
    InsightKey, ItemComponentsKey, ItemCostsKey, ItemKey, LatestChangesKey, RelationshipKey,
    RunKey, ScraperKey,
};
use crate::error::{ApiError, ApiResult, gql};

/// Red/amber/green health.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Health {
    /// Green.
    Healthy,
    /// Amber.
    Warning,
    /// Red.
    Unhealthy,
    /// Not known.
    Unknown,
}

impl From<DomainHealth> for Health {
    fn from(h: DomainHealth) -> Self {
        match h {
            DomainHealth::Healthy => Health::Healthy,
            DomainHealth::Warning => Health::Warning,
            DomainHealth::Unhealthy => Health::Unhealthy,
            DomainHealth::Unknown => Health::Unknown,
        }
    }
}

impl From<Health> for DomainHealth {
    fn from(h: Health) -> Self {
        match h {
            Health::Healthy => DomainHealth::Healthy,
            Health::Warning => DomainHealth::Warning,
            Health::Unhealthy => DomainHealth::Unhealthy,
            Health::Unknown => DomainHealth::Unknown,
        }
    }
}

pub(crate) fn health(stored: &str) -> Health {
    stored
        .parse::<DomainHealth>()
        .unwrap_or(DomainHealth::Unknown)
        .into()
}

/// Opaque global id of an object: base64url of `Type:uuid`.
pub fn global_id(type_name: &str, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{type_name}:{id}")))
}

/// Splits a global id into its type name and UUID.
fn decode_global_id(id: &str) -> Option<(String, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, raw) = text.split_once(':')?;
    Some((kind.to_string(), Uuid::parse_str(raw).ok()?))
}

/// Decodes a global id of the expected type.
pub fn parse_global_id(expected: &str, id: &str) -> Result<Uuid, ApiError> {
    match decode_global_id(id) {
        Some((kind, uuid)) if kind == expected => Ok(uuid),
        Some((kind, _)) => Err(ApiError::BadUserInput(format!(
            "'{id}' is a {kind} id, not a {expected} id"
        ))),
        None => Err(ApiError::BadUserInput(format!(
            "'{id}' is not a {expected} id"
        ))),
    }
}

fn store<'a>(ctx: &Context<'a>) -> ApiResult<&'a Store> {
    ctx.data::<Store>().map_err(|_| gql(ApiError::Internal))
}

fn loader<'a>(ctx: &Context<'a>) -> ApiResult<&'a DataLoader<CatalogLoader>> {
    ctx.data::<DataLoader<CatalogLoader>>()
        .map_err(|_| gql(ApiError::Internal))
}

/// An item by id through the batching loader.
async fn item(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<ConfigItem>> {
    Ok(loader(ctx)?
        .load_one(ItemKey(id))
        .await
        .map_err(gql)?
        .map(ConfigItem::from))
}

/// A page of the items `filter` selects, in `order`, as a connection whose
/// `totalCount` counts the same filter.
async fn item_page(
    ctx: &Context<'_>,
    filter: ItemFilter,
    order: &[ItemOrder],
    request: stratum_domain::store::PageRequest,
) -> ApiResult<ConfigItemConnection> {
    let page = store(ctx)?
        .list_items_with(&filter, order, &request, item_columns(ctx))
        .await
        .map_err(gql)?;
    Ok(connection(
        page,
        ConfigItem::from,
        ItemListFields { filter },
    ))
}

/// Fields of [`ConfigItem`] that read its JSON members.
const JSON_MEMBER_FIELDS: [&str; 5] = [
    "externalIds",
    "tags",
    "labels",
    "properties",
    "descendantHealth",
];

/// The columns a page of items needs: a summary unless its nodes select a
/// field of [`JSON_MEMBER_FIELDS`] (which otherwise loads its item whole,
/// see [`ConfigItem::whole`]).
fn item_columns(ctx: &Context<'_>) -> ItemColumns {
    let look = ctx.look_ahead();
    let nodes = [look.field("edges").field("node"), look.field("nodes")];
    let members = nodes
        .iter()
        .any(|node| JSON_MEMBER_FIELDS.iter().any(|f| node.field(f).exists()));
    if members {
        ItemColumns::All
    } else {
        ItemColumns::Summary
    }
}

/// The complexity of a connection field: its page size times its
/// children's (SPEC §12: a connection costs `first × child`).
fn page_cost(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let size = first
        .or(last)
        .unwrap_or(stratum_domain::store::page::DEFAULT_PAGE as i32)
        .clamp(1, stratum_domain::store::MAX_PAGE as i32) as usize;
    size.saturating_mul(child.max(1))
}

/// Money stored as micro-units, shown as a decimal string (`"12.345678"`).
fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let fraction = format!("{:06}", abs % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{}", abs / 1_000_000)
    } else {
        format!("{sign}{}.{fraction}", abs / 1_000_000)
    }
}

/// Anything with a global id (Relay).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id."))]
pub enum Node {
    /// A config item.
    ConfigItem(ConfigItem),
    /// A change.
    ConfigChange(ConfigChange),
    /// A scraper.
    Scraper(Scraper),
    /// A scrape run.
    ScrapeRun(ScrapeRun),
    /// A relationship between two items.
    Relationship(Relationship),
    /// A finding about an item.
    Insight(Insight),
    /// A node of a topology.
    Component(Component),
}

/// An item of the catalog.
pub struct ConfigItem(pub std::sync::Arc<config_item::Model>);

impl From<config_item::Model> for ConfigItem {
    fn from(m: config_item::Model) -> Self {
        ConfigItem(std::sync::Arc::new(m))
    }
}

/// An item's cost (SPEC §8), in one currency.
#[derive(SimpleObject)]
pub struct Cost {
    /// ISO currency code.
    currency: String,
    /// Cost per minute over the last day.
    per_minute: Option<String>,
    /// Last day.
    #[graphql(name = "total1d")]
    total_1d: Option<String>,
    /// Last 7 days.
    #[graphql(name = "total7d")]
    total_7d: Option<String>,
    /// Last 30 days.
    #[graphql(name = "total30d")]
    total_30d: Option<String>,
}

/// Open insights of an item, by severity.
#[derive(SimpleObject)]
pub struct InsightCounts {
    /// All open insights.
    total: i64,
    /// Critical.
    critical: i64,
    /// High.
    high: i64,
    /// Medium.
    medium: i64,
    /// Low.
    low: i64,
    /// Info.
    info: i64,
}

impl From<stratum_domain::store::InsightCounts> for InsightCounts {
    fn from(c: stratum_domain::store::InsightCounts) -> Self {
        InsightCounts {
            total: c.total(),
            critical: c.critical,
            high: c.high,
            medium: c.medium,
            low: c.low,
            info: c.info,
        }
    }
}

// The resolvers that await the store or a loader box their work: the
// future async-graphql builds (and moves) for every selected field of every
// item is as large as the largest resolver's, so the page's 400 plain
// fields would otherwise each copy kilobytes.
impl ConfigItem {
    /// The item with its JSON members: itself, or, when it was read as a
    /// summary ([`ItemColumns::Summary`]), its row loaded whole (batched).
    async fn whole(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<std::borrow::Cow<'_, config_item::Model>> {
        if !ItemColumns::is_summary(&self.0) {
            return Ok(std::borrow::Cow::Borrowed(&self.0));
        }
        loader(ctx)?
            .load_one(ItemKey(self.0.id))
            .await
            .map_err(gql)?
            .map(std::borrow::Cow::Owned)
            .ok_or_else(|| gql(ApiError::NotFound(format!("config item {}", self.0.id))))
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "edge fields take Relay page and walk arguments"
)]
#[Object]
impl ConfigItem {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("ConfigItem", self.0.id)
    }
    /// The raw UUID.
    async fn uuid(&self) -> String {
        self.0.id.to_string()
    }
    /// External ids, lower-cased; the first is the primary.
    async fn external_ids(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        let item = self.whole(ctx).await?;
        Ok(serde_json::from_value(item.external_ids.clone()).unwrap_or_default())
    }
    /// e.g. `Kubernetes::Pod`.
    #[graphql(name = "type")]
    async fn item_type(&self) -> &str {
        &self.0.item_type
    }
    /// e.g. `Pod`.
    async fn config_class(&self) -> &str {
        &self.0.config_class
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Namespace, if any.
    async fn namespace(&self) -> Option<&str> {
        self.0.namespace.as_deref()
    }
    /// Tags.
    async fn tags(&self, ctx: &Context<'_>) -> ApiResult<Json<serde_json::Value>> {
        Ok(Json(self.whole(ctx).await?.tags.clone()))
    }
    /// Labels.
    async fn labels(&self, ctx: &Context<'_>) -> ApiResult<Json<serde_json::Value>> {
        Ok(Json(self.whole(ctx).await?.labels.clone()))
    }
    /// Display properties.
    async fn properties(&self, ctx: &Context<'_>) -> ApiResult<Json<serde_json::Value>> {
        Ok(Json(self.whole(ctx).await?.properties.clone()))
    }
    /// The config document, or the part at a JSON pointer (`/spec/replicas`)
    /// or dotted path (`spec.replicas`). Lists read items without their
    /// documents; selecting this field loads them, batched across the page.
    async fn config(
        &self,
        ctx: &Context<'_>,
        path: Option<String>,
    ) -> ApiResult<Option<Json<serde_json::Value>>> {
        Box::pin(async move {
            let loaded;
            let config = if self.0.config.is_null() {
                loaded = loader(ctx)?
                    .load_one(ConfigDocKey(self.0.id))
                    .await
                    .map_err(gql)?
                    .unwrap_or(serde_json::Value::Null);
                &loaded
            } else {
                &self.0.config
            };
            Ok(match path {
                None => Some(Json(config.clone())),
                Some(p) => {
                    let pointer = if p.starts_with('/') || p.is_empty() {
                        p
                    } else {
                        format!("/{}", p.replace('.', "/"))
                    };
                    config.pointer(&pointer).cloned().map(Json)
                }
            })
        })
        .await
    }
    /// Health.
    async fn health(&self) -> Health {
        health(&self.0.health)
    }
    /// Worst of its own health and its hard descendants'.
    async fn rolled_up_health(&self) -> Health {
        health(&self.0.rolled_up_health)
    }
    /// Human-readable status.
    async fn status(&self) -> Option<&str> {
        self.0.status.as_deref()
    }
    /// Reconciled flag.
    async fn ready(&self) -> bool {
        self.0.ready
    }
    /// Health message.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Where it came from.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// The hard parent.
    async fn parent(&self, ctx: &Context<'_>) -> ApiResult<Option<ConfigItem>> {
        Box::pin(async move {
            let Some(parent) = self.0.parent_id else {
                return Ok(None);
            };
            item(ctx, parent).await
        })
        .await
    }
    /// Hard ancestors, the root first.
    async fn ancestors(&self, ctx: &Context<'_>) -> ApiResult<Vec<ConfigItem>> {
        Box::pin(async move {
            let ids: Vec<Uuid> = self
                .0
                .path
                .split('.')
                .filter_map(|s| Uuid::parse_str(s).ok())
                .collect();
            let mut found = loader(ctx)?
                .load_many(ids.iter().copied().map(ItemKey))
                .await
                .map_err(gql)?;
            Ok(ids
                .into_iter()
                .filter_map(|id| found.remove(&ItemKey(id)).map(ConfigItem::from))
                .collect())
        })
        .await
    }
    /// Hard children, by name.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn children(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<ConfigItemConnection> {
        Box::pin(async move {
            let filter = ItemFilter {
                parent_id: Some(self.0.id),
                ..ItemFilter::default()
            };
            item_page(ctx, filter, &[], page_request(first, after, last, before)?).await
        })
        .await
    }
    /// Items reached by a relationship walk from this one (itself
    /// excluded), nearest first (by depth, then id); each edge says how far
    /// and which way.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn related_items(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] direction: Direction,
        #[graphql(default)] relation: RelationKind,
        #[graphql(default = 1)] depth: i32,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<RelatedItemConnection> {
        Box::pin(async move {
            if !(1..=10).contains(&depth) {
                return Err(gql(ApiError::BadUserInput(format!(
                    "depth must be between 1 and 10, got {depth}"
                ))));
            }
            let request = page_request(first, after, last, before)?;
            let mut walk = TraversalQuery::new(vec![self.0.id]);
            walk.direction = direction.into();
            walk.relation = relation.into();
            walk.depth = depth as u32;
            let reached = store(ctx)?.traverse(&walk).await.map_err(gql)?;
            let total = reached.nodes.len() as i64;
            let rows: Vec<(String, stratum_domain::store::GraphNode)> = reached
                .nodes
                .into_iter()
                .map(|n| {
                    let cursor = URL_SAFE_NO_PAD.encode(format!("{}:{}", n.depth, n.id));
                    (cursor, n)
                })
                .collect();
            let page = page_in_memory(rows, &request)?;
            // Only the page's items are loaded.
            let mut found = loader(ctx)?
                .load_many(page.items.iter().map(|(_, n)| ItemKey(n.id)))
                .await
                .map_err(gql)?;
            let mut conn = Connection::with_additional_fields(
                page.has_previous_page,
                page.has_next_page,
                RelatedListFields {
                    total_count: total,
                    truncated: reached.truncated,
                },
            );
            for (cursor, n) in page.items {
                if let Some(m) = found.remove(&ItemKey(n.id)) {
                    conn.edges.push(Edge::with_additional_fields(
                        cursor,
                        ConfigItem::from(m),
                        RelatedEdgeFields {
                            depth: n.depth as i32,
                            direction: match n.direction {
                                stratum_domain::store::Direction::Incoming => Direction::Incoming,
                                _ => Direction::Outgoing,
                            },
                        },
                    ));
                }
            }
            Ok(conn)
        })
        .await
    }
    /// Changes of this item, newest first. The plain `first: n` form of a
    /// list page is batched across the page's items.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn changes(
        &self,
        ctx: &Context<'_>,
        filter: Option<ChangeFilterInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<ConfigChangeConnection> {
        Box::pin(async move {
            let request = page_request(first, after, last, before)?;
            let mut domain_filter = change_filter(ctx, filter).await?;
            let plain = domain_filter.is_unrestricted()
                && request.after.is_none()
                && request.before.is_none()
                && request.last.is_none();
            domain_filter.config_ids = vec![self.0.id];
            if plain {
                let n = request
                    .first
                    .unwrap_or(stratum_domain::store::page::DEFAULT_PAGE);
                let rows = loader(ctx)?
                    .load_one(LatestChangesKey {
                        config_id: self.0.id,
                        limit: n + 1,
                    })
                    .await
                    .map_err(gql)?
                    .unwrap_or_default();
                return Ok(connection(
                    latest_page(rows, n),
                    ConfigChange,
                    ChangeListFields {
                        filter: domain_filter,
                    },
                ));
            }
            let page = store(ctx)?
                .list_changes(&domain_filter, &request)
                .await
                .map_err(gql)?;
            Ok(connection(
                page,
                ConfigChange,
                ChangeListFields {
                    filter: domain_filter,
                },
            ))
        })
        .await
    }
    /// Insights of this item, most recently observed first; open ones by
    /// default.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn insights(
        &self,
        ctx: &Context<'_>,
        status: Option<Vec<InsightStatus>>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<InsightConnection> {
        Box::pin(async move {
            let request = page_request(first, after, last, before)?;
            let mut filter = insight_filter(Some(InsightFilter {
                statuses: status,
                ..InsightFilter::default()
            }))?;
            filter.config_ids = vec![self.0.id];
            let page = store(ctx)?
                .list_insights(&filter, &request)
                .await
                .map_err(gql)?;
            Ok(connection(page, Insight, InsightListFields { filter }))
        })
        .await
    }
    /// Open insights, by severity.
    async fn insight_counts(&self, ctx: &Context<'_>) -> ApiResult<InsightCounts> {
        Box::pin(async move {
            let c = loader(ctx)?
                .load_one(InsightCountKey(self.0.id))
                .await
                .map_err(gql)?
                .unwrap_or_default();
            Ok(c.into())
        })
        .await
    }
    /// The topology components this item is attached to, by name.
    async fn components(&self, ctx: &Context<'_>) -> ApiResult<Vec<Component>> {
        Box::pin(async move { components_of(ctx, ItemComponentsKey(self.0.id)).await }).await
    }
    /// Cost in the item's currency; null when it has none (or several).
    async fn cost(&self) -> Option<Cost> {
        let currency = self.0.currency.clone()?;
        Some(Cost {
            currency,
            per_minute: self.0.cost_per_minute.map(money),
            total_1d: self.0.cost_total_1d.map(money),
            total_7d: self.0.cost_total_7d.map(money),
            total_30d: self.0.cost_total_30d.map(money),
        })
    }
    /// Cost totals, one entry per currency (several only when its rows
    /// are billed in several).
    async fn costs(&self, ctx: &Context<'_>) -> ApiResult<Vec<Cost>> {
        Box::pin(async move {
            let totals = loader(ctx)?
                .load_one(ItemCostsKey(self.0.id))
                .await
                .map_err(gql)?
                .unwrap_or_default();
            Ok(totals
                .into_iter()
                .map(|t| Cost {
                    currency: t.currency,
                    per_minute: Some(money(t.per_minute)),
                    total_1d: Some(money(t.total_1d)),
                    total_7d: Some(money(t.total_7d)),
                    total_30d: Some(money(t.total_30d)),
                })
                .collect())
        })
        .await
    }
    /// Spend of the item and its hard descendants over `window`, one entry
    /// per currency.
    async fn subtree_cost(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "CostWindow::D30")] window: CostWindow,
    ) -> ApiResult<Vec<Money>> {
        Box::pin(async move {
            let spend = store(ctx)?
                .subtree_cost(self.0.id, window.into(), Utc::now())
                .await
                .map_err(gql)?;
            Ok(spend.into_iter().map(Money::from).collect())
        })
        .await
    }
    /// Health counts of its live hard descendants.
    async fn descendant_health(&self, ctx: &Context<'_>) -> ApiResult<HealthCounts> {
        let item = self.whole(ctx).await?;
        let counts = stratum_domain::store::rollup::decode_counts(&item.descendant_health);
        Ok(HealthCounts {
            unknown: counts[0],
            healthy: counts[1],
            warning: counts[2],
            unhealthy: counts[3],
        })
    }
    /// The scraper that owns it.
    async fn scraper(&self, ctx: &Context<'_>) -> ApiResult<Option<Scraper>> {
        Box::pin(async move {
            Ok(loader(ctx)?
                .load_one(ScraperKey(self.0.scraper_id))
                .await
                .map_err(gql)?
                .map(Scraper))
        })
        .await
    }
    /// First stored.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Last config change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Last seen by a scrape.
    async fn last_scraped_at(&self) -> DateTime<Utc> {
        self.0.last_scraped_at
    }
    /// Soft-deletion time.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

/// How an item of a walk was reached.
#[derive(SimpleObject)]
pub struct RelatedEdgeFields {
    /// Hops from the root (the shortest walk).
    depth: i32,
    /// The walk that reached it: `INCOMING` (upstream) or `OUTGOING`.
    direction: Direction,
}

/// Fields of a walk's list beside its edges.
#[derive(SimpleObject)]
pub struct RelatedListFields {
    /// Items the walk reached, over all pages.
    total_count: i64,
    /// The walk's node cap cut it short.
    truncated: bool,
}

/// Names the walk's connection `RelatedItemConnection`.
pub struct RelatedItemConnectionName;

impl ConnectionNameType for RelatedItemConnectionName {
    fn type_name<T: OutputType>() -> String {
        "RelatedItemConnection".to_string()
    }
}

/// Names the walk's edges `RelatedItemEdge`.
pub struct RelatedItemEdgeName;

impl EdgeNameType for RelatedItemEdgeName {
    fn type_name<T: OutputType>() -> String {
        "RelatedItemEdge".to_string()
    }
}

/// Items a relationship walk reached, with depth and direction on each edge.
pub type RelatedItemConnection = Connection<
    String,
    ConfigItem,
    RelatedListFields,
    RelatedEdgeFields,
    RelatedItemConnectionName,
    RelatedItemEdgeName,
>;

/// A change of an item.
pub struct ConfigChange(pub config_change::Model);

#[Object]
impl ConfigChange {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("ConfigChange", self.0.id)
    }
    /// The item changed.
    async fn config(&self, ctx: &Context<'_>) -> ApiResult<Option<ConfigItem>> {
        item(ctx, self.0.config_id).await
    }
    /// e.g. `diff`, `Unhealthy`.
    async fn change_type(&self) -> &str {
        &self.0.change_type
    }
    /// `info…critical`.
    async fn severity(&self) -> &str {
        &self.0.severity
    }
    /// Where the change came from.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// One line.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// RFC 7386 merge patch.
    async fn patches(&self) -> Option<Json<serde_json::Value>> {
        self.0.patches.clone().map(Json)
    }
    /// Unified diff.
    async fn diff(&self) -> Option<&str> {
        self.0.diff.as_deref()
    }
    /// Structured details.
    async fn details(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.clone().map(Json)
    }
    /// Times observed.
    async fn count(&self) -> i64 {
        self.0.count
    }
    /// First observed.
    async fn first_observed(&self) -> DateTime<Utc> {
        self.0.first_observed
    }
    /// Latest observation.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Who or what recorded it.
    async fn created_by(&self) -> Option<&str> {
        self.0.created_by.as_deref()
    }
}

/// A scraper (a ScrapeConfig).
pub struct Scraper(pub scraper::Model);

#[Object]
impl Scraper {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("Scraper", self.0.id)
    }
    /// The raw UUID.
    async fn uuid(&self) -> String {
        self.0.id.to_string()
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Namespace.
    async fn namespace(&self) -> &str {
        &self.0.namespace
    }
    /// `file`, `crd` or `api`.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// The spec as written, secrets elided.
    async fn spec(&self) -> Json<serde_json::Value> {
        Json(self.0.spec.clone())
    }
    /// The latest runs, newest first (at most 100 are kept).
    async fn runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: i32,
    ) -> ApiResult<Vec<ScrapeRun>> {
        if !(1..=100).contains(&first) {
            return Err(gql(ApiError::BadUserInput(format!(
                "first must be between 1 and 100, got {first}"
            ))));
        }
        Ok(store(ctx)?
            .list_runs(self.0.id, first as u64)
            .await
            .map_err(gql)?
            .into_iter()
            .map(ScrapeRun)
            .collect())
    }
}

/// One run of a scraper.
pub struct ScrapeRun(pub scrape_run::Model);

#[Object]
impl ScrapeRun {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("ScrapeRun", self.0.id)
    }
    /// `full`, `incremental` or `push`.
    async fn mode(&self) -> &str {
        &self.0.mode
    }
    /// `running`, `succeeded`, `partial`, `failed` or `panicked`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Start.
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    /// End.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// Items scraped, created, updated, unchanged and deleted, changes
    /// recorded and edges left unresolved.
    async fn counts(&self) -> Json<serde_json::Value> {
        Json(serde_json::json!({
            "scraped": self.0.items_scraped,
            "created": self.0.items_created,
            "updated": self.0.items_updated,
            "unchanged": self.0.items_unchanged,
            "deleted": self.0.items_deleted,
            "changes": self.0.changes_created,
            "edgesUnresolved": self.0.edges_unresolved,
        }))
    }
    /// The safety valve blocked deletions.
    async fn deletions_blocked(&self) -> bool {
        self.0.deletions_blocked
    }
    /// Errors (the first 100).
    async fn errors(&self) -> Vec<String> {
        serde_json::from_value(self.0.errors.clone()).unwrap_or_default()
    }
    /// Warnings.
    async fn warnings(&self) -> Vec<String> {
        serde_json::from_value(self.0.warnings.clone()).unwrap_or_default()
    }
}

/// An edge of the graph: `from` is upstream of `to` (SPEC §4).
pub struct Relationship(pub config_relationship::Model);

#[Object]
impl Relationship {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("Relationship", self.0.id)
    }
    /// The upstream item.
    async fn from(&self, ctx: &Context<'_>) -> ApiResult<Option<ConfigItem>> {
        item(ctx, self.0.from_id).await
    }
    /// The downstream item.
    async fn to(&self, ctx: &Context<'_>) -> ApiResult<Option<ConfigItem>> {
        item(ctx, self.0.to_id).await
    }
    /// The rule that made it, e.g. `ReplicaSetPod`, `NodePod`.
    async fn relation(&self) -> &str {
        &self.0.relation
    }
    /// A parent/child edge.
    async fn hard(&self) -> bool {
        self.0.hard
    }
    /// The raw UUID of the upstream item.
    async fn from_uuid(&self) -> String {
        self.0.from_id.to_string()
    }
    /// The raw UUID of the downstream item.
    async fn to_uuid(&self) -> String {
        self.0.to_id.to_string()
    }
}

/// A node of a [`Graph`].
#[derive(SimpleObject)]
pub struct GraphNode {
    /// The item.
    item: ConfigItem,
    /// Hops from the nearest root (0 for a root).
    depth: i32,
    /// How it was reached: `BOTH` for a root.
    direction: Direction,
}

/// The subgraph a walk reached: its items and the edges among them.
#[derive(SimpleObject)]
pub struct Graph {
    /// Roots first, then by depth.
    nodes: Vec<GraphNode>,
    /// Live edges between nodes of the graph.
    edges: Vec<Relationship>,
    /// The node limit cut the walk short.
    truncated: bool,
}

/// A value and how many carry it.
#[derive(SimpleObject)]
pub struct FacetValue {
    /// The value.
    value: String,
    /// How many items (or, for change types and analyzers, rows).
    count: i64,
}

/// Value counts over the items a filter selects, for filter pickers.
pub struct Facets {
    filter: ItemFilter,
}

impl Facets {
    async fn count(&self, ctx: &Context<'_>, facet: Facet) -> ApiResult<Vec<FacetValue>> {
        Ok(store(ctx)?
            .facet(&self.filter, &facet)
            .await
            .map_err(gql)?
            .into_iter()
            .map(|v| FacetValue {
                value: v.value,
                count: v.count,
            })
            .collect())
    }
}

#[Object]
impl Facets {
    /// Config types.
    async fn config_types(&self, ctx: &Context<'_>) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::Types).await
    }
    /// Config classes.
    async fn config_classes(&self, ctx: &Context<'_>) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::Classes).await
    }
    /// Tag keys.
    async fn tag_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::TagKeys).await
    }
    /// Values of one tag.
    async fn tag_values(&self, ctx: &Context<'_>, key: String) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::TagValues(key)).await
    }
    /// Label keys.
    async fn label_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::LabelKeys).await
    }
    /// Values of one label.
    async fn label_values(&self, ctx: &Context<'_>, key: String) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::LabelValues(key)).await
    }
    /// Change types of the items' changes.
    async fn change_types(&self, ctx: &Context<'_>) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::ChangeTypes).await
    }
    /// Analyzers of the items' open insights.
    async fn analyzers(&self, ctx: &Context<'_>) -> ApiResult<Vec<FacetValue>> {
        self.count(ctx, Facet::Analyzers).await
    }
}

/// Items counted by health.
#[derive(SimpleObject)]
pub struct HealthCounts {
    /// Healthy.
    healthy: i64,
    /// Warning.
    warning: i64,
    /// Unhealthy.
    unhealthy: i64,
    /// Unknown.
    unknown: i64,
}

impl From<HealthTally> for HealthCounts {
    fn from(t: HealthTally) -> Self {
        HealthCounts {
            healthy: t.healthy,
            warning: t.warning,
            unhealthy: t.unhealthy,
            unknown: t.unknown,
        }
    }
}

/// An amount in one currency (never summed across currencies).
#[derive(SimpleObject)]
pub struct Money {
    /// Decimal string.
    amount: String,
    /// ISO currency code.
    currency: String,
}

impl From<stratum_domain::store::costs::Money> for Money {
    fn from(m: stratum_domain::store::costs::Money) -> Self {
        Money {
            amount: money(m.amount),
            currency: m.currency,
        }
    }
}

/// A cost window ending now.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CostWindow {
    /// The last day.
    D1,
    /// The last 7 days.
    D7,
    /// The last 30 days.
    D30,
}

impl From<CostWindow> for stratum_domain::store::costs::CostWindow {
    fn from(w: CostWindow) -> Self {
        use stratum_domain::store::costs::CostWindow as W;
        match w {
            CostWindow::D1 => W::D1,
            CostWindow::D7 => W::D7,
            CostWindow::D30 => W::D30,
        }
    }
}

/// One group of a cost report.
#[derive(SimpleObject)]
pub struct CostGroup {
    /// The group's value of each `groupBy` key.
    key: Json<serde_json::Value>,
    /// Items of the group with spend in the window.
    items: i64,
    /// Spend, one entry per currency.
    cost: Vec<Money>,
}

/// Spend by group over a window, and the spend no item claims.
#[derive(SimpleObject)]
pub struct CostReport {
    /// Groups, sorted by key.
    groups: Vec<CostGroup>,
    /// Spend of cost rows that match no item, per currency.
    unattributed: Vec<Money>,
    /// More than one currency appears (amounts are never summed across them).
    mixed_currency: bool,
}

/// One group of a catalog summary.
#[derive(SimpleObject)]
#[graphql(name = "SummaryGroup")]
pub struct SummaryGroupObject {
    /// The group's value of each `groupBy` key, e.g. `{"type": "Kubernetes::Pod"}`.
    key: Json<serde_json::Value>,
    /// Items in the group.
    count: i64,
    /// Items by their own health.
    health: HealthCounts,
    /// Items by rolled-up health.
    rolled_up_health: HealthCounts,
    /// Changes of the items since `changesSince`.
    changes: i64,
    /// Open insights of the items, by severity.
    insights: InsightCounts,
    /// 30-day cost, one entry per currency.
    cost: Vec<Money>,
}

/// A finding about an item (SPEC §7).
pub struct Insight(pub insight::Model);

#[Object]
impl Insight {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("Insight", self.0.id)
    }
    /// The item it is about.
    async fn config(&self, ctx: &Context<'_>) -> ApiResult<Option<ConfigItem>> {
        item(ctx, self.0.config_id).await
    }
    /// The rule or tool that found it.
    async fn analyzer(&self) -> &str {
        &self.0.analyzer
    }
    /// `security`, `cost`, `reliability`, ….
    #[graphql(name = "type")]
    async fn analysis_type(&self) -> &str {
        &self.0.analysis_type
    }
    /// `info…critical`.
    async fn severity(&self) -> &str {
        &self.0.severity
    }
    /// `open`, `resolved` or `silenced`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// One line.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// The details a person acts on.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// Structured details.
    async fn details(&self) -> Json<serde_json::Value> {
        Json(self.0.details.clone())
    }
    /// First observed.
    async fn first_observed(&self) -> DateTime<Utc> {
        self.0.first_observed
    }
    /// Last observed.
    async fn last_observed(&self) -> DateTime<Utc> {
        self.0.last_observed
    }
    /// Silenced until.
    async fn silenced_until(&self) -> Option<DateTime<Utc>> {
        self.0.silenced_until
    }
}

/// The fields of a list beside its edges when they are only a lazily
/// computed `totalCount`: the filter the list ran with, counted by `$count`.
macro_rules! counted_list_fields {
    ($name:ident, $filter:ty, $count:ident, $doc:literal) => {
        #[doc = "Fields of a list beside its edges."]
        pub struct $name {
            filter: $filter,
        }

        #[Object]
        impl $name {
            #[doc = $doc]
            async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<i64> {
                Ok(store(ctx)?.$count(&self.filter).await.map_err(gql)? as i64)
            }
        }
    };
}

/// A node of a topology (SPEC §9): a service, database or team made of
/// other components and of the config items its selectors attach.
pub struct Component(pub component::Model);

/// A list of components through the loader.
async fn components_of<K>(ctx: &Context<'_>, key: K) -> ApiResult<Vec<Component>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    CatalogLoader: async_graphql::dataloader::Loader<
            K,
            Value = Vec<component::Model>,
            Error = super::loaders::LoadError,
        >,
{
    Ok(loader(ctx)?
        .load_one(key)
        .await
        .map_err(gql)?
        .unwrap_or_default()
        .into_iter()
        .map(Component)
        .collect())
}

#[Object]
impl Component {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("Component", self.0.id)
    }
    /// The raw UUID.
    async fn uuid(&self) -> String {
        self.0.id.to_string()
    }
    /// The topology that defines it (a raw UUID).
    async fn topology_id(&self) -> String {
        self.0.topology_id.to_string()
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Component type, e.g. `Service` or `Database`.
    #[graphql(name = "type")]
    async fn component_type(&self) -> &str {
        &self.0.component_type
    }
    /// Own health.
    async fn health(&self) -> Health {
        health(&self.0.health)
    }
    /// Worst of its own health, its children's and its attached items'.
    async fn rolled_up_health(&self) -> Health {
        health(&self.0.rolled_up_health)
    }
    /// Human-readable status.
    async fn status(&self) -> Option<&str> {
        self.0.status.as_deref()
    }
    /// Display properties.
    async fn properties(&self) -> Json<serde_json::Value> {
        Json(self.0.properties.clone())
    }
    /// Health counts over children and attached items, and open insights.
    async fn summary(&self) -> Json<serde_json::Value> {
        Json(self.0.summary.clone())
    }
    /// Open insights of the distinct items attached anywhere in its
    /// subtree, by severity.
    async fn insight_counts(&self, ctx: &Context<'_>) -> ApiResult<InsightCounts> {
        let (c, _) = store(ctx)?
            .component_activity(self.0.id, Utc::now())
            .await
            .map_err(gql)?;
        Ok(c.into())
    }
    /// Changes since `since` (a duration like `7d`) of the distinct items
    /// attached anywhere in its subtree.
    async fn change_count(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "\"7d\".to_string()")] since: String,
    ) -> ApiResult<i64> {
        let window = humantime::parse_duration(&since)
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .ok_or_else(|| {
                gql(ApiError::BadUserInput(format!(
                    "since: '{since}' is not a duration like 7d or 12h"
                )))
            })?;
        let (_, changes) = store(ctx)?
            .component_activity(self.0.id, Utc::now() - window)
            .await
            .map_err(gql)?;
        Ok(changes)
    }
    /// Spend of the distinct items attached anywhere in its subtree over
    /// `window`, one entry per currency.
    async fn cost(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "CostWindow::D30")] window: CostWindow,
    ) -> ApiResult<Vec<Money>> {
        let spend = store(ctx)?
            .component_cost(self.0.id, window.into(), Utc::now())
            .await
            .map_err(gql)?;
        Ok(spend.into_iter().map(Money::from).collect())
    }
    /// The parent in its topology's tree.
    async fn parent(&self, ctx: &Context<'_>) -> ApiResult<Option<Component>> {
        let Some(parent) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(loader(ctx)?
            .load_one(ComponentKey(parent))
            .await
            .map_err(gql)?
            .map(Component))
    }
    /// Live child components, its own and those its selectors adopted, by
    /// name.
    async fn children(&self, ctx: &Context<'_>) -> ApiResult<Vec<Component>> {
        components_of(ctx, ComponentChildrenKey(self.0.id)).await
    }
    /// Config items its selectors attached, by name.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn config_items(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<ConfigItemConnection> {
        let filter = ItemFilter {
            component_id: Some(self.0.id),
            ..ItemFilter::default()
        };
        item_page(ctx, filter, &[], page_request(first, after, last, before)?).await
    }
    /// First stored.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Last updated.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Soft-deletion time.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

counted_list_fields!(
    ComponentListFields,
    stratum_domain::store::ComponentFilter,
    count_components,
    "Components matching the filter, over all pages (computed only when selected)."
);

/// A page of components.
pub type ComponentConnection = Connection<String, Component, ComponentListFields>;

counted_list_fields!(
    InsightListFields,
    stratum_domain::store::InsightFilter,
    count_insights,
    "Insights matching the filter, over all pages (computed only when selected)."
);

/// A page of insights.
pub type InsightConnection = Connection<String, Insight, InsightListFields>;

counted_list_fields!(
    ItemListFields,
    ItemFilter,
    count_items,
    "Items matching the filter, over all pages (computed only when selected)."
);

/// A page of config items.
pub type ConfigItemConnection = Connection<String, ConfigItem, ItemListFields>;

/// Fields of a list of changes beside its edges.
pub struct ChangeListFields {
    filter: ChangeFilter,
}

#[Object]
impl ChangeListFields {
    /// Changes matching the filter, over all pages (computed only when selected).
    async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        Ok(store(ctx)?
            .count_matching_changes(&self.filter)
            .await
            .map_err(gql)? as i64)
    }
    /// Changes matching the filter by type, over all pages, most frequent first.
    async fn change_type_counts(&self, ctx: &Context<'_>) -> ApiResult<Vec<FacetValue>> {
        Ok(store(ctx)?
            .count_change_types(&self.filter)
            .await
            .map_err(gql)?
            .into_iter()
            .map(|v| FacetValue {
                value: v.value,
                count: v.count,
            })
            .collect())
    }
}

/// A page of changes.
pub type ConfigChangeConnection = Connection<String, ConfigChange, ChangeListFields>;

/// Loads one row through the loader and wraps it as a node.
async fn one<K, M>(
    loader: &DataLoader<CatalogLoader>,
    key: K,
    wrap: impl FnOnce(M) -> Node,
) -> ApiResult<Option<Node>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    M: Send + Sync + Clone + 'static,
    CatalogLoader:
        async_graphql::dataloader::Loader<K, Value = M, Error = super::loaders::LoadError>,
{
    Ok(loader.load_one(key).await.map_err(gql)?.map(wrap))
}

async fn load_node(ctx: &Context<'_>, id: &str) -> ApiResult<Option<Node>> {
    let (kind, uuid) = decode_global_id(id)
        .ok_or_else(|| gql(ApiError::BadUserInput(format!("'{id}' is not a global id"))))?;
    let loader = loader(ctx)?;
    let node = match kind.as_str() {
        "ConfigItem" => {
            one(loader, ItemKey(uuid), |m| {
                Node::ConfigItem(ConfigItem::from(m))
            })
            .await?
        }
        "ConfigChange" => {
            one(loader, ChangeKey(uuid), |m| {
                Node::ConfigChange(ConfigChange(m))
            })
            .await?
        }
        "Scraper" => one(loader, ScraperKey(uuid), |m| Node::Scraper(Scraper(m))).await?,
        "ScrapeRun" => one(loader, RunKey(uuid), |m| Node::ScrapeRun(ScrapeRun(m))).await?,
        "Insight" => one(loader, InsightKey(uuid), |m| Node::Insight(Insight(m))).await?,
        "Component" => {
            one(loader, ComponentKey(uuid), |m| {
                Node::Component(Component(m))
            })
            .await?
        }
        "Relationship" => {
            one(loader, RelationshipKey(uuid), |m| {
                Node::Relationship(Relationship(m))
            })
            .await?
        }
        other => {
            return Err(gql(ApiError::BadUserInput(format!(
                "'{id}' names an unknown type '{other}'"
            ))));
        }
    };
    Ok(node)
}

/// The query root.
pub struct QueryRoot;

#[expect(
    clippy::too_many_arguments,
    reason = "list fields take Relay page, filter, search and order arguments"
)]
#[Object]
impl QueryRoot {
    /// Any object by global id; null (with a `NOT_FOUND` error) when it does
    /// not exist.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Node>> {
        match load_node(ctx, &id).await? {
            Some(node) => Ok(Some(node)),
            None => Err(gql(ApiError::NotFound(format!("node {}", id.as_str())))),
        }
    }

    /// Objects by global id, in order; null for each that does not exist.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> ApiResult<Vec<Option<Node>>> {
        if ids.len() > 100 {
            return Err(gql(ApiError::BadUserInput(format!(
                "at most 100 ids, got {}",
                ids.len()
            ))));
        }
        let lookups = ids.iter().map(|id| load_node(ctx, id));
        futures_util::future::try_join_all(lookups).await
    }

    /// One item by global `id` or raw `uuid`; null when it does not exist.
    async fn config_item(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        uuid: Option<String>,
    ) -> ApiResult<Option<ConfigItem>> {
        let raw = match (id, uuid) {
            (Some(id), None) => parse_global_id("ConfigItem", &id).map_err(gql)?,
            (None, Some(u)) => item_uuid(&u)?,
            _ => {
                return Err(gql(ApiError::BadUserInput(
                    "give exactly one of id or uuid".into(),
                )));
            }
        };
        match item(ctx, raw).await? {
            Some(found) => Ok(Some(found)),
            None => Err(gql(ApiError::NotFound("config item".into()))),
        }
    }

    /// Items as a Relay connection, ordered by `orderBy` (name by default,
    /// always ending on id). `search` is the search language
    /// (`type=Kubernetes::Pod health=unhealthy,warning tags.team=payments
    /// name=api-* updated>now-1d`), ANDed with `filter`.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn config_items(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConfigFilter>,
        search: Option<String>,
        order_by: Option<Vec<ConfigOrder>>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<ConfigItemConnection> {
        let request = page_request(first, after, last, before)?;
        let filter = item_filter(filter, search.as_deref())?;
        let order: Vec<ItemOrder> = order_by
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect();
        item_page(ctx, filter, &order, request).await
    }

    /// Changes across the catalog, newest first: of some items and, with
    /// `recursive`, of what a walk from them reaches.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn config_changes(
        &self,
        ctx: &Context<'_>,
        filter: Option<ChangeFilterInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<ConfigChangeConnection> {
        let request = page_request(first, after, last, before)?;
        let filter = change_filter(ctx, filter).await?;
        let page = store(ctx)?
            .list_changes(&filter, &request)
            .await
            .map_err(gql)?;
        Ok(connection(page, ConfigChange, ChangeListFields { filter }))
    }

    /// The subgraph around `rootIds`: a walk (SPEC §4) plus the live edges
    /// among everything it reached.
    async fn graph(
        &self,
        ctx: &Context<'_>,
        root_ids: Vec<ID>,
        #[graphql(default)] direction: Direction,
        #[graphql(default = 3)] depth: i32,
        #[graphql(default)] relation: RelationKind,
        #[graphql(default = 5000)] node_limit: i32,
        #[graphql(default = false)] include_deleted: bool,
    ) -> ApiResult<Graph> {
        if root_ids.is_empty() || root_ids.len() > 100 {
            return Err(gql(ApiError::BadUserInput(format!(
                "rootIds must hold 1 to 100 ids, got {}",
                root_ids.len()
            ))));
        }
        if !(1..=10).contains(&depth) {
            return Err(gql(ApiError::BadUserInput(format!(
                "depth must be between 1 and 10, got {depth}"
            ))));
        }
        if !(1..=stratum_domain::store::graph::MAX_NODES as i32).contains(&node_limit) {
            return Err(gql(ApiError::BadUserInput(format!(
                "nodeLimit must be between 1 and {}, got {node_limit}",
                stratum_domain::store::graph::MAX_NODES
            ))));
        }
        let roots = root_ids
            .iter()
            .map(|id| item_uuid(id))
            .collect::<ApiResult<Vec<Uuid>>>()?;
        let mut walk = TraversalQuery::new(roots.clone());
        walk.direction = direction.into();
        walk.relation = relation.into();
        walk.depth = depth as u32;
        walk.node_limit = node_limit as usize;
        walk.include_deleted = include_deleted;
        let store = store(ctx)?;
        let reached = store.traverse(&walk).await.map_err(gql)?;
        let mut ids: Vec<Uuid> = roots.clone();
        ids.extend(reached.nodes.iter().map(|n| n.id));
        let mut items = loader(ctx)?
            .load_many(ids.iter().copied().map(ItemKey))
            .await
            .map_err(gql)?;
        let edges = store
            .edges_among(&ids, relation.into())
            .await
            .map_err(gql)?;
        let mut nodes: Vec<GraphNode> = Vec::with_capacity(ids.len());
        for root in &roots {
            if let Some(m) = items.remove(&ItemKey(*root)) {
                nodes.push(GraphNode {
                    item: ConfigItem::from(m),
                    depth: 0,
                    direction: Direction::Both,
                });
            }
        }
        if nodes.is_empty() {
            return Err(gql(ApiError::NotFound("root items".into())));
        }
        for n in reached.nodes {
            if let Some(m) = items.remove(&ItemKey(n.id)) {
                nodes.push(GraphNode {
                    item: ConfigItem::from(m),
                    depth: n.depth as i32,
                    direction: match n.direction {
                        stratum_domain::store::Direction::Incoming => Direction::Incoming,
                        _ => Direction::Outgoing,
                    },
                });
            }
        }
        Ok(Graph {
            nodes,
            edges: edges.into_iter().map(Relationship).collect(),
            truncated: reached.truncated,
        })
    }

    /// Insights across the catalog, most recently observed first; open ones
    /// unless `filter.statuses` says otherwise.
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn insights(
        &self,
        ctx: &Context<'_>,
        filter: Option<InsightFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<InsightConnection> {
        let request = page_request(first, after, last, before)?;
        let filter = insight_filter(filter)?;
        let page = store(ctx)?
            .list_insights(&filter, &request)
            .await
            .map_err(gql)?;
        Ok(connection(page, Insight, InsightListFields { filter }))
    }

    /// Components of the topologies, by name; every component unless
    /// `filter` says otherwise (`rootsOnly` for the tops of the trees).
    #[graphql(complexity = "page_cost(first, last, child_complexity)")]
    async fn components(
        &self,
        ctx: &Context<'_>,
        filter: Option<ComponentFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<ComponentConnection> {
        let request = page_request(first, after, last, before)?;
        let filter = component_filter(filter)?;
        let page = store(ctx)?
            .list_components(&filter, &request)
            .await
            .map_err(gql)?;
        Ok(connection(page, Component, ComponentListFields { filter }))
    }

    /// The components of a topology (its id, or `namespace/name`) at most
    /// `depth` levels deep, top level first; walk on with `children`.
    async fn topology(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(default = 3)] depth: i32,
    ) -> ApiResult<Vec<Component>> {
        if !(1..=20).contains(&depth) {
            return Err(gql(ApiError::BadUserInput(format!(
                "depth must be between 1 and 20, got {depth}"
            ))));
        }
        let topology = match Uuid::parse_str(&id) {
            Ok(u) => u,
            Err(_) => match id.split_once('/') {
                Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                    stratum_domain::store::topology::topology_id(namespace, name)
                }
                _ => {
                    return Err(gql(ApiError::BadUserInput(format!(
                        "'{id}' is neither a topology id nor namespace/name"
                    ))));
                }
            },
        };
        Ok(store(ctx)?
            .topology_components(topology, depth as usize)
            .await
            .map_err(gql)?
            .into_iter()
            .map(Component)
            .collect())
    }

    /// Value counts over the items `filter` and `search` select.
    async fn facets(
        &self,
        filter: Option<ConfigFilter>,
        search: Option<String>,
    ) -> ApiResult<Facets> {
        Ok(Facets {
            filter: item_filter(filter, search.as_deref())?,
        })
    }

    /// Items grouped by up to three of `type`, `class`, `namespace`,
    /// `health`, `tag:<key>` and `label:<key>`, with health, recent
    /// changes, open insights and cost per group.
    async fn catalog_summary(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "vec![\"type\".to_string()]")] group_by: Vec<String>,
        filter: Option<ConfigFilter>,
        search: Option<String>,
        #[graphql(default_with = "\"7d\".to_string()")] changes_since: String,
    ) -> ApiResult<Vec<SummaryGroupObject>> {
        let keys = group_by
            .iter()
            .map(|k| GroupKey::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(gql)?;
        let window = humantime::parse_duration(&changes_since)
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .ok_or_else(|| {
                gql(ApiError::BadUserInput(format!(
                    "changesSince: '{changes_since}' is not a duration like 7d or 12h"
                )))
            })?;
        let filter = item_filter(filter, search.as_deref())?;
        let groups = store(ctx)?
            .catalog_summary(&filter, &keys, Utc::now() - window)
            .await
            .map_err(gql)?;
        Ok(groups
            .into_iter()
            .map(|g| SummaryGroupObject {
                key: Json(serde_json::Value::Object(
                    g.key
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect(),
                )),
                count: g.count,
                health: g.health.into(),
                rolled_up_health: g.rolled_up_health.into(),
                changes: g.changes,
                insights: g.insights.into(),
                cost: g
                    .cost_30d
                    .into_iter()
                    .map(|(currency, micros)| Money {
                        amount: money(micros),
                        currency,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Spend over `window` of the items `filter` selects, grouped by up to
    /// three of `type`, `class`, `namespace`, `tag:<key>` and `label:<key>`,
    /// with the spend of cost rows that match no item.
    async fn costs(
        &self,
        ctx: &Context<'_>,
        group_by: Vec<String>,
        filter: Option<ConfigFilter>,
        search: Option<String>,
        #[graphql(default_with = "CostWindow::D30")] window: CostWindow,
    ) -> ApiResult<CostReport> {
        let keys = group_by
            .iter()
            .map(|k| GroupKey::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(gql)?;
        if keys.iter().any(|k| matches!(k, GroupKey::Health)) {
            return Err(gql(ApiError::BadUserInput(
                "groupBy: costs group by type, class, namespace, tag:<key> or label:<key>".into(),
            )));
        }
        let filter = item_filter(filter, search.as_deref())?;
        let report = store(ctx)?
            .cost_report(&filter, &keys, window.into(), Utc::now())
            .await
            .map_err(gql)?;
        Ok(CostReport {
            groups: report
                .groups
                .into_iter()
                .map(|g| CostGroup {
                    key: Json(serde_json::Value::Object(
                        g.key
                            .into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect(),
                    )),
                    items: g.items,
                    cost: g.cost.into_iter().map(Money::from).collect(),
                })
                .collect(),
            unattributed: report.unattributed.into_iter().map(Money::from).collect(),
            mixed_currency: report.mixed_currency,
        })
    }

    /// Scrapers, by namespace and name.
    async fn scrapers(&self, ctx: &Context<'_>) -> ApiResult<Vec<Scraper>> {
        Ok(store(ctx)?
            .list_scrapers()
            .await
            .map_err(gql)?
            .into_iter()
            .map(Scraper)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_a_decimal_string() {
        assert_eq!(money(12_345_678), "12.345678");
        assert_eq!(money(5_000_000), "5");
        assert_eq!(money(1_500_000), "1.5");
        assert_eq!(money(-250_000), "-0.25");
        assert_eq!(money(0), "0");
    }

    #[test]
    fn global_ids_round_trip_and_name_their_type() {
        let id = Uuid::new_v4();
        let g = global_id("ConfigItem", id);
        assert_eq!(parse_global_id("ConfigItem", &g).ok(), Some(id));
        let err = parse_global_id("Scraper", &g).expect_err("wrong type");
        assert!(err.to_string().contains("is a ConfigItem id"), "{err}");
        assert!(parse_global_id("ConfigItem", "garbage").is_err());
    }
}
