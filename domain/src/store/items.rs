//! Reads of config items and their changes: lookups, filtered and ordered
//! keyset pages, and counts.

use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::Store;
use super::page::{KeyKind, KeyValue, Keyset, Page, PageRequest, SortKey};
use crate::entities::{config_change, config_item};
use crate::error::Result;
use crate::model::Health;
use crate::search::SearchExpr;

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
    /// Only children of this item.
    pub parent_id: Option<Uuid>,
    /// Only items attached to this component.
    pub component_id: Option<Uuid>,
    /// Include soft-deleted items.
    pub include_deleted: bool,
    /// A parsed search-language query, ANDed with the fields above. A query
    /// that mentions `deleted` includes deleted items.
    pub search: Option<SearchExpr>,
}

/// What a list of items can be sorted by (SPEC §11 `orderBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSort {
    /// Display name.
    Name,
    /// Config type.
    Type,
    /// First stored.
    CreatedAt,
    /// Last config change.
    UpdatedAt,
    /// Health, from unknown to unhealthy.
    Health,
    /// Cost over the last 30 days (items without costs first).
    Cost30d,
}

/// One sort key of a list of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemOrder {
    /// The key.
    pub sort: ItemSort,
    /// Largest first.
    pub descending: bool,
}

/// A change as listed under an item.
pub type ChangeRow = config_change::Model;

/// Health ranked `unknown < healthy < warning < unhealthy` (SPEC §6).
const HEALTH_RANK: &str =
    "(CASE health WHEN 'unhealthy' THEN 3 WHEN 'warning' THEN 2 WHEN 'healthy' THEN 1 ELSE 0 END)";
const COST_30D: &str = "COALESCE(cost_total_30d, -1)";

fn health_rank(health: &str) -> i64 {
    match health {
        "unhealthy" => 3,
        "warning" => 2,
        "healthy" => 1,
        _ => 0,
    }
}

/// The keyset of an ordering (name by default); repeated keys count once.
fn item_keyset(order: &[ItemOrder]) -> (Keyset, Vec<ItemSort>) {
    let mut sorts: Vec<ItemOrder> = Vec::new();
    for o in order {
        if !sorts.iter().any(|s| s.sort == o.sort) {
            sorts.push(*o);
        }
    }
    if sorts.is_empty() {
        sorts.push(ItemOrder {
            sort: ItemSort::Name,
            descending: false,
        });
    }
    let keys = sorts
        .iter()
        .map(|o| {
            let (sql, kind) = match o.sort {
                ItemSort::Name => ("name", KeyKind::Text),
                ItemSort::Type => ("type", KeyKind::Text),
                ItemSort::CreatedAt => ("created_at", KeyKind::Time),
                ItemSort::UpdatedAt => ("updated_at", KeyKind::Time),
                ItemSort::Health => (HEALTH_RANK, KeyKind::Int),
                ItemSort::Cost30d => (COST_30D, KeyKind::Int),
            };
            SortKey {
                sql: sql.to_string(),
                descending: o.descending,
                kind,
            }
        })
        .collect();
    (
        Keyset::new(keys, "id", false),
        sorts.into_iter().map(|o| o.sort).collect(),
    )
}

fn item_key(sorts: &[ItemSort], m: &config_item::Model) -> Vec<KeyValue> {
    let mut out: Vec<KeyValue> = sorts
        .iter()
        .map(|s| match s {
            ItemSort::Name => KeyValue::Text(Some(m.name.clone())),
            ItemSort::Type => KeyValue::Text(Some(m.item_type.clone())),
            ItemSort::CreatedAt => KeyValue::Time(m.created_at),
            ItemSort::UpdatedAt => KeyValue::Time(m.updated_at),
            ItemSort::Health => KeyValue::Int(health_rank(&m.health)),
            ItemSort::Cost30d => KeyValue::Int(m.cost_total_30d.unwrap_or(-1)),
        })
        .collect();
    out.push(KeyValue::Uuid(m.id));
    out
}

fn condition(backend: sea_orm::DbBackend, filter: &ItemFilter) -> Condition {
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
    if let Some(p) = filter.parent_id {
        cond = cond.add(C::ParentId.eq(p));
    }
    if let Some(component) = filter.component_id {
        cond = cond.add(super::cust(
            backend,
            "id IN (SELECT config_id FROM config_component_relationships \
             WHERE component_id = ? AND deleted_at IS NULL)",
            vec![component.into()],
        ));
    }
    cond
}

/// The columns [`slim_items`] selects, in the order [`SlimItem`] decodes
/// them; `config` (a `null` literal) follows them.
const SLIM_COLUMNS: [config_item::Column; 31] = {
    use config_item::Column as C;
    [
        C::Id,
        C::ScraperId,
        C::ExternalIds,
        C::PrimaryExternalId,
        C::ItemType,
        C::ConfigClass,
        C::Name,
        C::Namespace,
        C::Tags,
        C::Labels,
        C::Properties,
        C::ConfigHash,
        C::RowHash,
        C::Health,
        C::Status,
        C::Ready,
        C::Description,
        C::RolledUpHealth,
        C::DescendantHealth,
        C::ParentId,
        C::Path,
        C::Source,
        C::CostPerMinute,
        C::CostTotal1d,
        C::CostTotal7d,
        C::CostTotal30d,
        C::Currency,
        C::CreatedAt,
        C::UpdatedAt,
        C::LastScrapedAt,
        C::DeletedAt,
    ]
};

/// Which columns a list of items reads; the config document never (a
/// `null` stands in, loaded by [`Store::get_configs`] when asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ItemColumns {
    /// Every other column.
    #[default]
    All,
    /// Without the JSON members too: external ids, tags, labels,
    /// properties and descendant health counts each read as `null` (see
    /// [`ItemColumns::is_summary`]). For pages that show none of them: those
    /// members are most of what decoding a row costs.
    Summary,
}

impl ItemColumns {
    /// Whether `item` was read as a [`ItemColumns::Summary`] (a stored
    /// item's external ids are never `null`).
    pub fn is_summary(item: &config_item::Model) -> bool {
        item.external_ids.is_null()
    }
}

/// The JSON members a [`ItemColumns::Summary`] leaves out.
fn summary_omits(column: config_item::Column) -> bool {
    use config_item::Column as C;
    matches!(
        column,
        C::ExternalIds | C::Tags | C::Labels | C::Properties | C::DescendantHealth
    )
}

/// Items without their config documents: what lists and loaders read, so
/// a page of summaries does not ship and parse kilobytes of JSON per row.
/// Rows decode as [`SlimItem`].
pub(crate) fn slim_items(
    backend: sea_orm::DbBackend,
    columns: ItemColumns,
) -> sea_orm::Select<config_item::Entity> {
    use sea_orm::IdenStatic;
    let null_json = match backend {
        sea_orm::DbBackend::Postgres => "CAST('null' AS jsonb)",
        _ => "'null'",
    };
    let mut select = config_item::Entity::find().select_only();
    for column in SLIM_COLUMNS {
        select = if columns == ItemColumns::Summary && summary_omits(column) {
            select.column_as(sea_orm::sea_query::Expr::cust(null_json), column.as_str())
        } else {
            select.column(column)
        };
    }
    select
        .column(config_item::Column::DeleteReason)
        .column_as(sea_orm::sea_query::Expr::cust(null_json), "config")
}

/// A row of [`slim_items`], decoded by position. The derived decoding
/// formats and looks up every column's name in every row: a quarter of a
/// list request's server CPU in the API benchmark. On PostgreSQL the
/// columns decode without sqlx's per-value type check (the statement is
/// ours and its column types fixed; a test decodes every column).
pub(crate) struct SlimItem(pub config_item::Model);

/// A row whose columns are read by position.
trait ByPosition {
    fn at<T>(&self, index: usize) -> std::result::Result<T, sea_orm::DbErr>
    where
        T: sea_orm::TryGetable + for<'r> sea_orm::sqlx::Decode<'r, sea_orm::sqlx::Postgres>;
}

impl ByPosition for sea_orm::QueryResult {
    fn at<T>(&self, index: usize) -> std::result::Result<T, sea_orm::DbErr>
    where
        T: sea_orm::TryGetable + for<'r> sea_orm::sqlx::Decode<'r, sea_orm::sqlx::Postgres>,
    {
        self.try_get_by_index(index)
    }
}

impl ByPosition for sea_orm::sqlx::postgres::PgRow {
    fn at<T>(&self, index: usize) -> std::result::Result<T, sea_orm::DbErr>
    where
        T: sea_orm::TryGetable + for<'r> sea_orm::sqlx::Decode<'r, sea_orm::sqlx::Postgres>,
    {
        sea_orm::sqlx::Row::try_get_unchecked(self, index)
            .map_err(|e| sea_orm::DbErr::Type(format!("column {index}: {e}")))
    }
}

fn slim_model(row: &impl ByPosition) -> std::result::Result<config_item::Model, sea_orm::DbErr> {
    Ok(config_item::Model {
        id: row.at(0)?,
        scraper_id: row.at(1)?,
        external_ids: row.at(2)?,
        primary_external_id: row.at(3)?,
        item_type: row.at(4)?,
        config_class: row.at(5)?,
        name: row.at(6)?,
        namespace: row.at(7)?,
        tags: row.at(8)?,
        labels: row.at(9)?,
        properties: row.at(10)?,
        config_hash: row.at(11)?,
        row_hash: row.at(12)?,
        health: row.at(13)?,
        status: row.at(14)?,
        ready: row.at(15)?,
        description: row.at(16)?,
        rolled_up_health: row.at(17)?,
        descendant_health: row.at(18)?,
        parent_id: row.at(19)?,
        path: row.at(20)?,
        source: row.at(21)?,
        cost_per_minute: row.at(22)?,
        cost_total_1d: row.at(23)?,
        cost_total_7d: row.at(24)?,
        cost_total_30d: row.at(25)?,
        currency: row.at(26)?,
        created_at: row.at(27)?,
        updated_at: row.at(28)?,
        last_scraped_at: row.at(29)?,
        deleted_at: row.at(30)?,
        delete_reason: row.at(31)?,
        config: row.at(32)?,
    })
}

impl sea_orm::FromQueryResult for SlimItem {
    fn from_query_result(
        row: &sea_orm::QueryResult,
        _pre: &str,
    ) -> std::result::Result<Self, sea_orm::DbErr> {
        match row.try_as_pg_row() {
            Some(pg) => slim_model(pg).map(SlimItem),
            None => slim_model(row).map(SlimItem),
        }
    }
}

impl Store {
    /// Config documents by item id.
    pub async fn get_configs(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, serde_json::Value>> {
        use config_item::Column as C;
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let rows: Vec<(Uuid, serde_json::Value)> = config_item::Entity::find()
                .select_only()
                .column(C::Id)
                .column(C::Config)
                .filter(super::id_in(self.backend(), "id", chunk))
                .filter(self.with_item_scope(Condition::all()))
                .into_tuple()
                .all(self.reads())
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// The full condition of `filter`, its search query compiled (and its
    /// relationship walks run).
    pub(crate) async fn item_condition(&self, filter: &ItemFilter) -> Result<Condition> {
        let mut cond = self.with_item_scope(condition(self.backend(), filter));
        if let Some(search) = &filter.search {
            cond = cond.add(self.search_condition(search).await?);
        }
        Ok(cond)
    }

    /// One item by id (deleted items included).
    pub async fn get_item(&self, id: Uuid) -> Result<Option<config_item::Model>> {
        Ok(config_item::Entity::find_by_id(id)
            .filter(self.with_item_scope(Condition::all()))
            .one(self.reads())
            .await?)
    }

    /// A page of items matching `filter` in `order` (name by default),
    /// every ordering ending on id.
    pub async fn list_items(
        &self,
        filter: &ItemFilter,
        order: &[ItemOrder],
        page: &PageRequest,
    ) -> Result<Page<config_item::Model>> {
        self.list_items_with(filter, order, page, ItemColumns::All)
            .await
    }

    /// [`Store::list_items`] reading `columns`.
    pub async fn list_items_with(
        &self,
        filter: &ItemFilter,
        order: &[ItemOrder],
        page: &PageRequest,
        columns: ItemColumns,
    ) -> Result<Page<config_item::Model>> {
        let (keyset, sorts) = item_keyset(order);
        let select = slim_items(self.backend(), columns).filter(self.item_condition(filter).await?);
        let page = keyset
            .fetch_into::<_, SlimItem, _>(self.reads(), select, page, |m| item_key(&sorts, &m.0))
            .await?;
        Ok(page.map(|row| row.0))
    }

    /// How many items match `filter`.
    pub async fn count_items(&self, filter: &ItemFilter) -> Result<u64> {
        Ok(config_item::Entity::find()
            .filter(self.item_condition(filter).await?)
            .count(self.reads())
            .await?)
    }

    /// The latest changes of an item, newest first.
    pub async fn item_changes(&self, config_id: Uuid, limit: u64) -> Result<Vec<ChangeRow>> {
        use config_change::Column as C;
        Ok(config_change::Entity::find()
            .filter(C::ConfigId.eq(config_id))
            .filter(self.with_visible_items("config_id", Condition::all()))
            .order_by_desc(C::CreatedAt)
            .order_by_desc(C::Id)
            .limit(limit)
            .all(self.reads())
            .await?)
    }

    /// Counts rows of a table matching an optional config id (for tests and
    /// diagnostics).
    pub async fn count_changes(&self, config_id: Option<Uuid>) -> Result<u64> {
        let mut q = config_change::Entity::find();
        if let Some(id) = config_id {
            q = q.filter(config_change::Column::ConfigId.eq(id));
        }
        Ok(q.count(self.reads()).await?)
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

#[cfg(test)]
mod tests {
    use sea_orm::Iterable;

    use super::*;

    #[test]
    fn slim_columns_are_every_column_but_config_once() {
        use config_item::Column as C;
        let mut read: Vec<String> = SLIM_COLUMNS
            .iter()
            .chain([C::DeleteReason, C::Config].iter())
            .map(|c| format!("{c:?}"))
            .collect();
        let mut all: Vec<String> = C::iter().map(|c| format!("{c:?}")).collect();
        read.sort();
        all.sort();
        assert_eq!(read, all);
    }
}
