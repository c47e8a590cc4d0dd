//! The subscription root of SPEC §11/§13: health transitions, changes,
//! insight transitions and component health, each filtered in memory,
//! resumable with `since`, and ended with a `LAGGED` error carrying the
//! resume cursor when the subscriber falls behind.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use stratum_domain::events::{
    self, ChangeMatcher, ComponentMatcher, Delivery, EventCursor, InsightMatcher, ItemMatcher,
    KeyTest, Sequenced,
};
use stratum_domain::{Store, store as domain_store};

use super::filters::{
    ChangeFilterInput, ComponentFilter, ConfigFilter, InsightFilter, KeyValueMatch, MatchOp,
    change_filter, component_filter, insight_filter, item_uuid,
};
use super::types::{Component, ConfigChange, ConfigItem, Health, Insight, health};
use crate::error::{ApiError, ApiResult, gql};

/// The root of every subscription.
pub struct SubscriptionRoot;

fn store<'a>(ctx: &Context<'a>) -> ApiResult<&'a Store> {
    ctx.data::<Store>().map_err(|_| gql(ApiError::Internal))
}

fn parse_since(text: Option<String>) -> ApiResult<Option<EventCursor>> {
    text.map(|t| EventCursor::decode(&t))
        .transpose()
        .map_err(gql)
}

fn key_tests(matches: Option<Vec<KeyValueMatch>>) -> ApiResult<Vec<KeyTest>> {
    matches
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            Ok(match m.op {
                MatchOp::Eq | MatchOp::Neq if m.values.is_empty() => {
                    return Err(gql(ApiError::BadUserInput(format!(
                        "the match on '{}' needs values for EQ and NEQ",
                        m.key
                    ))));
                }
                MatchOp::Eq => KeyTest::In(m.key, m.values),
                MatchOp::Neq => KeyTest::NotIn(m.key, m.values),
                MatchOp::Exists => KeyTest::Exists(m.key),
                MatchOp::Absent => KeyTest::Absent(m.key),
            })
        })
        .collect()
}

/// The in-memory form of a `ConfigFilter`. A relationship walk cannot be
/// re-evaluated per event, so `relatedTo` is refused.
fn item_matcher(filter: Option<ConfigFilter>) -> ApiResult<ItemMatcher> {
    let f = filter.unwrap_or_default();
    if f.related_to.is_some() {
        return Err(gql(ApiError::BadUserInput(
            "relatedTo is not supported in subscriptions; subscribe to configChanges with \
             recursive, or list the ids"
                .into(),
        )));
    }
    Ok(ItemMatcher {
        ids: f
            .ids
            .unwrap_or_default()
            .iter()
            .map(|id| item_uuid(id))
            .collect::<ApiResult<_>>()?,
        types: f.types.unwrap_or_default(),
        classes: f.classes.unwrap_or_default(),
        namespaces: f.namespaces.unwrap_or_default(),
        health: f
            .health
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect(),
        tags: key_tests(f.tags)?,
        labels: key_tests(f.labels)?,
        include_deleted: f.include_deleted,
    })
}

/// A live stream of deliveries as GraphQL results: the lagged notice
/// becomes a `LAGGED` error, after which the stream ends.
fn results<E: Sequenced, T>(
    subscriber: events::Subscriber<E>,
    wrap: impl Fn(Arc<E>) -> T + Send + 'static,
) -> impl Stream<Item = ApiResult<T>> + Send
where
    T: Send + 'static,
{
    subscriber
        .into_stream()
        .map(move |delivery| match delivery {
            Delivery::Event(event) => Ok(wrap(event)),
            Delivery::Lagged(cursor) => {
                metrics::counter!("stratum_subscription_lagged_total").increment(1);
                Err(gql(ApiError::Lagged {
                    resume: cursor.encode(),
                    buffer: events::SUBSCRIBER_BUFFER,
                }))
            }
        })
}

#[Subscription]
impl SubscriptionRoot {
    /// Health transitions of config items (SPEC §5): previous and current
    /// health, status, and the item as it is now.
    async fn health_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConfigFilter>,
        #[graphql(desc = "Resume after this cursor: replays stored transitions first.")]
        since: Option<String>,
    ) -> Result<impl Stream<Item = ApiResult<HealthEvent>> + use<>, async_graphql::Error> {
        let matcher = ChangeMatcher {
            item: item_matcher(filter)?,
            health_only: true,
            ..ChangeMatcher::default()
        };
        let subscriber = store(ctx)?
            .subscribe_changes(
                parse_since(since)?,
                true,
                Box::new(move |e| matcher.matches(e)),
            )
            .await
            .map_err(gql)?;
        Ok(results(subscriber, HealthEvent))
    }

    /// Every change recorded on the catalog: diffs, Kubernetes events,
    /// health transitions. `recursive` walks are taken once, when the
    /// subscription starts; `from` and `to` do not apply to a live stream
    /// (use `since`).
    async fn config_changes(
        &self,
        ctx: &Context<'_>,
        filter: Option<ChangeFilterInput>,
        #[graphql(desc = "Resume after this cursor: replays stored changes first.")] since: Option<
            String,
        >,
    ) -> Result<impl Stream<Item = ApiResult<ChangeEvent>> + use<>, async_graphql::Error> {
        if filter
            .as_ref()
            .is_some_and(|f| f.from.is_some() || f.to.is_some())
        {
            return Err(gql(ApiError::BadUserInput(
                "from and to do not apply to a live stream; resume with since".into(),
            )));
        }
        let f: domain_store::ChangeFilter = change_filter(ctx, filter).await?;
        let created_by = f.created_by.clone();
        let matcher = ChangeMatcher {
            item: ItemMatcher {
                ids: f.config_ids,
                include_deleted: true,
                ..ItemMatcher::default()
            },
            change_types: f.change_types,
            severities: f.severities,
            min_severity: f.min_severity,
            sources: f.sources,
            health_only: false,
        };
        let subscriber = store(ctx)?
            .subscribe_changes(
                parse_since(since)?,
                false,
                Box::new(move |e| {
                    matcher.matches(e)
                        && created_by
                            .as_ref()
                            .is_none_or(|who| e.change.created_by.as_ref() == Some(who))
                }),
            )
            .await
            .map_err(gql)?;
        Ok(results(subscriber, ChangeEvent))
    }

    /// Insight transitions: opened (or reopened), resolved, silenced. All
    /// statuses unless `statuses` is given.
    async fn insight_changes(
        &self,
        ctx: &Context<'_>,
        filter: Option<InsightFilter>,
        #[graphql(desc = "Resume after this cursor: replays stored insights first.")] since: Option<
            String,
        >,
    ) -> Result<impl Stream<Item = ApiResult<InsightEvent>> + use<>, async_graphql::Error> {
        let all_statuses = filter.as_ref().is_none_or(|f| f.statuses.is_none());
        let f = insight_filter(filter)?;
        let matcher = InsightMatcher {
            item: ItemMatcher {
                ids: f.config_ids,
                include_deleted: true,
                ..ItemMatcher::default()
            },
            analyzers: f.analyzers,
            types: f.types,
            severities: f.severities,
            min_severity: f.min_severity,
            statuses: if all_statuses { Vec::new() } else { f.statuses },
        };
        let subscriber = store(ctx)?
            .subscribe_insights(parse_since(since)?, Box::new(move |e| matcher.matches(e)))
            .await
            .map_err(gql)?;
        Ok(results(subscriber, InsightEvent))
    }

    /// Rolled-up health transitions of topology components.
    async fn component_health_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<ComponentFilter>,
        #[graphql(desc = "Resume after this cursor: replays stored transitions first.")]
        since: Option<String>,
    ) -> Result<impl Stream<Item = ApiResult<ComponentHealthEvent>> + use<>, async_graphql::Error>
    {
        let f = component_filter(filter)?;
        if f.scope != domain_store::ComponentScope::All {
            return Err(gql(ApiError::BadUserInput(
                "parentId and rootsOnly are not supported in subscriptions; list the ids".into(),
            )));
        }
        let matcher = ComponentMatcher {
            ids: f.ids,
            topology_ids: f.topology_ids,
            types: f.types,
            health: f.health,
            rolled_up_health: f.rolled_up_health,
        };
        let subscriber = store(ctx)?
            .subscribe_component_health(parse_since(since)?, Box::new(move |e| matcher.matches(e)))
            .await
            .map_err(gql)?;
        Ok(results(subscriber, ComponentHealthEvent))
    }
}

fn side_health(event: &events::ChangeEvent, side: &str) -> Health {
    event
        .transition_side(side)
        .and_then(|s| s.get("health"))
        .and_then(|h| h.as_str())
        .map(health)
        .unwrap_or(Health::Unknown)
}

/// A config item's health transition.
pub struct HealthEvent(Arc<events::ChangeEvent>);

#[Object]
impl HealthEvent {
    /// Resume after this event with `since`.
    async fn cursor(&self) -> String {
        self.0.cursor().encode()
    }
    /// The item, as it is after the transition.
    async fn item(&self) -> ConfigItem {
        ConfigItem(self.0.item.clone())
    }
    /// Health before.
    async fn previous(&self) -> Health {
        side_health(&self.0, "previous")
    }
    /// Health after.
    async fn current(&self) -> Health {
        side_health(&self.0, "current")
    }
    /// Status after.
    async fn status(&self) -> Option<String> {
        self.0
            .transition_side("current")
            .and_then(|s| s.get("status"))
            .and_then(|s| s.as_str())
            .map(str::to_string)
    }
    /// The item's rolled-up health now.
    async fn rolled_up(&self) -> Health {
        health(&self.0.item.rolled_up_health)
    }
    /// The recorded change.
    async fn change(&self) -> ConfigChange {
        ConfigChange(self.0.change.clone())
    }
    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at()
    }
}

/// A recorded change.
pub struct ChangeEvent(Arc<events::ChangeEvent>);

#[Object]
impl ChangeEvent {
    /// Resume after this event with `since`.
    async fn cursor(&self) -> String {
        self.0.cursor().encode()
    }
    /// The change.
    async fn change(&self) -> ConfigChange {
        ConfigChange(self.0.change.clone())
    }
    /// Its item, as it is after the change.
    async fn item(&self) -> ConfigItem {
        ConfigItem(self.0.item.clone())
    }
    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at()
    }
}

/// An insight's new state.
pub struct InsightEvent(Arc<events::InsightEvent>);

#[Object]
impl InsightEvent {
    /// Resume after this event with `since`.
    async fn cursor(&self) -> String {
        self.0.cursor().encode()
    }
    /// `insight.opened`, `insight.resolved` or `insight.silenced` (SPEC §13).
    async fn event(&self) -> String {
        let status = match self.0.insight.status.as_str() {
            "open" => "opened",
            other => other,
        };
        format!("insight.{status}")
    }
    /// The insight.
    async fn insight(&self) -> Insight {
        Insight(self.0.insight.clone())
    }
    /// Its item.
    async fn item(&self) -> ConfigItem {
        ConfigItem(self.0.item.clone())
    }
    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at()
    }
}

/// A component's rolled-up health transition.
pub struct ComponentHealthEvent(Arc<events::ComponentHealthEvent>);

#[Object]
impl ComponentHealthEvent {
    /// Resume after this event with `since`.
    async fn cursor(&self) -> String {
        self.0.cursor().encode()
    }
    /// The component, as it is after the transition.
    async fn component(&self) -> Component {
        Component(self.0.component.as_ref().clone())
    }
    /// The component's global id (cheaper than selecting `component`).
    async fn component_id(&self) -> ID {
        super::global_id("Component", self.0.component.id)
    }
    /// Rolled-up health before.
    async fn previous(&self) -> Health {
        health(&self.0.transition.previous)
    }
    /// Rolled-up health after.
    async fn current(&self) -> Health {
        health(&self.0.transition.current)
    }
    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at()
    }
}
