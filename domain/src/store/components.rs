//! Reads of the topology (SPEC §9): components as filtered keyset pages by
//! name, by id, the children of components (their own tree plus the
//! components their selectors adopted), and the components an item is
//! attached to. Topologies write components (issue #7); this module only
//! reads.

use std::collections::HashMap;

use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Store;
use super::page::{KeyKind, KeyValue, Keyset, Page, PageRequest, SortKey};
use crate::entities::component;
use crate::error::Result;
use crate::model::Health;

/// Where in the tree a list of components is taken from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ComponentScope {
    /// Anywhere.
    #[default]
    All,
    /// Top-level components only (no parent).
    Roots,
    /// Children of this component: its own tree's and the adopted ones.
    ChildrenOf(Uuid),
}

/// Which components a list returns. Empty fields do not restrict.
#[derive(Debug, Clone, Default)]
pub struct ComponentFilter {
    /// Only these ids.
    pub ids: Vec<Uuid>,
    /// Components of these topologies.
    pub topology_ids: Vec<Uuid>,
    /// Exact component types.
    pub types: Vec<String>,
    /// Any of these own health values.
    pub health: Vec<Health>,
    /// Any of these rolled-up health values.
    pub rolled_up_health: Vec<Health>,
    /// Where in the tree.
    pub scope: ComponentScope,
    /// Include soft-deleted components.
    pub include_deleted: bool,
}

fn keyset() -> Keyset {
    Keyset::new(
        vec![SortKey {
            sql: "name".into(),
            descending: false,
            kind: KeyKind::Text,
        }],
        "id",
        false,
    )
}

fn key(m: &component::Model) -> Vec<KeyValue> {
    vec![KeyValue::Text(Some(m.name.clone())), KeyValue::Uuid(m.id)]
}

/// Components adopted by `parent` through a live selector link.
const ADOPTED: &str = "id IN (SELECT component_id FROM component_relationships WHERE parent_id = ? AND deleted_at IS NULL)";

fn condition(backend: sea_orm::DbBackend, filter: &ComponentFilter) -> Condition {
    use component::Column as C;
    let mut cond = Condition::all();
    if !filter.include_deleted {
        cond = cond.add(C::DeletedAt.is_null());
    }
    if !filter.ids.is_empty() {
        cond = cond.add(super::id_in(backend, "id", &filter.ids));
    }
    if !filter.topology_ids.is_empty() {
        cond = cond.add(super::id_in(backend, "topology_id", &filter.topology_ids));
    }
    if !filter.types.is_empty() {
        cond = cond.add(C::ComponentType.is_in(filter.types.iter().cloned()));
    }
    if !filter.health.is_empty() {
        cond = cond.add(C::Health.is_in(filter.health.iter().map(|h| h.as_str())));
    }
    if !filter.rolled_up_health.is_empty() {
        cond =
            cond.add(C::RolledUpHealth.is_in(filter.rolled_up_health.iter().map(|h| h.as_str())));
    }
    match filter.scope {
        ComponentScope::All => {}
        ComponentScope::Roots => cond = cond.add(C::ParentId.is_null()),
        ComponentScope::ChildrenOf(parent) => {
            cond = cond.add(
                Condition::any()
                    .add(C::ParentId.eq(parent))
                    .add(super::cust(backend, ADOPTED, vec![parent.into()])),
            );
        }
    }
    cond
}

impl Store {
    /// A page of components matching `filter`, by name.
    pub async fn list_components(
        &self,
        filter: &ComponentFilter,
        page: &PageRequest,
    ) -> Result<Page<component::Model>> {
        let select = component::Entity::find()
            .filter(self.with_visible_components(condition(self.backend(), filter)));
        keyset().fetch(self.reads(), select, page, key).await
    }

    /// How many components match `filter`.
    pub async fn count_components(&self, filter: &ComponentFilter) -> Result<u64> {
        Ok(component::Entity::find()
            .filter(self.with_visible_components(condition(self.backend(), filter)))
            .count(self.reads())
            .await?)
    }

    /// Components by id, deleted ones included.
    pub async fn get_components(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, component::Model>> {
        let base = component::Entity::find().filter(self.with_visible_components(Condition::all()));
        self.rows_by_id(base, ids, |m| m.id).await
    }

    /// The live children of each of `parents` (own tree and adopted), by
    /// name, in two statements however many parents there are.
    pub async fn component_children(
        &self,
        parents: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<component::Model>>> {
        use component::Column as C;
        let mut out: HashMap<Uuid, Vec<component::Model>> = HashMap::new();
        if parents.is_empty() {
            return Ok(out);
        }
        let own = component::Entity::find()
            .filter(self.with_visible_components(Condition::all()))
            .filter(C::DeletedAt.is_null())
            .filter(super::id_in(self.backend(), "parent_id", parents))
            .order_by_asc(C::Name)
            .order_by_asc(C::Id)
            .all(self.reads())
            .await?;
        for c in own {
            if let Some(parent) = c.parent_id {
                out.entry(parent).or_default().push(c);
            }
        }
        let (list, values) = super::in_ids(self.backend(), parents);
        let links = self
            .link_pairs(
                &format!(
                    "SELECT parent_id AS a, component_id AS b FROM component_relationships \
                     WHERE parent_id{list} AND deleted_at IS NULL"
                ),
                values,
            )
            .await?;
        self.attach_linked(links, &mut out).await?;
        for children in out.values_mut() {
            children.sort_by(|x, y| (&x.name, x.id).cmp(&(&y.name, y.id)));
            children.dedup_by_key(|c| c.id);
        }
        Ok(out)
    }

    /// The live components each of `config_ids` is attached to, by name,
    /// in two statements however many items there are.
    pub async fn components_of_items(
        &self,
        config_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<component::Model>>> {
        let mut out: HashMap<Uuid, Vec<component::Model>> = HashMap::new();
        if config_ids.is_empty() {
            return Ok(out);
        }
        let (list, values) = super::in_ids(self.backend(), config_ids);
        let links = self
            .link_pairs(
                &format!(
                    "SELECT DISTINCT config_id AS a, component_id AS b FROM config_component_relationships \
                     WHERE config_id{list} AND deleted_at IS NULL"
                ),
                values,
            )
            .await?;
        self.attach_linked(links, &mut out).await?;
        for components in out.values_mut() {
            components.sort_by(|x, y| (&x.name, x.id).cmp(&(&y.name, y.id)));
        }
        Ok(out)
    }

    /// `(a, b)` uuid pairs of a link query.
    async fn link_pairs(
        &self,
        sql: &str,
        values: Vec<sea_orm::Value>,
    ) -> Result<Vec<(Uuid, Uuid)>> {
        let rows = self
            .reads()
            .query_all_raw(super::stmt(self.backend(), sql, values))
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<Uuid>("", "a")?, r.try_get::<Uuid>("", "b")?)))
            .collect()
    }

    /// Loads the live `b` components of `links` and files them under `a`.
    async fn attach_linked(
        &self,
        links: Vec<(Uuid, Uuid)>,
        out: &mut HashMap<Uuid, Vec<component::Model>>,
    ) -> Result<()> {
        let mut ids: Vec<Uuid> = links.iter().map(|(_, b)| *b).collect();
        ids.sort();
        ids.dedup();
        let found = self.get_components(&ids).await?;
        for (a, b) in links {
            if let Some(c) = found.get(&b).filter(|c| c.deleted_at.is_none()) {
                out.entry(a).or_default().push(c.clone());
            }
        }
        Ok(())
    }
}
