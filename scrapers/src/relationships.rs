//! `transform.relationship` rules (SPEC §4): a CEL `filter` picks the items
//! a rule applies to; a selector template (`id`, `externalId`, `type`,
//! `name`, `namespace`, `labels`, each a literal, a JSONPath or
//! `{expr: CEL}`) or an `expr` returning a list of selectors names the items
//! to link to. Selectors are resolved once every item of the batch is known,
//! against those items and the catalog (this scraper's items, or with
//! `scope: all` everyone's). `parent: true` makes the match upstream, and a
//! single match the hard parent.
//!
//! `kubernetes[].relationships[]` lookups (`{kind, name, namespace}`, each
//! a literal, `{value}`, `{label}`, a JSONPath or `{expr}`) compile to rules
//! of the same kind: for every object of that cluster they find the object
//! of that kind, name and namespace (the object's own namespace when none
//! is given; none for cluster-scoped kinds) in the same cluster, and link
//! it upstream with a soft `<Kind><ObjectKind>` edge.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratum_domain::celx::Expression;
use stratum_domain::store::selectors::ItemSelector;
use stratum_domain::{ItemRef, ScrapedItem, ScrapedRelationship, Store};
use uuid::Uuid;

use crate::config::{Ctx, Severity};
use crate::extract::{Field, FieldSource};

/// One `transform.relationship[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipRuleSpec {
    /// CEL: which items the rule applies to (all when absent).
    #[serde(default)]
    pub filter: Option<String>,
    /// The other item's id.
    #[serde(default)]
    pub id: Option<FieldSource>,
    /// One of its external ids.
    #[serde(default)]
    pub external_id: Option<FieldSource>,
    /// Its type.
    #[serde(default, rename = "type")]
    pub item_type: Option<FieldSource>,
    /// Its name.
    #[serde(default)]
    pub name: Option<FieldSource>,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<FieldSource>,
    /// Labels it carries.
    #[serde(default)]
    pub labels: BTreeMap<String, FieldSource>,
    /// CEL returning a list of selectors (`[{"type": …, "name": …}]`),
    /// instead of the template.
    #[serde(default)]
    pub expr: Option<String>,
    /// `self` (this scraper's items, the default) or `all`.
    #[serde(default)]
    pub scope: Option<String>,
    /// The match is upstream; a single match becomes the hard parent.
    #[serde(default)]
    pub parent: bool,
    /// The edge's relation name (`Related` by default).
    #[serde(default)]
    pub relation: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// A compiled selector template.
#[derive(Debug, Default)]
struct Template {
    id: Option<Field>,
    external_id: Option<Field>,
    item_type: Option<Field>,
    name: Option<Field>,
    namespace: Option<Field>,
    labels: Vec<(String, Field)>,
}

/// One `kubernetes[].relationships[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesLookupSpec {
    /// The other object's kind (`Kustomization`).
    #[serde(default)]
    pub kind: Option<FieldSource>,
    /// Its name.
    #[serde(default)]
    pub name: Option<FieldSource>,
    /// Its namespace; the object's own when absent.
    #[serde(default)]
    pub namespace: Option<FieldSource>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// A compiled `kubernetes[].relationships[]` entry.
#[derive(Debug)]
struct KubernetesLookup {
    cluster: String,
    kind: Field,
    name: Field,
    namespace: Option<Field>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct RelationshipRule {
    filter: Option<Expression>,
    template: Option<Template>,
    expr: Option<Expression>,
    lookup: Option<KubernetesLookup>,
    scope_all: bool,
    parent: bool,
    relation: String,
}

/// A selector an item's rules produced, waiting to be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLink {
    /// What to find.
    pub selector: ItemSelector,
    /// Among every scraper's items, not only this one's.
    pub scope_all: bool,
    /// The match is upstream.
    pub upstream: bool,
    /// A single match becomes the hard parent.
    pub parent: bool,
    /// The selector is an exact type and external id: the edge is kept as
    /// a reference the store resolves when the run settles, so the other
    /// end may arrive later in the run.
    pub by_reference: bool,
    /// The relation name.
    pub relation: String,
}

/// Compiles the `relationships` of every `kubernetes` entry.
pub(crate) fn compile_kubernetes(
    ctx: &mut Ctx<'_>,
    entries: &[crate::kubernetes::spec::KubernetesSpec],
) -> Vec<RelationshipRule> {
    let mut rules = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(cluster) = entry.cluster_name.clone().filter(|c| !c.trim().is_empty()) else {
            continue;
        };
        for (j, spec) in entry.relationships.iter().enumerate() {
            let at = format!("kubernetes[{i}].relationships[{j}]");
            ctx.unsupported(&format!("spec.{at}."), &spec.other);
            let (Some(kind), Some(name)) = (&spec.kind, &spec.name) else {
                ctx.at(
                    "relationships:",
                    Severity::Error,
                    format!("{at}: kind and name are required"),
                );
                continue;
            };
            let kind = ctx.field(&format!("{at}.kind"), &Some(kind.clone()));
            let name = ctx.field(&format!("{at}.name"), &Some(name.clone()));
            let namespace = ctx.field(&format!("{at}.namespace"), &spec.namespace);
            let (Some(kind), Some(name)) = (kind, name) else {
                continue;
            };
            rules.push(RelationshipRule {
                filter: None,
                template: None,
                expr: None,
                lookup: Some(KubernetesLookup {
                    cluster: cluster.clone(),
                    kind,
                    name,
                    namespace,
                }),
                scope_all: false,
                parent: false,
                relation: String::new(),
            });
        }
    }
    rules
}

/// Kinds without a namespace, whose lookups ignore one.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "ClusterIssuer",
    "Cluster",
];

impl KubernetesLookup {
    /// The selector and relation for one object, `None` when the rule
    /// does not apply to it or a value came out empty.
    fn evaluate(
        &self,
        config: &Value,
        variables: &[(&str, &Value)],
    ) -> Result<Option<(ItemSelector, String)>, String> {
        let var = |k: &str| variables.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let Some(own_kind) = var("type")
            .and_then(Value::as_str)
            .and_then(|t| t.strip_prefix("Kubernetes::"))
        else {
            return Ok(None);
        };
        let cluster = var("tags")
            .and_then(|t| t.get("cluster"))
            .and_then(Value::as_str);
        if cluster != Some(self.cluster.as_str()) {
            return Ok(None);
        }
        let text = |field: &Field, what: &str| {
            field
                .string(config, variables)
                .map(|v| v.filter(|v| !v.is_empty()))
                .map_err(|e| format!("{what}: {e}"))
        };
        let (Some(kind), Some(name)) = (text(&self.kind, "kind")?, text(&self.name, "name")?)
        else {
            return Ok(None);
        };
        let namespace = if CLUSTER_SCOPED.contains(&kind.as_str()) {
            None
        } else {
            match &self.namespace {
                Some(field) => match text(field, "namespace")? {
                    Some(ns) => Some(ns),
                    None => return Ok(None),
                },
                // `namespace` is reserved in CEL, so it travels in `item`.
                None => var("item")
                    .and_then(|i| i.get("namespace"))
                    .or_else(|| config.pointer("/metadata/namespace"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        };
        let key =
            crate::kubernetes_links::object_key(Some(&self.cluster), namespace.as_deref(), &name);
        let selector = ItemSelector {
            external_id: Some(key),
            item_type: Some(format!("Kubernetes::{kind}")),
            ..ItemSelector::default()
        };
        Ok(Some((selector, format!("{kind}{own_kind}"))))
    }
}

/// Compiles `transform.relationship`.
pub(crate) fn compile(ctx: &mut Ctx<'_>, specs: &[RelationshipRuleSpec]) -> Vec<RelationshipRule> {
    let mut rules = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("transform.relationship[{i}]");
        ctx.unsupported(&format!("spec.{at}."), &spec.other);
        let filter = match &spec.filter {
            Some(f) => match ctx.cel(&format!("{at}.filter"), f) {
                Some(e) => Some(e),
                None => continue,
            },
            None => None,
        };
        let has_template = spec.id.is_some()
            || spec.external_id.is_some()
            || spec.item_type.is_some()
            || spec.name.is_some()
            || spec.namespace.is_some()
            || !spec.labels.is_empty();
        let (template, expr) = match (&spec.expr, has_template) {
            (Some(_), true) => {
                ctx.at(
                    "relationship:",
                    Severity::Error,
                    format!("{at}: give either a selector or expr, not both"),
                );
                continue;
            }
            (Some(e), false) => match ctx.cel(&format!("{at}.expr"), e) {
                Some(e) => (None, Some(e)),
                None => continue,
            },
            (None, true) => {
                if spec.id.is_none()
                    && spec.external_id.is_none()
                    && spec.item_type.is_none()
                    && spec.name.is_none()
                {
                    ctx.at(
                        "relationship:",
                        Severity::Error,
                        format!("{at}: a selector needs id, externalId, type or name"),
                    );
                    continue;
                }
                let template = Template {
                    id: ctx.field(&format!("{at}.id"), &spec.id),
                    external_id: ctx.field(&format!("{at}.externalId"), &spec.external_id),
                    item_type: ctx.field(&format!("{at}.type"), &spec.item_type),
                    name: ctx.field(&format!("{at}.name"), &spec.name),
                    namespace: ctx.field(&format!("{at}.namespace"), &spec.namespace),
                    labels: spec
                        .labels
                        .iter()
                        .filter_map(|(k, v)| {
                            ctx.field(&format!("{at}.labels.{k}"), &Some(v.clone()))
                                .map(|f| (k.clone(), f))
                        })
                        .collect(),
                };
                (Some(template), None)
            }
            (None, false) => {
                ctx.at(
                    "relationship:",
                    Severity::Error,
                    format!("{at}: needs a selector (id, externalId, type, name…) or expr"),
                );
                continue;
            }
        };
        let scope_all = match spec.scope.as_deref() {
            None | Some("self") => false,
            Some("all") => true,
            Some(other) => {
                ctx.at(
                    other,
                    Severity::Error,
                    format!("{at}.scope: {other:?} is not self or all"),
                );
                continue;
            }
        };
        rules.push(RelationshipRule {
            filter,
            template,
            expr,
            lookup: None,
            scope_all,
            parent: spec.parent,
            relation: spec.relation.clone().unwrap_or_else(|| "Related".into()),
        });
    }
    rules
}

fn selector_from_map(map: &serde_json::Map<String, Value>) -> Result<ItemSelector, String> {
    let text = |k: &str| match map.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let id = match text("id") {
        Some(i) => Some(Uuid::parse_str(&i).map_err(|_| format!("id {i:?} is not a UUID"))?),
        None => None,
    };
    let labels = map
        .get("labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(ItemSelector {
        id,
        external_id: text("externalId").or_else(|| text("external_id")),
        item_type: text("type"),
        name: text("name"),
        namespace: text("namespace"),
        labels,
    })
}

/// The selectors `rules` produce for one item; `variables` are what rule
/// filters see (`config`, `type`, `name`…). A failing rule is skipped and
/// says why.
pub(crate) fn evaluate(
    rules: &[RelationshipRule],
    variables: &[(&str, &Value)],
) -> (Vec<PendingLink>, Vec<String>) {
    let mut links = Vec::new();
    let mut errors = Vec::new();
    let config = variables
        .iter()
        .find(|(k, _)| *k == "config")
        .map(|(_, v)| *v)
        .unwrap_or(&Value::Null);
    let extra: Vec<(&str, &Value)> = variables
        .iter()
        .filter(|(k, _)| *k != "config")
        .copied()
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        if let Some(filter) = &rule.filter {
            match filter.evaluate(variables) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => continue,
                Ok(other) => {
                    errors.push(format!(
                        "relationship[{i}] filter gave {other}, not a boolean"
                    ));
                    continue;
                }
                Err(e) => {
                    errors.push(format!("relationship[{i}] filter: {e}"));
                    continue;
                }
            }
        }
        let link = |selector| PendingLink {
            selector,
            scope_all: rule.scope_all,
            upstream: rule.parent,
            parent: rule.parent,
            by_reference: false,
            relation: rule.relation.clone(),
        };
        if let Some(lookup) = &rule.lookup {
            match lookup.evaluate(config, &extra) {
                Ok(Some((selector, relation))) => links.push(PendingLink {
                    selector,
                    scope_all: false,
                    upstream: true,
                    parent: false,
                    by_reference: true,
                    relation,
                }),
                Ok(None) => {}
                Err(e) => errors.push(format!("kubernetes relationships: {e}")),
            }
        } else if let Some(t) = &rule.template {
            let mut map = serde_json::Map::new();
            let mut empty = false;
            let mut failed = None;
            let fields = [
                ("id", &t.id),
                ("externalId", &t.external_id),
                ("type", &t.item_type),
                ("name", &t.name),
                ("namespace", &t.namespace),
            ];
            for (key, field) in fields {
                let Some(field) = field else { continue };
                match field.string(config, &extra) {
                    Ok(Some(v)) if !v.is_empty() => {
                        map.insert(key.into(), Value::String(v));
                    }
                    Ok(_) => empty = true,
                    Err(e) => failed = Some(format!("relationship[{i}].{key}: {e}")),
                }
            }
            let mut labels = serde_json::Map::new();
            for (key, field) in &t.labels {
                match field.string(config, &extra) {
                    Ok(Some(v)) if !v.is_empty() => {
                        labels.insert(key.clone(), Value::String(v));
                    }
                    Ok(_) => empty = true,
                    Err(e) => failed = Some(format!("relationship[{i}].labels.{key}: {e}")),
                }
            }
            if let Some(e) = failed {
                errors.push(e);
                continue;
            }
            // A value that comes out empty skips the rule (SPEC §4).
            if empty {
                continue;
            }
            if !labels.is_empty() {
                map.insert("labels".into(), Value::Object(labels));
            }
            match selector_from_map(&map) {
                Ok(s) => links.push(link(s)),
                Err(e) => errors.push(format!("relationship[{i}]: {e}")),
            }
        } else if let Some(expr) = &rule.expr {
            match expr.evaluate(variables) {
                Ok(Value::Array(list)) => {
                    for entry in list {
                        match entry.as_object().map(selector_from_map) {
                            Some(Ok(s)) if s.is_indexed() => links.push(link(s)),
                            Some(Ok(_)) => errors.push(format!("relationship[{i}].expr: a selector needs id, externalId, type or name")),
                            Some(Err(e)) => errors.push(format!("relationship[{i}].expr: {e}")),
                            None => errors.push(format!("relationship[{i}].expr: {entry} is not a selector object")),
                        }
                    }
                }
                Ok(Value::Null) => {}
                Ok(other) => errors.push(format!(
                    "relationship[{i}].expr gave {other}, not a list of selectors"
                )),
                Err(e) => errors.push(format!("relationship[{i}].expr: {e}")),
            }
        }
    }
    (links, errors)
}

fn matches(selector: &ItemSelector, id: Uuid, item: &ScrapedItem) -> bool {
    selector.id.is_none_or(|s| s == id)
        && selector
            .external_id
            .as_ref()
            .is_none_or(|e| item.external_ids.iter().any(|x| x.eq_ignore_ascii_case(e)))
        && selector
            .item_type
            .as_ref()
            .is_none_or(|t| *t == item.item_type)
        && selector.name.as_ref().is_none_or(|n| *n == item.name)
        && selector
            .namespace
            .as_ref()
            .is_none_or(|n| item.namespace.as_ref() == Some(n))
        && selector
            .labels
            .iter()
            .all(|(k, v)| item.labels.get(k) == Some(v))
}

/// Resolves the items' pending links against the batch and the catalog,
/// adding edges (and single-match parents); returns how many selectors
/// matched nothing.
pub(crate) async fn resolve(
    store: &Store,
    scraper_id: Uuid,
    items: &mut [ScrapedItem],
    pending: Vec<(usize, PendingLink)>,
) -> stratum_domain::error::Result<i64> {
    if pending.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = items
        .iter()
        .map(|i| {
            i.source_id.unwrap_or_else(|| {
                stratum_domain::ids::item_id(scraper_id, &i.item_type, &i.primary_external_id())
            })
        })
        .collect();
    let mut looked_up: HashMap<(ItemSelector, bool), Vec<Uuid>> = HashMap::new();
    let mut unresolved = 0;
    for (index, link) in pending {
        if link.by_reference
            && let (Some(item_type), Some(external_id)) =
                (&link.selector.item_type, &link.selector.external_id)
        {
            if let Some(item) = items.get_mut(index) {
                item.relationships.push(ScrapedRelationship {
                    other: ItemRef::External {
                        item_type: item_type.clone(),
                        external_id: external_id.clone(),
                    },
                    other_is_upstream: link.upstream,
                    relation: link.relation.clone(),
                });
            }
            continue;
        }
        let key = (link.selector.clone(), link.scope_all);
        if !looked_up.contains_key(&key) {
            let mut found: Vec<Uuid> = items
                .iter()
                .zip(&ids)
                .filter(|(item, id)| matches(&link.selector, **id, item))
                .map(|(_, id)| *id)
                .collect();
            let scope = (!link.scope_all).then_some(scraper_id);
            for id in store.find_items(&link.selector, scope).await? {
                if !found.contains(&id) {
                    found.push(id);
                }
            }
            looked_up.insert(key.clone(), found);
        }
        let own = ids.get(index).copied();
        let found: Vec<Uuid> = looked_up
            .get(&key)
            .map(|f| f.iter().copied().filter(|f| Some(*f) != own).collect())
            .unwrap_or_default();
        let Some(item) = items.get_mut(index) else {
            continue;
        };
        match found.as_slice() {
            [] => unresolved += 1,
            [only] if link.parent => {
                item.parent = Some((ItemRef::Id(*only), link.relation.clone()))
            }
            many => {
                for other in many {
                    item.relationships.push(ScrapedRelationship {
                        other: ItemRef::Id(*other),
                        other_is_upstream: link.upstream,
                        relation: link.relation.clone(),
                    });
                }
            }
        }
    }
    Ok(unresolved)
}
