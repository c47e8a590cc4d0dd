//! GraphQL object types and the query root.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, Json, Object};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use stratum_domain::entities::{config_change, config_item};
use stratum_domain::store::{ItemFilter, ItemOrder};
use stratum_domain::{Health as DomainHealth, Store};
use uuid::Uuid;

use super::connection::{PageArgs, connection};
use super::filters::{ConfigFilter, ConfigOrder, item_filter};
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

/// Opaque global id of an object: base64url of `Type:uuid`.
pub fn global_id(type_name: &str, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{type_name}:{id}")))
}

/// Decodes a global id of the expected type.
pub fn parse_global_id(expected: &str, id: &str) -> Result<Uuid, ApiError> {
    let invalid = || ApiError::BadUserInput(format!("invalid {expected} id"));
    let bytes = URL_SAFE_NO_PAD.decode(id).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (kind, raw) = text.split_once(':').ok_or_else(invalid)?;
    if kind != expected {
        return Err(invalid());
    }
    Uuid::parse_str(raw).map_err(|_| invalid())
}

fn store<'a>(ctx: &Context<'a>) -> ApiResult<&'a Store> {
    ctx.data::<Store>().map_err(|_| gql(ApiError::Internal))
}

/// An item of the catalog.
pub struct ConfigItem(pub config_item::Model);

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
    async fn external_ids(&self) -> Vec<String> {
        serde_json::from_value(self.0.external_ids.clone()).unwrap_or_default()
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
    async fn tags(&self) -> Json<serde_json::Value> {
        Json(self.0.tags.clone())
    }
    /// Labels.
    async fn labels(&self) -> Json<serde_json::Value> {
        Json(self.0.labels.clone())
    }
    /// The config document, or the part at a JSON pointer (`/spec/replicas`)
    /// or dotted path (`spec.replicas`).
    async fn config(&self, path: Option<String>) -> Option<Json<serde_json::Value>> {
        match path {
            None => Some(Json(self.0.config.clone())),
            Some(p) => {
                let pointer = if p.starts_with('/') || p.is_empty() {
                    p
                } else {
                    format!("/{}", p.replace('.', "/"))
                };
                self.0.config.pointer(&pointer).cloned().map(Json)
            }
        }
    }
    /// Health.
    async fn health(&self) -> Health {
        self.0
            .health
            .parse::<DomainHealth>()
            .unwrap_or(DomainHealth::Unknown)
            .into()
    }
    /// Rolled-up health.
    async fn rolled_up_health(&self) -> Health {
        self.0
            .rolled_up_health
            .parse::<DomainHealth>()
            .unwrap_or(DomainHealth::Unknown)
            .into()
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
        let Some(parent) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(store(ctx)?
            .get_item(parent)
            .await
            .map_err(gql)?
            .map(ConfigItem))
    }
    /// The latest changes, newest first (at most 100).
    async fn changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> ApiResult<Vec<ConfigChange>> {
        if !(1..=100).contains(&first) {
            return Err(gql(ApiError::BadUserInput(
                "first must be between 1 and 100".into(),
            )));
        }
        Ok(store(ctx)?
            .item_changes(self.0.id, first as u64)
            .await
            .map_err(gql)?
            .into_iter()
            .map(ConfigChange)
            .collect())
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

/// A change of an item.
pub struct ConfigChange(pub config_change::Model);

#[Object]
impl ConfigChange {
    /// Global id.
    async fn id(&self) -> ID {
        global_id("ConfigChange", self.0.id)
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
}

/// Fields of a list of items beside its edges.
pub struct ItemListFields {
    filter: ItemFilter,
}

#[Object]
impl ItemListFields {
    /// Items matching the filter, over all pages (computed only when selected).
    async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        Ok(store(ctx)?.count_items(&self.filter).await.map_err(gql)? as i64)
    }
}

/// A page of config items.
pub type ConfigItemConnection = Connection<String, ConfigItem, ItemListFields>;

/// The query root.
pub struct QueryRoot;

#[expect(
    clippy::too_many_arguments,
    reason = "list fields take Relay page, filter, search and order arguments"
)]
#[Object]
impl QueryRoot {
    /// One item by global `id` or raw `uuid`; null when it does not exist.
    async fn config_item(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        uuid: Option<String>,
    ) -> ApiResult<Option<ConfigItem>> {
        let raw = match (id, uuid) {
            (Some(id), None) => parse_global_id("ConfigItem", &id).map_err(gql)?,
            (None, Some(u)) => Uuid::parse_str(&u)
                .map_err(|_| gql(ApiError::BadUserInput("uuid is not a UUID".into())))?,
            _ => {
                return Err(gql(ApiError::BadUserInput(
                    "give exactly one of id or uuid".into(),
                )));
            }
        };
        let item = store(ctx)?.get_item(raw).await.map_err(gql)?;
        match item {
            Some(m) => Ok(Some(ConfigItem(m))),
            None => Err(gql(ApiError::NotFound("config item".into()))),
        }
    }

    /// Items as a Relay connection, ordered by `orderBy` (name by default,
    /// always ending on id). `search` is the search language
    /// (`type=Kubernetes::Pod health=unhealthy,warning tags.team=payments
    /// name=api-* updated>now-1d`), ANDed with `filter`.
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
        let request = PageArgs {
            first,
            after,
            last,
            before,
        }
        .request()?;
        let filter = item_filter(filter, search.as_deref())?;
        let order: Vec<ItemOrder> = order_by
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect();
        let page = store(ctx)?
            .list_items(&filter, &order, &request)
            .await
            .map_err(gql)?;
        Ok(connection(page, ConfigItem, ItemListFields { filter }))
    }
}
