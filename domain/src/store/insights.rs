//! Reads of insights (SPEC §7): filtered keyset pages, most recently
//! observed first, and counts. Insights are written by analysis rules and
//! pushes (issue #7); this module only reads.

use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use super::Store;
use super::page::{KeyKind, KeyValue, Keyset, Page, PageRequest, SortKey};
use crate::entities::insight;
use crate::error::Result;
use crate::model::Severity;

/// Which insights a list returns. Empty fields do not restrict.
#[derive(Debug, Clone, Default)]
pub struct InsightFilter {
    /// Insights of these items.
    pub config_ids: Vec<Uuid>,
    /// Exact analyzers.
    pub analyzers: Vec<String>,
    /// Exact analysis types (`security`, `cost`, …).
    pub types: Vec<String>,
    /// Exactly these severities.
    pub severities: Vec<Severity>,
    /// This severity or worse; intersects `severities`.
    pub min_severity: Option<Severity>,
    /// Statuses (`open`, `resolved`, `silenced`).
    pub statuses: Vec<String>,
}

fn keyset() -> Keyset {
    Keyset::new(
        vec![SortKey {
            sql: "last_observed".into(),
            descending: true,
            kind: KeyKind::Time,
        }],
        "id",
        true,
    )
}

fn key(m: &insight::Model) -> Vec<KeyValue> {
    vec![KeyValue::Time(m.last_observed), KeyValue::Uuid(m.id)]
}

fn condition(backend: sea_orm::DbBackend, filter: &InsightFilter) -> Condition {
    use insight::Column as C;
    let mut cond = Condition::all();
    if !filter.config_ids.is_empty() {
        cond = cond.add(super::id_in(backend, "config_id", &filter.config_ids));
    }
    if !filter.analyzers.is_empty() {
        cond = cond.add(C::Analyzer.is_in(filter.analyzers.iter().cloned()));
    }
    if !filter.types.is_empty() {
        cond = cond.add(C::AnalysisType.is_in(filter.types.iter().cloned()));
    }
    if let Some(severity) =
        super::severity_condition(C::Severity, &filter.severities, filter.min_severity)
    {
        cond = cond.add(severity);
    }
    if !filter.statuses.is_empty() {
        cond = cond.add(C::Status.is_in(filter.statuses.iter().cloned()));
    }
    cond
}

impl Store {
    /// A page of insights matching `filter`, most recently observed first.
    pub async fn list_insights(
        &self,
        filter: &InsightFilter,
        page: &PageRequest,
    ) -> Result<Page<insight::Model>> {
        let select = insight::Entity::find().filter(condition(self.backend(), filter));
        keyset().fetch(self.reads(), select, page, key).await
    }

    /// How many insights match `filter`.
    pub async fn count_insights(&self, filter: &InsightFilter) -> Result<u64> {
        Ok(insight::Entity::find()
            .filter(condition(self.backend(), filter))
            .count(self.reads())
            .await?)
    }

    /// Insights by id.
    pub async fn get_insights(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, insight::Model>> {
        self.rows_by_id::<insight::Entity>(ids, |m| m.id).await
    }
}
