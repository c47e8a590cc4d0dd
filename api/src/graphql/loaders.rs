//! Data loaders: every edge a list can fan out on (an item's parent,
//! scraper, config document, latest changes, open insight counts and
//! components; a component's children; nodes by id) is loaded in one
//! batched statement (or two) per kind, however many rows of a page ask. The
//! loader caches nothing, so sharing it across requests only merges
//! batches; it never serves stale rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use stratum_domain::entities::{
    component, config_change, config_item, config_relationship, insight, scrape_run, scraper,
};
use stratum_domain::store::InsightCounts;
use stratum_domain::{DomainError, Store};
use uuid::Uuid;

/// Loads catalog rows in batches through the store.
pub struct CatalogLoader {
    store: Store,
}

impl CatalogLoader {
    /// A loader over `store`.
    pub fn new(store: Store) -> Self {
        CatalogLoader { store }
    }
}

/// A loader failure, shared by every resolver waiting on the batch.
pub type LoadError = Arc<DomainError>;

/// A config item by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemKey(pub Uuid);
/// A scraper by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScraperKey(pub Uuid);
/// A change by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangeKey(pub Uuid);
/// A scrape run by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunKey(pub Uuid);
/// The config document of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigDocKey(pub Uuid);
/// An insight by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InsightKey(pub Uuid);
/// A relationship by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelationshipKey(pub Uuid);
/// A component by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ComponentKey(pub Uuid);
/// The live children of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ComponentChildrenKey(pub Uuid);
/// The live components an item is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemComponentsKey(pub Uuid);
/// The `limit` newest changes of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LatestChangesKey {
    /// The item.
    pub config_id: Uuid,
    /// How many.
    pub limit: u64,
}
/// The open insight counts of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InsightCountKey(pub Uuid);

macro_rules! by_id_loader {
    ($key:ident, $model:ty, $method:ident) => {
        impl Loader<$key> for CatalogLoader {
            type Value = $model;
            type Error = LoadError;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, $model>, LoadError> {
                let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
                let found = self.store.$method(&ids).await.map_err(Arc::new)?;
                Ok(found.into_iter().map(|(id, m)| ($key(id), m)).collect())
            }
        }
    };
}

by_id_loader!(ItemKey, config_item::Model, get_items);
by_id_loader!(ScraperKey, scraper::Model, get_scrapers);
by_id_loader!(ChangeKey, config_change::Model, get_changes);
by_id_loader!(RunKey, scrape_run::Model, get_runs);
by_id_loader!(InsightKey, insight::Model, get_insights);
by_id_loader!(ConfigDocKey, serde_json::Value, get_configs);
by_id_loader!(ComponentKey, component::Model, get_components);
by_id_loader!(
    RelationshipKey,
    config_relationship::Model,
    get_relationships
);

impl Loader<LatestChangesKey> for CatalogLoader {
    type Value = Vec<config_change::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[LatestChangesKey],
    ) -> Result<HashMap<LatestChangesKey, Self::Value>, LoadError> {
        // One statement per distinct limit (a page asks with one limit).
        let mut by_limit: BTreeMap<u64, Vec<Uuid>> = BTreeMap::new();
        for k in keys {
            by_limit.entry(k.limit).or_default().push(k.config_id);
        }
        let mut out = HashMap::new();
        for (limit, ids) in by_limit {
            let mut found = self
                .store
                .latest_changes(&ids, limit)
                .await
                .map_err(Arc::new)?;
            for id in ids {
                out.insert(
                    LatestChangesKey {
                        config_id: id,
                        limit,
                    },
                    found.remove(&id).unwrap_or_default(),
                );
            }
        }
        Ok(out)
    }
}

/// An item's cost totals, one per currency (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemCostsKey(pub Uuid);

impl Loader<ItemCostsKey> for CatalogLoader {
    type Value = Vec<stratum_domain::store::costs::CostTotals>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ItemCostsKey],
    ) -> Result<HashMap<ItemCostsKey, Self::Value>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut found = self
            .store
            .item_costs(&ids, stratum_domain::store::now())
            .await
            .map_err(Arc::new)?;
        Ok(ids
            .into_iter()
            .map(|id| (ItemCostsKey(id), found.remove(&id).unwrap_or_default()))
            .collect())
    }
}

impl Loader<InsightCountKey> for CatalogLoader {
    type Value = InsightCounts;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[InsightCountKey],
    ) -> Result<HashMap<InsightCountKey, InsightCounts>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut found = self
            .store
            .open_insight_counts(&ids)
            .await
            .map_err(Arc::new)?;
        Ok(ids
            .into_iter()
            .map(|id| (InsightCountKey(id), found.remove(&id).unwrap_or_default()))
            .collect())
    }
}

/// A loader of component lists keyed by one id: every key gets a list,
/// empty when the store found none.
macro_rules! list_loader {
    ($key:ident, $method:ident) => {
        impl Loader<$key> for CatalogLoader {
            type Value = Vec<component::Model>;
            type Error = LoadError;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, Self::Value>, LoadError> {
                let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
                let mut found = self.store.$method(&ids).await.map_err(Arc::new)?;
                Ok(ids
                    .into_iter()
                    .map(|id| ($key(id), found.remove(&id).unwrap_or_default()))
                    .collect())
            }
        }
    };
}

list_loader!(ComponentChildrenKey, component_children);
list_loader!(ItemComponentsKey, components_of_items);
