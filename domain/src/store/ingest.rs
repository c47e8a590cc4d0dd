//! Batch ingest of scraped items (SPEC §2 data flow, §4, §5).
//!
//! Each batch is written in one transaction: new and changed items are
//! upserted in multi-row statements, unchanged items only get a bulk
//! `last_scraped_at` touch, and diff and health-transition changes are
//! recorded with fingerprint dedupe. Edges and stale deletion are settled
//! once per run by [`Store::complete_run`], behind the safety valve.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Value};
use serde_json::json;
use uuid::Uuid;

use super::rollup::{self, RollupDelta};
use super::{MAX_PARAMS, Store, marks, stmt};
use crate::diff;
use crate::entities::config_item::{Column as C, Entity as ConfigItems};
use crate::error::{DomainError, Result};
use crate::fingerprint::fingerprint;
use crate::ids;
use crate::model::{DeleteReason, Health, ItemRef, ScrapedItem, Severity};

/// Changes with the same fingerprint inside this window bump a count instead
/// of inserting a row.
pub const DEDUPE_WINDOW: Duration = Duration::hours(1);

/// State carried across the batches of one scrape run.
#[derive(Debug)]
pub struct IngestSession {
    /// The scraper being run.
    pub scraper_id: Uuid,
    /// The run being recorded.
    pub run_id: Uuid,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    paths: HashMap<Uuid, String>,
    keys: HashMap<(String, String), Uuid>,
    seen: HashSet<Uuid>,
    deferred_parents: Vec<(Uuid, ItemRef, String)>,
    unresolvable: HashSet<ItemRef>,
    index: Option<HashMap<Uuid, Existing>>,
    preloaded_live: Option<i64>,
    soft_edges: Vec<(Uuid, ItemRef, bool, String)>,
    /// Unchanged items whose `last_scraped_at` is younger than this are not
    /// touched again (a steady re-scrape then writes nothing). Stale
    /// deletion subtracts it from its cutoff, so it can only delete late,
    /// never early.
    pub touch_granularity: Duration,
    /// Totals over the run so far.
    pub stats: BatchStats,
    /// `transform.changes` rules applied to the changes batches record.
    pub change_rules: Option<std::sync::Arc<crate::change_rules::ChangeRules>>,
}

/// Counters of what a batch (or a whole run) wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Items received.
    pub scraped: i64,
    /// Items inserted.
    pub created: i64,
    /// Items whose row was rewritten.
    pub updated: i64,
    /// Items only touched.
    pub unchanged: i64,
    /// Change rows inserted or bumped.
    pub changes: i64,
    /// Soft-deleted items that reappeared (counted in `updated` too).
    pub revived: i64,
    /// Items a change rule deleted.
    pub deleted_by_rules: i64,
    /// Change rules that failed (the first 100).
    pub rule_errors: Vec<String>,
    /// What the items' insights did.
    pub insights: super::insights::InsightStats,
}

impl BatchStats {
    /// Adds another batch's counters.
    pub fn add(&mut self, other: &BatchStats) {
        self.scraped += other.scraped;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.changes += other.changes;
        self.revived += other.revived;
        self.deleted_by_rules += other.deleted_by_rules;
        self.insights.add(&other.insights);
        let room = 100usize.saturating_sub(self.rule_errors.len());
        self.rule_errors
            .extend(other.rule_errors.iter().take(room).cloned());
    }
}

impl IngestSession {
    /// Starts a session for a run.
    pub fn new(scraper_id: Uuid, run_id: Uuid, started_at: DateTime<Utc>) -> Self {
        IngestSession {
            scraper_id,
            run_id,
            started_at,
            paths: HashMap::new(),
            keys: HashMap::new(),
            seen: HashSet::new(),
            deferred_parents: Vec::new(),
            unresolvable: HashSet::new(),
            index: None,
            preloaded_live: None,
            soft_edges: Vec::new(),
            touch_granularity: Duration::zero(),
            stats: BatchStats::default(),
            change_rules: None,
        }
    }

    /// Asks for a soft edge between `id`, a live item of this scraper, and
    /// `other`, upserted (never tombstoned by this run) when the run
    /// settles; a miss counts as an unresolved edge.
    pub fn add_soft_edge(
        &mut self,
        id: Uuid,
        other: ItemRef,
        other_is_upstream: bool,
        relation: impl Into<String>,
    ) {
        self.soft_edges
            .push((id, other, other_is_upstream, relation.into()));
    }

    /// Number of distinct items seen so far.
    pub fn seen_count(&self) -> usize {
        self.seen.len()
    }

    /// The id an item will get in this session.
    pub fn item_id(&self, item: &ScrapedItem) -> Uuid {
        item.source_id.unwrap_or_else(|| {
            ids::item_id(
                self.scraper_id,
                &item.item_type,
                &item.primary_external_id(),
            )
        })
    }
}

/// A batch whose identities, parents and paths are settled, ready for
/// [`Store::write_batch`].
#[derive(Debug)]
pub struct PreparedBatch {
    scraper_id: Uuid,
    change_rules: Option<std::sync::Arc<crate::change_rules::ChangeRules>>,
    touch_granularity: Duration,
    scraped: i64,
    prepared: Vec<Prepared>,
    known: HashMap<Uuid, Existing>,
    unknown: Vec<Uuid>,
}

/// How a run ended, as reported by the scraper.
#[derive(Debug, Clone)]
pub struct RunCompletion {
    /// A full listing (enables stale deletion and edge tombstoning).
    pub full: bool,
    /// Errors met while scraping (any error blocks deletions).
    pub errors: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// `staleItemAge`; `None` keeps stale items.
    pub stale_item_age: Option<Duration>,
    /// `maxDeletePercent`.
    pub max_delete_percent: f64,
    /// Override the safety valve.
    pub allow_mass_delete: bool,
}

/// What [`Store::complete_run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Items soft-deleted as stale.
    pub deleted: i64,
    /// Edges tombstoned.
    pub edges_tombstoned: i64,
    /// Edges created or revived.
    pub edges_created: i64,
    /// Edges whose other end is unknown.
    pub edges_unresolved: i64,
    /// The safety valve blocked deletions; the reason.
    pub deletions_blocked: Option<String>,
}

/// The lightweight part of an existing row used to classify an item.
#[derive(Debug, Clone)]
struct Existing {
    config_hash: String,
    health: String,
    status: Option<String>,
    ready: bool,
    description: Option<String>,
    parent_id: Option<Uuid>,
    path: String,
    row_hash: String,
    last_scraped_at: DateTime<Utc>,
    deleted: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A change about to be written.
#[derive(Clone)]
struct NewChange {
    config_id: Uuid,
    change_type: String,
    severity: Severity,
    source: String,
    summary: String,
    patches: Option<serde_json::Value>,
    diff: Option<String>,
    details: Option<serde_json::Value>,
    fingerprint: String,
}

/// An item ready to be written.
#[derive(Debug)]
struct Prepared {
    id: Uuid,
    item: ScrapedItem,
    external_ids: Vec<String>,
    primary: String,
    hash: String,
    parent: Option<(Uuid, String)>,
    path: String,
}

const ITEM_COLUMNS: [C; 28] = [
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
    C::Config,
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
    C::CreatedAt,
    C::UpdatedAt,
    C::LastScrapedAt,
    C::DeletedAt,
    C::DeleteReason,
];

fn map_to_json(map: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

fn child_prefix(path: &str, id: Uuid) -> String {
    if path.is_empty() {
        id.to_string()
    } else {
        format!("{path}.{id}")
    }
}

/// SHA-256 over everything stored for an item besides its parent and path:
/// when it matches the stored one, the row needs no rewrite.
fn row_hash(
    config_hash: &str,
    item: &ScrapedItem,
    tags: &serde_json::Value,
    labels: &serde_json::Value,
    external_ids: &serde_json::Value,
) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    fn opt(s: &Option<String>) -> &[u8] {
        s.as_deref().map(str::as_bytes).unwrap_or(b"\0null")
    }
    field(config_hash.as_bytes());
    field(item.item_type.as_bytes());
    field(item.class.as_bytes());
    field(item.name.as_bytes());
    field(opt(&item.namespace));
    field(tags.to_string().as_bytes());
    field(labels.to_string().as_bytes());
    field(item.properties.to_string().as_bytes());
    field(external_ids.to_string().as_bytes());
    field(opt(&item.source));
    field(item.health.health.as_str().as_bytes());
    field(opt(&item.health.status));
    field(if item.health.ready { b"1" } else { b"0" });
    field(opt(&item.health.message));
    hex::encode(hasher.finalize())
}

fn health_change_type(h: Health) -> &'static str {
    match h {
        Health::Healthy => "Healthy",
        Health::Unhealthy => "Unhealthy",
        Health::Warning => "Warning",
        Health::Unknown => "HealthUnknown",
    }
}

fn health_severity(h: Health) -> Severity {
    match h {
        Health::Unhealthy => Severity::Medium,
        Health::Warning => Severity::Low,
        _ => Severity::Info,
    }
}

fn sql_err(e: sea_orm::sea_query::error::Error) -> DomainError {
    DomainError::Corrupt(format!("statement build: {e}"))
}

impl Store {
    /// Resolves item references to ids of live items. References that match
    /// nothing are absent from the result.
    pub async fn resolve_refs(&self, refs: &[ItemRef]) -> Result<HashMap<ItemRef, Uuid>> {
        let backend = self.backend();
        let mut out = HashMap::new();
        let by_id: Vec<Uuid> = refs
            .iter()
            .filter_map(|r| match r {
                ItemRef::Id(id) => Some(*id),
                ItemRef::External { .. } => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in by_id.chunks(1000) {
            let (list, ids_values) = super::in_ids(self.backend(), chunk);
            let sql = format!("SELECT id FROM config_items WHERE deleted_at IS NULL AND id{list}");
            let rows = self
                .db
                .query_all_raw(stmt(backend, &sql, ids_values))
                .await?;
            for row in rows {
                let id: Uuid = row.try_get("", "id")?;
                out.insert(ItemRef::Id(id), id);
            }
        }
        let externals: Vec<(&String, &String)> = refs
            .iter()
            .filter_map(|r| match r {
                ItemRef::External {
                    item_type,
                    external_id,
                } => Some((item_type, external_id)),
                ItemRef::Id(_) => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in externals.chunks(500) {
            let ext: Vec<Value> = chunk
                .iter()
                .map(|(_, e)| Value::from(e.to_lowercase()))
                .collect();
            let sql = format!(
                "SELECT external_id, type, config_id FROM config_external_ids WHERE external_id IN ({})",
                marks(ext.len())
            );
            let rows = self.db.query_all_raw(stmt(backend, &sql, ext)).await?;
            let mut candidates: Vec<(String, String, Uuid)> = Vec::with_capacity(rows.len());
            for row in rows {
                candidates.push((
                    row.try_get("", "external_id")?,
                    row.try_get("", "type")?,
                    row.try_get("", "config_id")?,
                ));
            }
            // Several live items may carry one external id: the oldest wins.
            let ids: Vec<Uuid> = candidates
                .iter()
                .map(|(_, _, id)| *id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let live = self.live_created_at(&ids).await?;
            candidates.retain(|(_, _, id)| live.contains_key(id));
            candidates.sort_by_key(|(_, _, id)| (live.get(id).copied(), *id));
            for (external_id, item_type, id) in candidates {
                out.entry(ItemRef::External {
                    item_type,
                    external_id,
                })
                .or_insert(id);
            }
        }
        Ok(out)
    }

    /// Loads the classification columns of every item of the session's
    /// scraper in one query, so batches of a re-scrape need no per-batch
    /// read (SPEC §15: an unchanged re-scrape should cost almost nothing).
    pub async fn preload_existing(&self, session: &mut IngestSession) -> Result<usize> {
        let rows = self
            .db
            .query_all_raw(stmt(
                self.backend(),
                &format!("SELECT {EXISTING_COLUMNS} FROM config_items WHERE scraper_id = ?"),
                vec![session.scraper_id.into()],
            ))
            .await?;
        let mut index = HashMap::with_capacity(rows.len());
        for r in rows {
            let (id, e) = decode_existing(&r)?;
            index.insert(id, e);
        }
        let n = index.len();
        session.preloaded_live = Some(index.values().filter(|e| !e.deleted).count() as i64);
        session.index = Some(index);
        Ok(n)
    }

    async fn live_created_at(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, DateTime<Utc>>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(1000) {
            let (list, ids_values) = super::in_ids(self.backend(), chunk);
            let sql = format!(
                "SELECT id, created_at FROM config_items WHERE deleted_at IS NULL AND id{list}"
            );
            let rows = self
                .db
                .query_all_raw(stmt(self.backend(), &sql, ids_values))
                .await?;
            for row in rows {
                out.insert(row.try_get("", "id")?, row.try_get("", "created_at")?);
            }
        }
        Ok(out)
    }

    async fn paths_of(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(1000) {
            let (list, ids_values) = super::in_ids(self.backend(), chunk);
            let sql =
                format!("SELECT id, path FROM config_items WHERE deleted_at IS NULL AND id{list}");
            let rows = self
                .db
                .query_all_raw(stmt(self.backend(), &sql, ids_values))
                .await?;
            for row in rows {
                out.insert(row.try_get("", "id")?, row.try_get("", "path")?);
            }
        }
        Ok(out)
    }

    /// Writes one batch of scraped items in one transaction:
    /// [`Store::prepare_batch`] then [`Store::write_batch`].
    pub async fn ingest_batch(
        &self,
        session: &mut IngestSession,
        items: Vec<ScrapedItem>,
    ) -> Result<BatchStats> {
        let batch = self.prepare_batch(session, items).await?;
        let stats = self.write_batch(batch).await?;
        session.stats.add(&stats);
        Ok(stats)
    }

    /// How many prepared batches a scraper may have writing at once: two on
    /// PostgreSQL, so the server inserts one batch while the next is built
    /// and sent; one on SQLite, whose single writer serializes them anyway.
    pub fn write_concurrency(&self) -> usize {
        match self.backend() {
            sea_orm::DbBackend::Postgres => 2,
            _ => 1,
        }
    }

    /// The part of a batch that depends on the run so far: identity, parents
    /// and paths. Registers the items with the session (seen, keys, paths,
    /// soft edges) so the next batch can be prepared before this one is
    /// written. Any later failure fails the run.
    pub async fn prepare_batch(
        &self,
        session: &mut IngestSession,
        items: Vec<ScrapedItem>,
    ) -> Result<PreparedBatch> {
        let scraped = items.len() as i64;

        // Identify, dedupe within the batch (last wins) and hash.
        let mut order: Vec<Uuid> = Vec::with_capacity(items.len());
        let mut by_id: HashMap<Uuid, ScrapedItem> = HashMap::with_capacity(items.len());
        for item in items {
            let id = session.item_id(&item);
            if by_id.insert(id, item).is_none() {
                order.push(id);
            }
        }

        // Resolve parents: this batch, earlier batches of the run, then the database.
        let mut batch_keys: HashMap<(String, String), Uuid> = HashMap::new();
        for (id, item) in &by_id {
            for e in &item.external_ids {
                batch_keys.insert((item.item_type.clone(), e.to_lowercase()), *id);
            }
        }
        let mut parent_ids: HashMap<Uuid, Option<(Uuid, String)>> = HashMap::new();
        let mut unresolved: Vec<ItemRef> = Vec::new();
        for id in &order {
            let Some(item) = by_id.get(id) else { continue };
            if let Some((parent_ref, _)) = &item.parent {
                match parent_ref {
                    ItemRef::Id(p) => {
                        parent_ids.insert(*id, Some((*p, String::new())));
                    }
                    ItemRef::External {
                        item_type,
                        external_id,
                    } => match batch_keys
                        .get(&(item_type.clone(), external_id.to_lowercase()))
                        .or_else(|| {
                            session
                                .keys
                                .get(&(item_type.clone(), external_id.to_lowercase()))
                        }) {
                        Some(p) => {
                            parent_ids.insert(*id, Some((*p, String::new())));
                        }
                        // Refs that missed earlier in this run are settled at the end.
                        None if session.unresolvable.contains(parent_ref) => {}
                        None => unresolved.push(parent_ref.clone()),
                    },
                }
            }
        }
        let looked_up = if unresolved.is_empty() {
            HashMap::new()
        } else {
            self.resolve_refs(&unresolved).await?
        };
        let mut need_paths: Vec<Uuid> = Vec::new();
        for id in &order {
            let Some(item) = by_id.get(id) else { continue };
            let Some((parent_ref, relation)) = &item.parent else {
                continue;
            };
            let parent = match parent_ref {
                ItemRef::Id(p) => Some(*p),
                ItemRef::External {
                    item_type,
                    external_id,
                } => batch_keys
                    .get(&(item_type.clone(), external_id.to_lowercase()))
                    .or_else(|| {
                        session
                            .keys
                            .get(&(item_type.clone(), external_id.to_lowercase()))
                    })
                    .copied()
                    .or_else(|| {
                        looked_up
                            .get(&ItemRef::External {
                                item_type: item_type.clone(),
                                external_id: external_id.to_lowercase(),
                            })
                            .copied()
                    }),
            };
            match parent {
                Some(p) => {
                    parent_ids.insert(*id, Some((p, relation.clone())));
                    if !session.paths.contains_key(&p) && !by_id.contains_key(&p) {
                        need_paths.push(p);
                    }
                }
                None => {
                    parent_ids.insert(*id, None);
                    session.unresolvable.insert(parent_ref.clone());
                    session
                        .deferred_parents
                        .push((*id, lower(parent_ref), relation.clone()));
                }
            }
        }
        let db_paths = self.paths_of(&need_paths).await?;

        // Compute paths in order (parents earlier in the batch come first).
        let mut batch_paths: HashMap<Uuid, String> = HashMap::new();
        let mut prepared: Vec<Prepared> = Vec::with_capacity(order.len());
        for id in &order {
            let Some(item) = by_id.remove(id) else {
                continue;
            };
            let mut parent = parent_ids.get(id).cloned().flatten();
            let mut path = String::new();
            if let Some((p, _)) = &parent {
                let parent_path = batch_paths
                    .get(p)
                    .or_else(|| session.paths.get(p))
                    .or_else(|| db_paths.get(p))
                    .cloned();
                match parent_path {
                    // A parent whose path contains the child would make a cycle.
                    Some(pp) if *p != *id && !pp.contains(&id.to_string()) => {
                        path = child_prefix(&pp, *p);
                    }
                    Some(_) => parent = None,
                    None => {
                        if let Some((_, relation)) = &item.parent {
                            session
                                .deferred_parents
                                .push((*id, ItemRef::Id(*p), relation.clone()));
                        }
                        parent = None;
                    }
                }
            }
            batch_paths.insert(*id, path.clone());
            let mut external_ids: Vec<String> = Vec::new();
            for e in &item.external_ids {
                let e = e.to_lowercase();
                if !external_ids.contains(&e) {
                    external_ids.push(e);
                }
            }
            let primary = item.primary_external_id();
            if external_ids.is_empty() {
                external_ids.push(primary.clone());
            }
            let hash = item.config.hash().to_string();
            prepared.push(Prepared {
                id: *id,
                item,
                external_ids,
                primary,
                hash,
                parent,
                path,
            });
        }

        // Rows this batch writes or touches are re-read if they come again.
        let mut known = HashMap::with_capacity(prepared.len());
        let mut unknown = Vec::new();
        for p in &prepared {
            match session.index.as_mut().and_then(|index| index.remove(&p.id)) {
                Some(e) => {
                    known.insert(p.id, e);
                }
                None => unknown.push(p.id),
            }
        }
        for p in &prepared {
            session.seen.insert(p.id);
            for e in &p.external_ids {
                session
                    .keys
                    .insert((p.item.item_type.clone(), e.clone()), p.id);
            }
            for rel in &p.item.relationships {
                session.soft_edges.push((
                    p.id,
                    lower(&rel.other),
                    rel.other_is_upstream,
                    rel.relation.clone(),
                ));
            }
            session.paths.insert(p.id, p.path.clone());
        }
        Ok(PreparedBatch {
            scraper_id: session.scraper_id,
            change_rules: session.change_rules.clone(),
            touch_granularity: session.touch_granularity,
            scraped,
            prepared,
            known,
            unknown,
        })
    }

    /// Classifies and writes a prepared batch in one transaction: inserts
    /// new items, rewrites changed ones, touches unchanged ones, and records
    /// diff and health-transition changes. Needs no session, so batches of a
    /// run can be written concurrently (see [`Store::write_concurrency`]).
    pub async fn write_batch(&self, batch: PreparedBatch) -> Result<BatchStats> {
        let PreparedBatch {
            scraper_id,
            change_rules,
            touch_granularity,
            scraped,
            mut prepared,
            known,
            unknown,
        } = batch;
        let now = super::now();
        let mut stats = BatchStats {
            scraped,
            ..BatchStats::default()
        };
        let (_guard, txn) = self.write_txn().await?;
        let mut existing = known;
        if !unknown.is_empty() {
            existing.extend(load_existing(&txn, &unknown).await?);
        }
        let changed_config_ids: Vec<Uuid> = prepared
            .iter()
            .filter(|p| existing.get(&p.id).is_some_and(|e| e.config_hash != p.hash))
            .map(|p| p.id)
            .collect();
        let old_configs = load_configs(&txn, &changed_config_ids).await?;

        let mut rows: Vec<Vec<Value>> = Vec::new();
        let mut touch: Vec<Uuid> = Vec::new();
        let mut changes: Vec<NewChange> = Vec::new();
        let mut external_rows: Vec<(Uuid, Vec<String>, String)> = Vec::new();
        let mut new_external_rows: Vec<(Uuid, Vec<String>, String)> = Vec::new();
        let mut parent_moves: Vec<(Uuid, Option<(Uuid, String)>)> = Vec::new();
        let mut reparented: Vec<(String, String)> = Vec::new();

        let mut rule_deletes: Vec<Uuid> = Vec::new();
        let mut ups: Vec<Up> = Vec::new();
        let mut rollup = RollupDelta::default();
        let mut revived: Vec<Uuid> = Vec::new();
        let mut observations: Vec<(Uuid, crate::model::ScrapedInsight)> = Vec::new();
        for p in &mut prepared {
            observations.extend(p.item.insights.drain(..).map(|i| (p.id, i)));
            let first_change = changes.len();
            let item = &p.item;
            let health = item.health.health;
            let ext_json = json!(p.external_ids);
            let tags = map_to_json(&item.tags);
            let labels = map_to_json(&item.labels);
            let parent_id = p.parent.as_ref().map(|(id, _)| *id);
            let row_hash = row_hash(&p.hash, item, &tags, &labels, &ext_json);
            let (created_at, updated_at, write) = match existing.get(&p.id) {
                None => {
                    stats.created += 1;
                    new_external_rows.push((p.id, p.external_ids.clone(), item.item_type.clone()));
                    if p.parent.is_some() {
                        parent_moves.push((p.id, p.parent.clone()));
                    }
                    if matches!(health, Health::Unhealthy | Health::Warning) {
                        changes.push(health_change(p.id, Health::Unknown, None, item));
                    }
                    rollup.count(&p.path, health, 1);
                    (now, now, true)
                }
                Some(e) => {
                    let config_changed = e.config_hash != p.hash;
                    let meta_changed = e.deleted
                        || e.row_hash != row_hash
                        || e.parent_id != parent_id
                        || e.path != p.path;
                    if !config_changed && !meta_changed {
                        // Coarse touch: skip rows seen recently (see `touch_granularity`).
                        if now - e.last_scraped_at >= touch_granularity {
                            touch.push(p.id);
                        }
                        stats.unchanged += 1;
                        continue;
                    }
                    stats.updated += 1;
                    stats.revived += i64::from(e.deleted);
                    if e.deleted {
                        revived.push(p.id);
                    }
                    external_rows.push((p.id, p.external_ids.clone(), item.item_type.clone()));
                    if e.parent_id != parent_id {
                        parent_moves.push((p.id, p.parent.clone()));
                    }
                    if e.path != p.path {
                        reparented.push((child_prefix(&e.path, p.id), child_prefix(&p.path, p.id)));
                    }
                    if config_changed
                        && !ignored(item, "diff")
                        && let Some(old) = old_configs.get(&p.id)
                        && let Some(d) = diff::diff(old, &item.config.to_value())
                    {
                        changes.push(NewChange {
                            config_id: p.id,
                            change_type: "diff".into(),
                            severity: Severity::Info,
                            source: "diff".into(),
                            summary: d.summary,
                            fingerprint: fingerprint("diff", Some(&d.patch)),
                            patches: Some(d.patch),
                            diff: Some(d.unified),
                            details: None,
                        });
                    }
                    let previous: Health = e.health.parse().unwrap_or(Health::Unknown);
                    if previous != health {
                        changes.push(health_change(p.id, previous, Some(e), item));
                    }
                    if e.path != p.path {
                        // The subtree moves with it: both sets of ancestors are recounted.
                        rollup.recompute_ancestors(&e.path);
                        rollup.recompute_ancestors(&p.path);
                    } else if e.deleted {
                        rollup.count(&p.path, health, 1);
                    } else if previous != health {
                        rollup.count(&p.path, previous, -1);
                        rollup.count(&p.path, health, 1);
                    }
                    if e.deleted || previous != health {
                        rollup.own_changed(p.id);
                    }
                    (
                        e.created_at,
                        if config_changed { now } else { e.updated_at },
                        true,
                    )
                }
            };
            if let Some(rules) = change_rules.as_deref().filter(|r| !r.is_empty())
                && changes.len() > first_change
            {
                let produced: Vec<NewChange> = changes.drain(first_change..).collect();
                apply_change_rules(
                    rules,
                    produced,
                    p,
                    now,
                    &mut changes,
                    &mut ups,
                    &mut rule_deletes,
                    &mut stats.rule_errors,
                );
            }
            if write {
                // The text moves into the row: the item is not written twice.
                let config_json = p.item.config.take_json();
                let item = &p.item;
                rows.push(vec![
                    p.id.into(),
                    scraper_id.into(),
                    ext_json.into(),
                    p.primary.clone().into(),
                    item.item_type.clone().into(),
                    item.class.clone().into(),
                    item.name.clone().into(),
                    item.namespace.clone().into(),
                    tags.into(),
                    labels.into(),
                    item.properties.clone().into(),
                    config_json.into(),
                    p.hash.clone().into(),
                    row_hash.into(),
                    health.as_str().into(),
                    item.health.status.clone().into(),
                    item.health.ready.into(),
                    item.health.message.clone().into(),
                    health.as_str().into(),
                    json!({}).into(),
                    parent_id.into(),
                    p.path.clone().into(),
                    item.source.clone().into(),
                    created_at.into(),
                    updated_at.into(),
                    now.into(),
                    Option::<DateTime<Utc>>::None.into(),
                    Option::<String>::None.into(),
                ]);
            }
        }

        if !rollup.is_empty() || !rule_deletes.is_empty() {
            rollup::lock(&txn).await?;
        }
        write_items(&txn, rows).await?;
        touch_items(&txn, &touch, now).await?;
        write_external_ids(&txn, &external_rows, true).await?;
        write_external_ids(&txn, &new_external_rows, false).await?;
        move_parents(&txn, scraper_id, &parent_moves, now).await?;
        for (old, new) in &reparented {
            rewrite_descendant_paths(&txn, old, new).await?;
        }
        let mut moved = super::topology::moves(&rollup.apply(&txn).await?);
        // Revived items count again on their components.
        moved.extend(revived.iter().map(|id| super::topology::ItemMove {
            id: *id,
            previous: None,
            current: None,
        }));
        super::topology::recompute_for_items(&txn, &moved, now).await?;
        changes.extend(changes_moved_up(&txn, ups).await?);
        stats.changes = record_changes(&txn, changes, now).await?;
        stats.insights =
            super::insights::write_observations(&txn, scraper_id, observations, now).await?;
        if !rule_deletes.is_empty() {
            rule_deletes.sort();
            rule_deletes.dedup();
            stats.deleted_by_rules = soft_delete(
                &txn,
                &rule_deletes,
                DeleteReason::FromEvent,
                "rules",
                "deleted by a change mapping rule",
                now,
            )
            .await?;
        }
        txn.commit().await?;
        Ok(stats)
    }

    /// Settles a run: resolves deferred parents and soft edges, then (for a
    /// full run that passes the safety valve) tombstones edges the run no
    /// longer emitted and soft-deletes stale items.
    pub async fn complete_run(
        &self,
        session: &mut IngestSession,
        completion: &RunCompletion,
    ) -> Result<RunOutcome> {
        let now = super::now();
        let mut outcome = RunOutcome::default();

        // Parents that were not resolvable while their child was written.
        let deferred = std::mem::take(&mut session.deferred_parents);
        if !deferred.is_empty() {
            // Refs are stored lower-cased; many children share one parent.
            let unique: HashSet<&ItemRef> = deferred.iter().map(|(_, r, _)| r).collect();
            let refs: Vec<ItemRef> = unique.into_iter().cloned().collect();
            let resolved = self.resolve_refs(&refs).await?;
            let targets: Vec<Uuid> = resolved.values().copied().collect();
            let mut paths = self.paths_of(&targets).await?;
            for (child, r, relation) in deferred {
                let Some(parent) = resolved.get(&r).copied() else {
                    outcome.edges_unresolved += 1;
                    continue;
                };
                let Some(parent_path) = paths.get(&parent).cloned() else {
                    continue;
                };
                if parent == child || parent_path.contains(&child.to_string()) {
                    continue;
                }
                let new_path = child_prefix(&parent_path, parent);
                self.set_parent(session.scraper_id, child, parent, &relation, &new_path, now)
                    .await?;
                paths.insert(child, new_path);
            }
        }

        // Soft edges.
        let wanted = std::mem::take(&mut session.soft_edges);
        let unique: HashSet<&ItemRef> = wanted
            .iter()
            .map(|(_, r, _, _)| r)
            .filter(|r| !matches!(r, ItemRef::Id(id) if session.seen.contains(id)))
            .collect();
        let refs: Vec<ItemRef> = unique.into_iter().cloned().collect();
        let resolved = self.resolve_refs(&refs).await?;
        let mut desired: BTreeSet<(Uuid, Uuid, String)> = BTreeSet::new();
        for (id, other, upstream, relation) in wanted {
            let other_id = match &other {
                ItemRef::Id(o) if session.seen.contains(o) => Some(*o),
                r => resolved.get(r).copied(),
            };
            match other_id {
                Some(o) if o != id => {
                    let edge = if upstream {
                        (o, id, relation)
                    } else {
                        (id, o, relation)
                    };
                    desired.insert(edge);
                }
                Some(_) => {}
                None => outcome.edges_unresolved += 1,
            }
        }

        // The safety valve (SPEC §5). With a preloaded index the counts come
        // from memory: the entries left in it are the items this run did not
        // see (a scraper has one owner, so nobody else writes its items).
        let live = match session.preloaded_live {
            Some(before) => before + session.stats.created + session.stats.revived,
            None => self.count_live_items(session.scraper_id).await?,
        };
        let stale_cutoff = completion.stale_item_age.map(|age| {
            let duration = now - session.started_at;
            let age = age.max(duration * 2);
            (now - age - session.touch_granularity).min(session.started_at)
        });
        let stale = match (stale_cutoff, &session.index) {
            (Some(cutoff), Some(unseen)) if completion.full => unseen
                .values()
                .filter(|e| !e.deleted && e.last_scraped_at < cutoff)
                .count() as i64,
            (Some(cutoff), None) if completion.full => {
                self.count_stale(session.scraper_id, cutoff).await?
            }
            _ => 0,
        };
        let blocked = if !completion.full {
            None
        } else if !completion.errors.is_empty() {
            Some(format!("the run had {} error(s)", completion.errors.len()))
        } else if session.seen.is_empty() && live > 0 {
            Some(format!(
                "the run saw no items while {live} live items exist"
            ))
        } else if !completion.allow_mass_delete
            && stale > 10
            && (stale as f64) > (live as f64) * completion.max_delete_percent / 100.0
        {
            Some(format!(
                "the run would delete {stale} of {live} live items (more than {}%)",
                completion.max_delete_percent
            ))
        } else {
            None
        };
        outcome.deletions_blocked = blocked.clone();

        let (_guard, txn) = self.write_txn().await?;
        if completion.full && blocked.is_none() && stale_cutoff.is_some() {
            // Before the first write: stale deletion moves rollup counts.
            rollup::lock(&txn).await?;
        }
        let (created, tombstoned) = sync_soft_edges(
            &txn,
            session.scraper_id,
            &desired,
            completion.full && blocked.is_none(),
            now,
        )
        .await?;
        outcome.edges_created = created;
        outcome.edges_tombstoned = tombstoned;
        if completion.full
            && blocked.is_none()
            && let Some(cutoff) = stale_cutoff
        {
            outcome.deleted = delete_stale(&txn, session.scraper_id, cutoff, now).await?;
        }
        txn.commit().await?;
        Ok(outcome)
    }

    async fn count_live_items(&self, scraper_id: Uuid) -> Result<i64> {
        let row = self
            .db
            .query_one_raw(stmt(
                self.backend(),
                "SELECT COUNT(*) AS n FROM config_items WHERE scraper_id = ? AND deleted_at IS NULL",
                vec![scraper_id.into()],
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    async fn count_stale(&self, scraper_id: Uuid, cutoff: DateTime<Utc>) -> Result<i64> {
        let row = self
            .db
            .query_one_raw(stmt(
                self.backend(),
                "SELECT COUNT(*) AS n FROM config_items WHERE scraper_id = ? AND deleted_at IS NULL AND last_scraped_at < ?",
                vec![scraper_id.into(), cutoff.into()],
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    async fn set_parent(
        &self,
        scraper_id: Uuid,
        child: Uuid,
        parent: Uuid,
        relation: &str,
        new_path: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let backend = self.backend();
        let (_guard, txn) = self.write_txn().await?;
        rollup::lock(&txn).await?;
        let row = txn
            .query_one_raw(stmt(
                backend,
                "SELECT parent_id, path FROM config_items WHERE id = ?",
                vec![child.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(());
        };
        let old_parent: Option<Uuid> = row.try_get("", "parent_id")?;
        let old_path: String = row.try_get("", "path")?;
        if old_parent == Some(parent) && old_path == new_path {
            return Ok(());
        }
        txn.execute_raw(stmt(
            backend,
            "UPDATE config_items SET parent_id = ?, path = ? WHERE id = ?",
            vec![parent.into(), new_path.into(), child.into()],
        ))
        .await?;
        move_parents(
            &txn,
            scraper_id,
            &[(child, Some((parent, relation.to_string())))],
            now,
        )
        .await?;
        rewrite_descendant_paths(
            &txn,
            &child_prefix(&old_path, child),
            &child_prefix(new_path, child),
        )
        .await?;
        let mut rollup = RollupDelta::default();
        rollup.recompute_ancestors(&old_path);
        rollup.recompute_ancestors(new_path);
        let moved = super::topology::moves(&rollup.apply(&txn).await?);
        super::topology::recompute_for_items(&txn, &moved, now).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Runs `transform.changes` over the changes one item produced, pushing
/// what is kept into `changes`, changes bound for an ancestor into `ups`
/// (with the item's ancestors, nearest last) and items to delete into
/// `deletes`.
#[allow(clippy::too_many_arguments)]
fn apply_change_rules(
    rules: &crate::change_rules::ChangeRules,
    produced: Vec<NewChange>,
    p: &Prepared,
    now: DateTime<Utc>,
    changes: &mut Vec<NewChange>,
    ups: &mut Vec<Up>,
    deletes: &mut Vec<Uuid>,
    errors: &mut Vec<String>,
) {
    use crate::change_rules::{ChangeFields, Verdict};
    let config = p.item.config.to_value();
    let item = json!({
        "id": p.id.to_string(),
        "type": p.item.item_type,
        "name": p.item.name,
        "namespace": p.item.namespace,
        "tags": p.item.tags,
        "labels": p.item.labels,
    });
    for mut change in produced {
        let fields = ChangeFields {
            change_type: change.change_type.clone(),
            severity: change.severity,
            summary: change.summary.clone(),
            source: change.source.clone(),
        };
        let (verdict, failed) = rules.apply(
            fields,
            change.details.as_ref(),
            change.patches.as_ref(),
            now,
            &config,
            &item,
        );
        for e in failed {
            if errors.len() < 100 {
                errors.push(format!("{} {:?}: {e}", p.item.item_type, p.item.name));
            }
        }
        let take = |change: &mut NewChange, f: ChangeFields| {
            if change.change_type != f.change_type {
                change.fingerprint = fingerprint(
                    &f.change_type,
                    change.patches.as_ref().or(change.details.as_ref()),
                );
            }
            change.change_type = f.change_type;
            change.severity = f.severity;
            change.summary = f.summary;
        };
        match verdict {
            Verdict::Drop => {}
            Verdict::Keep(f) => {
                take(&mut change, f);
                changes.push(change);
            }
            Verdict::Delete(f) => {
                take(&mut change, f);
                deletes.push(change.config_id);
                changes.push(change);
            }
            Verdict::Up {
                fields,
                ancestor_type,
                copy,
            } => {
                take(&mut change, fields);
                let ancestors: Vec<Uuid> = p
                    .path
                    .split('.')
                    .filter_map(|s| Uuid::parse_str(s).ok())
                    .collect();
                if copy {
                    changes.push(change.clone());
                }
                ups.push(Up {
                    change,
                    ancestors,
                    ancestor_type,
                    copy,
                });
            }
        }
    }
}

/// A change bound for an ancestor (`move-up` / `copy-up`).
struct Up {
    change: NewChange,
    /// The item's ancestors, root first.
    ancestors: Vec<Uuid>,
    ancestor_type: String,
    /// The item keeps its own copy.
    copy: bool,
}

/// Re-targets changes at the nearest ancestor of the wanted type. A moved
/// change whose item has no such ancestor stays on the item; a copy is
/// then dropped (the item has it already).
async fn changes_moved_up(txn: &DatabaseTransaction, ups: Vec<Up>) -> Result<Vec<NewChange>> {
    if ups.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    let ids: Vec<Uuid> = ups
        .iter()
        .flat_map(|u| u.ancestors.iter().copied())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut types: HashMap<Uuid, String> = HashMap::new();
    for chunk in ids.chunks(1000) {
        let sql = format!(
            "SELECT id, type FROM config_items WHERE id IN ({})",
            marks(chunk.len())
        );
        let values: Vec<Value> = chunk.iter().map(|u| Value::from(*u)).collect();
        for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            types.insert(row.try_get("", "id")?, row.try_get("", "type")?);
        }
    }
    Ok(ups
        .into_iter()
        .filter_map(|mut up| {
            let target = up
                .ancestors
                .iter()
                .rev()
                .find(|a| types.get(a).is_some_and(|t| *t == up.ancestor_type));
            match target {
                Some(t) => {
                    up.change.config_id = *t;
                    Some(up.change)
                }
                None if up.copy => None,
                None => Some(up.change),
            }
        })
        .collect())
}

fn lower(r: &ItemRef) -> ItemRef {
    match r {
        ItemRef::Id(id) => ItemRef::Id(*id),
        ItemRef::External {
            item_type,
            external_id,
        } => ItemRef::External {
            item_type: item_type.clone(),
            external_id: external_id.to_lowercase(),
        },
    }
}

fn ignored(item: &ScrapedItem, change_type: &str) -> bool {
    item.ignored_change_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case(change_type))
}

fn health_change(
    id: Uuid,
    previous: Health,
    old: Option<&Existing>,
    item: &ScrapedItem,
) -> NewChange {
    let current = item.health.health;
    let status = item.health.status.clone().unwrap_or_default();
    let message = item.health.message.clone().unwrap_or_default();
    let summary = match (status.is_empty(), message.is_empty()) {
        (false, false) => format!("{status}: {message}"),
        (false, true) => status.clone(),
        (true, false) => message.clone(),
        (true, true) => current.as_str().to_string(),
    };
    let details = json!({
        "previous": {
            "health": previous.as_str(),
            "status": old.and_then(|e| e.status.clone()),
            "ready": old.map(|e| e.ready),
            "description": old.and_then(|e| e.description.clone()),
        },
        "current": {
            "health": current.as_str(),
            "status": item.health.status,
            "ready": item.health.ready,
            "description": item.health.message,
        },
    });
    let change_type = health_change_type(current);
    NewChange {
        config_id: id,
        change_type: change_type.into(),
        severity: health_severity(current),
        source: "health".into(),
        summary,
        patches: None,
        diff: None,
        fingerprint: fingerprint(
            change_type,
            Some(&json!({"previous": previous.as_str(), "status": status})),
        ),
        details: Some(details),
    }
}

/// The columns [`decode_existing`] reads.
const EXISTING_COLUMNS: &str = "id, config_hash, row_hash, health, status, ready, description, parent_id, path, \
     deleted_at, created_at, updated_at, last_scraped_at";

/// Decodes a row of [`EXISTING_COLUMNS`] by position (name lookups cost
/// more than the query when a preload reads 100k rows).
fn decode_existing(r: &sea_orm::QueryResult) -> Result<(Uuid, Existing)> {
    let deleted_at: Option<DateTime<Utc>> = r.try_get_by_index(9)?;
    Ok((
        r.try_get_by_index(0)?,
        Existing {
            config_hash: r.try_get_by_index(1)?,
            row_hash: r.try_get_by_index(2)?,
            health: r.try_get_by_index(3)?,
            status: r.try_get_by_index(4)?,
            ready: r.try_get_by_index(5)?,
            description: r.try_get_by_index(6)?,
            parent_id: r.try_get_by_index(7)?,
            path: r.try_get_by_index(8)?,
            deleted: deleted_at.is_some(),
            created_at: r.try_get_by_index(10)?,
            updated_at: r.try_get_by_index(11)?,
            last_scraped_at: r.try_get_by_index(12)?,
        },
    ))
}

async fn load_existing(txn: &DatabaseTransaction, ids: &[Uuid]) -> Result<HashMap<Uuid, Existing>> {
    let backend = txn.get_database_backend();
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let (list, ids_values) = super::in_ids(backend, chunk);
        let sql = format!("SELECT {EXISTING_COLUMNS} FROM config_items WHERE id{list}");
        for r in txn.query_all_raw(stmt(backend, &sql, ids_values)).await? {
            let (id, e) = decode_existing(&r)?;
            out.insert(id, e);
        }
    }
    Ok(out)
}

async fn load_configs(
    txn: &DatabaseTransaction,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, serde_json::Value>> {
    let backend = txn.get_database_backend();
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let (list, ids_values) = super::in_ids(backend, chunk);
        let sql = format!("SELECT id, config FROM config_items WHERE id{list}");
        let rows = txn.query_all_raw(stmt(backend, &sql, ids_values)).await?;
        for r in rows {
            out.insert(r.try_get("", "id")?, r.try_get("", "config")?);
        }
    }
    Ok(out)
}

/// Postgres types of [`ITEM_COLUMNS`], in order, for `jsonb_to_recordset`.
const ITEM_COLUMN_TYPES: [(&str, &str); 28] = [
    ("id", "uuid"),
    ("scraper_id", "uuid"),
    ("external_ids", "jsonb"),
    ("primary_external_id", "text"),
    ("type", "text"),
    ("config_class", "text"),
    ("name", "text"),
    ("namespace", "text"),
    ("tags", "jsonb"),
    ("labels", "jsonb"),
    ("properties", "jsonb"),
    ("config", "jsonb"),
    ("config_hash", "text"),
    ("row_hash", "text"),
    ("health", "text"),
    ("status", "text"),
    ("ready", "boolean"),
    ("description", "text"),
    ("rolled_up_health", "text"),
    ("descendant_health", "jsonb"),
    ("parent_id", "uuid"),
    ("path", "text"),
    ("source", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("last_scraped_at", "timestamptz"),
    ("deleted_at", "timestamptz"),
    ("delete_reason", "text"),
];

fn value_to_json(v: Value) -> serde_json::Value {
    match v {
        Value::Uuid(Some(u)) => serde_json::Value::String(u.to_string()),
        Value::String(Some(s)) => serde_json::Value::String(s),
        Value::Json(Some(j)) => *j,
        Value::Bool(Some(b)) => serde_json::Value::Bool(b),
        Value::BigInt(Some(n)) => serde_json::Value::from(n),
        Value::ChronoDateTimeUtc(Some(t)) => {
            serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
        _ => serde_json::Value::Null,
    }
}

/// Postgres: one statement per 1000 rows with the rows as a single JSON
/// parameter, expanded server-side by `jsonb_to_recordset`.
async fn write_items_postgres(txn: &DatabaseTransaction, rows: Vec<Vec<Value>>) -> Result<()> {
    let backend = txn.get_database_backend();
    let columns: Vec<&str> = ITEM_COLUMN_TYPES.iter().map(|(c, _)| *c).collect();
    let record: Vec<String> = ITEM_COLUMN_TYPES
        .iter()
        .map(|(c, t)| format!("\"{c}\" {t}"))
        .collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| {
            !matches!(
                **c,
                "id" | "created_at" | "scraper_id" | "descendant_health" | "rolled_up_health"
            )
        })
        .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
        .collect();
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let sql = format!(
        "INSERT INTO config_items ({cols}) SELECT {cols} FROM jsonb_to_recordset(CAST(? AS jsonb)) AS r({record}) \
         ON CONFLICT (id) DO UPDATE SET {updates}",
        cols = quoted.join(", "),
        record = record.join(", "),
        updates = updates.join(", "),
    );
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut payload = String::with_capacity(64 * 1024);
        payload.push('[');
        for (i, row) in rows.by_ref().take(1000).enumerate() {
            if i > 0 {
                payload.push(',');
            }
            push_record(&mut payload, &columns, row);
        }
        payload.push(']');
        txn.execute_raw(stmt(backend, &sql, vec![payload.into()]))
            .await?;
    }
    Ok(())
}

/// Appends one row as a JSON object; the `config` column already holds
/// canonical JSON text and is spliced in as is, not re-encoded.
fn push_record(out: &mut String, columns: &[&str], row: Vec<Value>) {
    out.push('{');
    for (i, (column, value)) in columns.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(column);
        out.push_str("\":");
        match value {
            Value::String(Some(json)) if *column == "config" => out.push_str(&json),
            other => out.push_str(&value_to_json(other).to_string()),
        }
    }
    out.push('}');
}

async fn write_items(txn: &DatabaseTransaction, rows: Vec<Vec<Value>>) -> Result<()> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        return write_items_postgres(txn, rows).await;
    }
    let per_stmt = (MAX_PARAMS / ITEM_COLUMNS.len()).max(1);
    let update: Vec<C> = ITEM_COLUMNS
        .iter()
        .copied()
        .filter(|c| {
            !matches!(
                c,
                C::Id | C::CreatedAt | C::ScraperId | C::DescendantHealth | C::RolledUpHealth
            )
        })
        .collect();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut insert = Query::insert();
        insert
            .into_table(ConfigItems)
            .columns(ITEM_COLUMNS)
            .on_conflict(
                OnConflict::column(C::Id)
                    .update_columns(update.clone())
                    .to_owned(),
            );
        for row in rows.by_ref().take(per_stmt) {
            insert
                .values(row.into_iter().map(Expr::val))
                .map_err(sql_err)?;
        }
        txn.execute(&insert).await?;
    }
    Ok(())
}

async fn touch_items(txn: &DatabaseTransaction, ids: &[Uuid], now: DateTime<Utc>) -> Result<()> {
    let backend = txn.get_database_backend();
    for chunk in ids.chunks(5000) {
        let (list, ids_values) = super::in_ids(backend, chunk);
        let sql = format!("UPDATE config_items SET last_scraped_at = ? WHERE id{list}");
        let mut values: Vec<Value> = vec![now.into()];
        values.extend(ids_values);
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(())
}

/// Writes the external ids of items; `replace` first removes the ids the
/// items had (new items have none).
async fn write_external_ids(
    txn: &DatabaseTransaction,
    rows: &[(Uuid, Vec<String>, String)],
    replace: bool,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    for chunk in rows.chunks(1000).filter(|_| replace) {
        let ids: Vec<Uuid> = chunk.iter().map(|(id, _, _)| *id).collect();
        let (list, ids_values) = super::in_ids(backend, &ids);
        let sql = format!("DELETE FROM config_external_ids WHERE config_id{list}");
        txn.execute_raw(stmt(backend, &sql, ids_values)).await?;
    }
    let flat: Vec<(String, Uuid, String)> = rows
        .iter()
        .flat_map(|(id, ext, t)| ext.iter().map(move |e| (e.clone(), *id, t.clone())))
        .collect();
    for chunk in flat.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "INSERT INTO config_external_ids (external_id, config_id, type) VALUES {} ON CONFLICT DO NOTHING",
            vec!["(?, ?, ?)"; chunk.len()].join(", ")
        );
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|(e, id, t)| {
                [
                    Value::from(e.clone()),
                    Value::from(*id),
                    Value::from(t.clone()),
                ]
            })
            .collect();
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(())
}

/// Replaces the hard edge of each child: the old one is tombstoned, the new
/// one upserted (edge writes sorted by `(from, to)`).
async fn move_parents(
    txn: &DatabaseTransaction,
    scraper_id: Uuid,
    moves: &[(Uuid, Option<(Uuid, String)>)],
    now: DateTime<Utc>,
) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    for chunk in moves.chunks(1000) {
        let sql = format!(
            "UPDATE config_relationships SET deleted_at = ? WHERE hard = ? AND deleted_at IS NULL AND to_id IN ({})",
            marks(chunk.len())
        );
        let mut values: Vec<Value> = vec![now.into(), true.into()];
        values.extend(chunk.iter().map(|(c, _)| Value::from(*c)));
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    let mut edges: Vec<(Uuid, Uuid, String)> = moves
        .iter()
        .filter_map(|(child, p)| {
            p.as_ref()
                .map(|(parent, rel)| (*parent, *child, rel.clone()))
        })
        .collect();
    edges.sort();
    upsert_edges(txn, scraper_id, &edges, true, now).await?;
    Ok(())
}

async fn upsert_edges(
    txn: &DatabaseTransaction,
    scraper_id: Uuid,
    edges: &[(Uuid, Uuid, String)],
    hard: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let backend = txn.get_database_backend();
    for chunk in edges.chunks(MAX_PARAMS / 8) {
        let sql = format!(
            "INSERT INTO config_relationships (id, from_id, to_id, relation, hard, scraper_id, created_at, last_seen_at, deleted_at) \
             VALUES {} ON CONFLICT (from_id, to_id, relation, scraper_id) \
             DO UPDATE SET deleted_at = NULL, last_seen_at = excluded.last_seen_at, hard = excluded.hard",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, NULL)"; chunk.len()].join(", ")
        );
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|(from, to, rel)| {
                [
                    Value::from(ids::row_id()),
                    Value::from(*from),
                    Value::from(*to),
                    Value::from(rel.clone()),
                    Value::from(hard),
                    Value::from(scraper_id),
                    Value::from(now),
                    Value::from(now),
                ]
            })
            .collect();
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(())
}

async fn rewrite_descendant_paths(
    txn: &DatabaseTransaction,
    old_prefix: &str,
    new_prefix: &str,
) -> Result<()> {
    if old_prefix == new_prefix {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    let sql = "UPDATE config_items SET path = ? || substr(path, CAST(? AS INTEGER)) WHERE path = ? OR path LIKE ?";
    txn.execute_raw(stmt(
        backend,
        sql,
        vec![
            new_prefix.into(),
            (old_prefix.len() as i64 + 1).into(),
            old_prefix.into(),
            format!("{old_prefix}.%").into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Inserts the desired soft edges that are missing and, when `tombstone`,
/// marks the scraper's live soft edges that are no longer desired.
async fn sync_soft_edges(
    txn: &DatabaseTransaction,
    scraper_id: Uuid,
    desired: &BTreeSet<(Uuid, Uuid, String)>,
    tombstone: bool,
    now: DateTime<Utc>,
) -> Result<(i64, i64)> {
    let backend = txn.get_database_backend();
    let rows = txn
        .query_all_raw(stmt(
            backend,
            "SELECT id, from_id, to_id, relation, deleted_at FROM config_relationships WHERE scraper_id = ? AND hard = ?",
            vec![scraper_id.into(), false.into()],
        ))
        .await?;
    let mut live: HashMap<(Uuid, Uuid, String), Uuid> = HashMap::new();
    for r in rows {
        let deleted: Option<DateTime<Utc>> = r.try_get("", "deleted_at")?;
        if deleted.is_none() {
            live.insert(
                (
                    r.try_get("", "from_id")?,
                    r.try_get("", "to_id")?,
                    r.try_get("", "relation")?,
                ),
                r.try_get("", "id")?,
            );
        }
    }
    let missing: Vec<(Uuid, Uuid, String)> = desired
        .iter()
        .filter(|e| !live.contains_key(*e))
        .cloned()
        .collect();
    upsert_edges(txn, scraper_id, &missing, false, now).await?;
    let mut tombstoned = 0;
    if tombstone {
        let gone: Vec<Uuid> = live
            .iter()
            .filter(|(k, _)| !desired.contains(*k))
            .map(|(_, id)| *id)
            .collect();
        for chunk in gone.chunks(1000) {
            let sql = format!(
                "UPDATE config_relationships SET deleted_at = ? WHERE id IN ({})",
                marks(chunk.len())
            );
            let mut values: Vec<Value> = vec![now.into()];
            values.extend(chunk.iter().map(|u| Value::from(*u)));
            txn.execute_raw(stmt(backend, &sql, values)).await?;
        }
        tombstoned = gone.len() as i64;
    }
    Ok((missing.len() as i64, tombstoned))
}

async fn delete_stale(
    txn: &super::WriteTxn,
    scraper_id: Uuid,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<i64> {
    let backend = txn.get_database_backend();
    let rows = txn
        .query_all_raw(stmt(
            backend,
            "SELECT id FROM config_items WHERE scraper_id = ? AND deleted_at IS NULL AND last_scraped_at < ?",
            vec![scraper_id.into(), cutoff.into()],
        ))
        .await?;
    let mut stale: Vec<Uuid> = Vec::with_capacity(rows.len());
    for r in &rows {
        stale.push(r.try_get("", "id")?);
    }
    soft_delete(
        txn,
        &stale,
        DeleteReason::Stale,
        "scraper",
        "not seen by a full scrape (stale)",
        now,
    )
    .await
}

/// Soft-deletes live `ids` for `reason`, recording a `Deleted` change
/// for each; returns how many.
pub(crate) async fn soft_delete(
    txn: &super::WriteTxn,
    ids_deleted: &[Uuid],
    reason: DeleteReason,
    source: &str,
    summary: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let backend = txn.get_database_backend();
    rollup::lock(txn).await?;
    let mut rollup = RollupDelta::default();
    for chunk in ids_deleted.chunks(1000) {
        let (list, values) = super::in_ids(backend, chunk);
        let sql =
            format!("SELECT path, health FROM config_items WHERE deleted_at IS NULL AND id{list}");
        for row in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            let health: Health = row
                .try_get::<String>("", "health")?
                .parse()
                .unwrap_or(Health::Unknown);
            rollup.count(&row.try_get::<String>("", "path")?, health, -1);
        }
    }
    for chunk in ids_deleted.chunks(1000) {
        let sql = format!(
            "UPDATE config_items SET deleted_at = ?, delete_reason = ? WHERE id IN ({})",
            marks(chunk.len())
        );
        let mut values: Vec<Value> = vec![now.into(), reason.as_str().into()];
        values.extend(chunk.iter().map(|u| Value::from(*u)));
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    let changes: Vec<NewChange> = ids_deleted
        .iter()
        .map(|id| NewChange {
            config_id: *id,
            change_type: "Deleted".into(),
            severity: Severity::Info,
            source: source.into(),
            summary: summary.into(),
            patches: None,
            diff: None,
            details: Some(json!({"reason": reason.as_str()})),
            fingerprint: fingerprint("Deleted", None),
        })
        .collect();
    record_changes(txn, changes, now).await?;
    let mut moved = super::topology::moves(&rollup.apply(txn).await?);
    // Components lose the deleted items too.
    moved.extend(ids_deleted.iter().map(|id| super::topology::ItemMove {
        id: *id,
        previous: None,
        current: None,
    }));
    super::topology::recompute_for_items(txn, &moved, now).await?;
    Ok(ids_deleted.len() as i64)
}

/// Inserts changes, or bumps the count of a same-fingerprint change inside
/// the dedupe window. Returns the number of changes recorded.
async fn record_changes(
    txn: &super::WriteTxn,
    changes: Vec<NewChange>,
    now: DateTime<Utc>,
) -> Result<i64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let backend = txn.get_database_backend();
    let total = changes.len() as i64;
    let config_ids: Vec<Uuid> = changes
        .iter()
        .map(|c| c.config_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut recent: HashMap<(Uuid, String), Uuid> = HashMap::new();
    for chunk in config_ids.chunks(1000) {
        let sql = format!(
            "SELECT id, config_id, fingerprint FROM config_changes WHERE created_at >= ? AND config_id IN ({}) ORDER BY created_at",
            marks(chunk.len())
        );
        let mut values: Vec<Value> = vec![(now - DEDUPE_WINDOW).into()];
        values.extend(chunk.iter().map(|u| Value::from(*u)));
        for r in txn.query_all_raw(stmt(backend, &sql, values)).await? {
            recent.insert(
                (r.try_get("", "config_id")?, r.try_get("", "fingerprint")?),
                r.try_get("", "id")?,
            );
        }
    }
    let seqs = Store::allocate_seq(txn, crate::events::EventStream::Changes, changes.len()).await?;
    let mut inserts: Vec<(Uuid, i64, i64, NewChange)> = Vec::new();
    let mut pending: HashMap<(Uuid, String), usize> = HashMap::new();
    for (change, seq) in changes.into_iter().zip(seqs) {
        let key = (change.config_id, change.fingerprint.clone());
        if let Some(index) = pending.get(&key) {
            if let Some(slot) = inserts.get_mut(*index) {
                let count = slot.2 + 1;
                *slot = (slot.0, seq, count, change);
            }
        } else if let Some(existing) = recent.get(&key) {
            txn.execute_raw(stmt(
                backend,
                "UPDATE config_changes SET count = count + 1, created_at = ?, summary = ?, details = ?, severity = ?, \
                 patches = ?, diff = ?, seq = ? WHERE id = ?",
                vec![
                    now.into(),
                    change.summary.into(),
                    change.details.into(),
                    change.severity.as_str().into(),
                    change.patches.into(),
                    change.diff.into(),
                    seq.into(),
                    (*existing).into(),
                ],
            ))
            .await?;
        } else {
            pending.insert(key, inserts.len());
            inserts.push((ids::row_id(), seq, 1, change));
        }
    }
    for chunk in inserts.chunks(MAX_PARAMS / 15) {
        let sql = format!(
            "INSERT INTO config_changes (id, seq, config_id, change_type, severity, source, summary, patches, diff, details, \
             external_change_id, fingerprint, count, first_observed, created_at) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 14);
        for (id, seq, count, c) in chunk {
            values.extend([
                Value::from(*id),
                Value::from(*seq),
                Value::from(c.config_id),
                Value::from(c.change_type.clone()),
                Value::from(c.severity.as_str()),
                Value::from(c.source.clone()),
                Value::from(c.summary.clone()),
                Value::from(c.patches.clone()),
                Value::from(c.diff.clone()),
                Value::from(c.details.clone()),
                Value::from(c.fingerprint.clone()),
                Value::from(*count),
                Value::from(now),
                Value::from(now),
            ]);
        }
        txn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(total)
}
