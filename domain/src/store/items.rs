//! Reads of config items and their changes: lookups, filtered keyset pages
//! and counts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Store;
use crate::entities::{config_change, config_item};
use crate::error::{DomainError, Result};
use crate::model::Health;
use crate::search::SearchExpr;

/// Largest page.
pub const MAX_PAGE: u64 = 100;

/// Which items a list returns.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// Exact types.
    pub types: Vec<String>,
    /// Exact classes.
    pub classes: Vec<String>,
    /// Exact namespaces.
    pub namespaces: Vec<String>,
    /// Any of these health values.
    pub health: Vec<Health>,
    /// Only these ids.
    pub ids: Vec<Uuid>,
    /// Only items of this scraper.
    pub scraper_id: Option<Uuid>,
    /// Include soft-deleted items.
    pub include_deleted: bool,
    /// A parsed search-language query, ANDed with the fields above. A query
    /// that mentions `deleted` includes deleted items.
    pub search: Option<SearchExpr>,
}

/// A forward keyset page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Page size, 1–100.
    pub first: u64,
    /// Opaque cursor of the last item of the previous page.
    pub after: Option<String>,
}

/// One page of items ordered by `(name, id)`.
#[derive(Debug, Clone)]
pub struct ItemPage {
    /// The items with their cursors.
    pub items: Vec<(String, config_item::Model)>,
    /// Whether more items follow.
    pub has_next_page: bool,
}

/// A change as listed under an item.
pub type ChangeRow = config_change::Model;

#[derive(Serialize, Deserialize)]
struct Cursor {
    n: String,
    i: Uuid,
}

fn encode_cursor(name: &str, id: Uuid) -> String {
    let json = serde_json::to_vec(&Cursor {
        n: name.to_string(),
        i: id,
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(cursor: &str) -> Result<Cursor> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| DomainError::invalid("cursor", "not a cursor returned by this API"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| DomainError::invalid("cursor", "not a cursor returned by this API"))
}

fn condition(filter: &ItemFilter) -> Condition {
    use config_item::Column as C;
    let mut cond = Condition::all();
    let mentions_deleted = filter
        .search
        .as_ref()
        .is_some_and(SearchExpr::mentions_deleted);
    if !filter.include_deleted && !mentions_deleted {
        cond = cond.add(C::DeletedAt.is_null());
    }
    if !filter.types.is_empty() {
        cond = cond.add(C::ItemType.is_in(filter.types.clone()));
    }
    if !filter.classes.is_empty() {
        cond = cond.add(C::ConfigClass.is_in(filter.classes.clone()));
    }
    if !filter.namespaces.is_empty() {
        cond = cond.add(C::Namespace.is_in(filter.namespaces.clone()));
    }
    if !filter.health.is_empty() {
        cond = cond.add(C::Health.is_in(filter.health.iter().map(|h| h.as_str())));
    }
    if !filter.ids.is_empty() {
        cond = cond.add(C::Id.is_in(filter.ids.clone()));
    }
    if let Some(s) = filter.scraper_id {
        cond = cond.add(C::ScraperId.eq(s));
    }
    cond
}

impl Store {
    /// The full condition of `filter`, its search query compiled (and its
    /// relationship walks run).
    async fn item_condition(&self, filter: &ItemFilter) -> Result<Condition> {
        let mut cond = condition(filter);
        if let Some(search) = &filter.search {
            cond = cond.add(self.search_condition(search).await?);
        }
        Ok(cond)
    }

    /// One item by id (deleted items included).
    pub async fn get_item(&self, id: Uuid) -> Result<Option<config_item::Model>> {
        Ok(config_item::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// A page of items matching `filter`, ordered by name then id.
    pub async fn list_items(&self, filter: &ItemFilter, page: &PageRequest) -> Result<ItemPage> {
        use config_item::Column as C;
        if page.first == 0 || page.first > MAX_PAGE {
            return Err(DomainError::invalid(
                "first",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let mut query = config_item::Entity::find().filter(self.item_condition(filter).await?);
        if let Some(after) = &page.after {
            let c = decode_cursor(after)?;
            query = query.filter(
                Condition::any()
                    .add(C::Name.gt(c.n.clone()))
                    .add(Condition::all().add(C::Name.eq(c.n)).add(C::Id.gt(c.i))),
            );
        }
        let mut rows = query
            .order_by_asc(C::Name)
            .order_by_asc(C::Id)
            .limit(page.first + 1)
            .all(&self.db)
            .await?;
        let has_next_page = rows.len() as u64 > page.first;
        rows.truncate(page.first as usize);
        Ok(ItemPage {
            items: rows
                .into_iter()
                .map(|m| (encode_cursor(&m.name, m.id), m))
                .collect(),
            has_next_page,
        })
    }

    /// How many items match `filter`.
    pub async fn count_items(&self, filter: &ItemFilter) -> Result<u64> {
        Ok(config_item::Entity::find()
            .filter(self.item_condition(filter).await?)
            .count(&self.db)
            .await?)
    }

    /// The latest changes of an item, newest first.
    pub async fn item_changes(&self, config_id: Uuid, limit: u64) -> Result<Vec<ChangeRow>> {
        use config_change::Column as C;
        Ok(config_change::Entity::find()
            .filter(C::ConfigId.eq(config_id))
            .order_by_desc(C::CreatedAt)
            .order_by_desc(C::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Counts rows of a table matching an optional config id (for tests and
    /// diagnostics).
    pub async fn count_changes(&self, config_id: Option<Uuid>) -> Result<u64> {
        let mut q = config_change::Entity::find();
        if let Some(id) = config_id {
            q = q.filter(config_change::Column::ConfigId.eq(id));
        }
        Ok(q.count(&self.db).await?)
    }

    /// Sum of change counts (dedupe bumps included) for an item.
    pub async fn change_count_sum(&self, config_id: Uuid) -> Result<i64> {
        Ok(self
            .item_changes(config_id, 10_000)
            .await?
            .iter()
            .map(|c| c.count)
            .sum())
    }
}
