//! Reads of config changes (SPEC §5 "Queries"): filtered keyset pages in
//! `created_at DESC, id DESC` order, counts, and the page shape the API's
//! batched "latest changes" loader produces.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use super::Store;
use super::page::{KeyKind, KeyValue, Keyset, Page, PageRequest, SortKey};
use crate::entities::config_change;
use crate::error::Result;
use crate::model::Severity;

/// Which changes a list returns. Empty fields do not restrict.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// Changes of these items.
    pub config_ids: Vec<Uuid>,
    /// Exact change types (`diff`, `Unhealthy`, `BackOff`…).
    pub change_types: Vec<String>,
    /// Exactly these severities.
    pub severities: Vec<Severity>,
    /// This severity or worse; intersects `severities`.
    pub min_severity: Option<Severity>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Exact sources (`diff`, `health`, `kubernetes/…`).
    pub sources: Vec<String>,
    /// Recorded by this user or system.
    pub created_by: Option<String>,
}

impl ChangeFilter {
    /// True when nothing but the items restricts the list.
    pub fn is_unrestricted(&self) -> bool {
        self.change_types.is_empty()
            && self.severities.is_empty()
            && self.min_severity.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.sources.is_empty()
            && self.created_by.is_none()
    }
}

fn keyset() -> Keyset {
    Keyset::new(
        vec![SortKey {
            sql: "created_at".into(),
            descending: true,
            kind: KeyKind::Time,
        }],
        "id",
        true,
    )
}

fn key(m: &config_change::Model) -> Vec<KeyValue> {
    vec![KeyValue::Time(m.created_at), KeyValue::Uuid(m.id)]
}

fn condition(backend: sea_orm::DbBackend, filter: &ChangeFilter) -> Condition {
    use config_change::Column as C;
    let mut cond = Condition::all();
    if !filter.config_ids.is_empty() {
        cond = cond.add(super::id_in(backend, "config_id", &filter.config_ids));
    }
    if !filter.change_types.is_empty() {
        cond = cond.add(C::ChangeType.is_in(filter.change_types.iter().cloned()));
    }
    if let Some(severity) =
        super::severity_condition(C::Severity, &filter.severities, filter.min_severity)
    {
        cond = cond.add(severity);
    }
    if let Some(from) = filter.from {
        cond = cond.add(C::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        cond = cond.add(C::CreatedAt.lt(to));
    }
    if !filter.sources.is_empty() {
        cond = cond.add(C::Source.is_in(filter.sources.iter().cloned()));
    }
    if let Some(by) = &filter.created_by {
        cond = cond.add(C::CreatedBy.eq(by.clone()));
    }
    cond
}

/// Builds the page a "latest `n` changes" read would have returned for
/// `first: n`, from up to `n + 1` newest rows of one item (see
/// [`Store::latest_changes`]): the same cursors as [`Store::list_changes`].
pub fn latest_page(mut rows: Vec<config_change::Model>, n: u64) -> Page<config_change::Model> {
    let keyset = keyset();
    let more = rows.len() as u64 > n;
    rows.truncate(n as usize);
    Page {
        items: rows
            .into_iter()
            .map(|row| (keyset.cursor(&key(&row)), row))
            .collect(),
        has_next_page: more,
        has_previous_page: false,
    }
}

impl Store {
    /// A page of changes matching `filter`, newest first.
    pub async fn list_changes(
        &self,
        filter: &ChangeFilter,
        page: &PageRequest,
    ) -> Result<Page<config_change::Model>> {
        let select = config_change::Entity::find()
            .filter(self.with_visible_items("config_id", condition(self.backend(), filter)));
        keyset().fetch(self.reads(), select, page, key).await
    }

    /// How many change rows of each type match `filter` (the whole filtered
    /// set, not a page), most frequent first.
    pub async fn count_change_types(
        &self,
        filter: &ChangeFilter,
    ) -> Result<Vec<super::ValueCount>> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{QueryOrder, QuerySelect};
        let rows: Vec<(String, i64)> = config_change::Entity::find()
            .select_only()
            .column(config_change::Column::ChangeType)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .filter(self.with_visible_items("config_id", condition(self.backend(), filter)))
            .group_by(config_change::Column::ChangeType)
            .order_by_desc(Expr::cust("COUNT(*)"))
            .order_by_asc(config_change::Column::ChangeType)
            .into_tuple()
            .all(self.reads())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(value, count)| super::ValueCount { value, count })
            .collect())
    }

    /// How many change rows match `filter`.
    pub async fn count_matching_changes(&self, filter: &ChangeFilter) -> Result<u64> {
        Ok(config_change::Entity::find()
            .filter(self.with_visible_items("config_id", condition(self.backend(), filter)))
            .count(self.reads())
            .await?)
    }
}
