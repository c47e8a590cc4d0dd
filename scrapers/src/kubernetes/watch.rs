//! Watching a cluster between full scrapes (SPEC §10 `watch: true`): one
//! kube-runtime watcher per resource (and namespace) resumes from the last
//! resourceVersion and relists on `410 Gone`; updates are merged into a
//! bounded queue and written in batches of at most [`BATCH_MAX`] objects
//! or [`BATCH_WINDOW`] (sooner when the stream pauses), as one incremental
//! run per watch session. EndpointSlices and Service selectors are tracked
//! too ([`ServiceLinks`]), so pods that appear or join a Service while the
//! watch runs get their `ServicePod` edges at once, as a full run gives
//! them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use stratum_domain::store::{ExternalChange, IngestSession, RunCompletion, RunSummary};
use stratum_domain::{RunMode, RunStatus, Store};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::kinds::{self, Resource};
use super::spec::KubernetesSource;
use super::{connect, events, object_item};
use crate::config::LoadedScrapeConfig;
use crate::error::ScraperError;

/// Most objects written per batch.
pub const BATCH_MAX: usize = 500;
/// Longest an update waits for its batch.
pub const BATCH_WINDOW: Duration = Duration::from_millis(500);
/// Warnings and errors a watch session's run keeps.
const MAX_KEPT: usize = 200;
/// A pause in the stream this long closes the batch early.
pub const BATCH_IDLE: Duration = Duration::from_millis(50);
/// Updates queued between the watchers and the writer.
pub const QUEUE: usize = 2_000;
/// A watch session's run is closed and a new one opened this often.
pub const RUN_ROLL: Duration = Duration::from_secs(15 * 60);

/// One update from a watcher: which stream, and what happened.
#[derive(Debug)]
enum Update {
    /// The object was added or changed.
    Apply(usize, Value),
    /// The object was deleted.
    Delete(usize, Value),
    /// A (re)list started.
    Init(usize),
    /// An object of a (re)list.
    InitApply(usize, Value),
    /// The (re)list is complete: what it did not name is gone.
    InitDone(usize),
    /// The watcher failed (it retries with backoff).
    Error(usize, String),
}

/// A stream: one resource in one namespace (or all).
struct Stream {
    resource: Resource,
    /// Uids known alive on this stream.
    known: HashSet<Uuid>,
    /// Uids seen by the (re)list in progress.
    relist: Option<HashSet<Uuid>>,
    /// Its first list is complete.
    listed: bool,
}

fn uid_of(object: &Value) -> Option<Uuid> {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .and_then(|u| Uuid::parse_str(u).ok())
}

/// What the watch knows of Services and their EndpointSlices.
#[derive(Debug, Default)]
struct ServiceLinks {
    /// EndpointSlice uid → its Service and the pods it targets.
    slices: HashMap<Uuid, (Uuid, Vec<Uuid>)>,
    /// Pod uid → the Services whose slices target it.
    by_pod: HashMap<Uuid, Vec<Uuid>>,
    /// Services with a selector: uid → namespace and selector.
    selectors: HashMap<Uuid, (String, crate::kubernetes_links::ServiceSelector)>,
    /// Service uid → how many of `slices` are its (pods ask per Service).
    slice_counts: HashMap<Uuid, usize>,
}

impl ServiceLinks {
    fn sliced(&self, service: Uuid) -> bool {
        self.slice_counts.contains_key(&service)
    }

    /// `ServicePod` edges onto a pod item: from the Services whose slices
    /// target it, and from the selectors of Services without slices.
    fn link(&self, pod: &mut stratum_domain::ScrapedItem) {
        let sliced = pod
            .source_id
            .and_then(|uid| self.by_pod.get(&uid).cloned())
            .unwrap_or_default();
        let selectors = self
            .selectors
            .iter()
            .filter(|(service, _)| !self.sliced(**service))
            .map(|(service, (ns, selector))| (ns.as_str(), selector, *service));
        crate::kubernetes_links::link_pod_services(pod, sliced, selectors);
    }

    /// Records a slice; returns the `(service, pod)` pairs it adds.
    fn apply_slice(&mut self, slice: &Value, cluster: &str) -> Vec<(Uuid, Uuid)> {
        let Some(uid) = uid_of(slice) else {
            return Vec::new();
        };
        let (Some(service), Some((_, pods))) = (
            crate::kubernetes_links::endpoint_slice_service(slice),
            crate::kubernetes_links::endpoint_slice_targets(slice, Some(cluster)),
        ) else {
            self.remove_slice(uid);
            return Vec::new();
        };
        let before = self.remove_slice(uid);
        let added = pods
            .iter()
            .filter(|p| !before.contains(p))
            .map(|p| (service, *p))
            .collect();
        for pod in &pods {
            let services = self.by_pod.entry(*pod).or_default();
            if !services.contains(&service) {
                services.push(service);
            }
        }
        self.slices.insert(uid, (service, pods));
        *self.slice_counts.entry(service).or_default() += 1;
        added
    }

    /// Forgets a slice; returns the pods it targeted.
    fn remove_slice(&mut self, uid: Uuid) -> Vec<Uuid> {
        let Some((service, pods)) = self.slices.remove(&uid) else {
            return Vec::new();
        };
        if let Some(n) = self.slice_counts.get_mut(&service) {
            *n -= 1;
            if *n == 0 {
                self.slice_counts.remove(&service);
            }
        }
        for pod in &pods {
            let still = self
                .slices
                .values()
                .any(|(s, p)| *s == service && p.contains(pod));
            if !still && let Some(services) = self.by_pod.get_mut(pod) {
                services.retain(|s| *s != service);
                if services.is_empty() {
                    self.by_pod.remove(pod);
                }
            }
        }
        pods
    }
}

fn is_endpoint_slice(resource: &Resource) -> bool {
    resource.api.group == "discovery.k8s.io" && resource.api.kind == "EndpointSlice"
}

/// Totals of a watch session's run.
#[derive(Debug, Default, Clone)]
pub struct WatchTotals {
    /// Objects written (created, updated or unchanged).
    pub applied: i64,
    /// Items deleted.
    pub deleted: i64,
    /// Change rows inserted or updated (diffs, health, events).
    pub changes: i64,
    /// Watch errors (each retried).
    pub errors: Vec<String>,
}

/// Watches `source` of `config` until `cancel` fires, writing through
/// `store`. `lock` serialises its batches with the config's full runs.
pub async fn run(
    store: Store,
    config: Arc<LoadedScrapeConfig>,
    source: KubernetesSource,
    lock: Arc<Mutex<()>>,
    cancel: CancellationToken,
) -> Result<(), ScraperError> {
    let scraper_id = crate::pipeline::register(&store, &config).await?;
    let client = loop {
        match connect(&source).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(scraper = %config.metadata.name, cluster = %source.cluster, error = %e, "watch cannot connect; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
            }
        }
    };
    let (resources, errors) = kinds::resolve(&client, &source).await;
    for e in errors {
        tracing::warn!(scraper = %config.metadata.name, cluster = %source.cluster, error = %e, "kind not watched");
    }
    let mut watched: Vec<Resource> = resources
        .into_iter()
        .filter(|r| r.stored || is_endpoint_slice(r))
        .collect();
    if source.events.enabled {
        watched.push(kinds::events());
    }
    let (tx, mut rx) = mpsc::channel::<Update>(QUEUE);
    let mut streams: Vec<Stream> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for resource in watched {
        for scope in super::scopes(&source, &resource) {
            let index = streams.len();
            let api: Api<DynamicObject> = match &scope {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource.api),
                None => Api::all_with(client.clone(), &resource.api),
            };
            let settings = super::watcher_config(&source);
            let tx = tx.clone();
            let kind_resource = resource.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let mut stream = watcher(api, settings).default_backoff().boxed();
                loop {
                    let next = tokio::select! {
                        _ = cancel.cancelled() => return,
                        next = stream.next() => next,
                    };
                    let Some(next) = next else { return };
                    let to_value = |o: DynamicObject| {
                        serde_json::to_value(o)
                            .map(|v| super::complete(v, &kind_resource))
                            .unwrap_or(Value::Null)
                    };
                    let update = match next {
                        Ok(watcher::Event::Apply(o)) => Update::Apply(index, to_value(o)),
                        Ok(watcher::Event::Delete(o)) => Update::Delete(index, to_value(o)),
                        Ok(watcher::Event::Init) => Update::Init(index),
                        Ok(watcher::Event::InitApply(o)) => Update::InitApply(index, to_value(o)),
                        Ok(watcher::Event::InitDone) => Update::InitDone(index),
                        Err(e) => Update::Error(index, e.to_string()),
                    };
                    if tx.send(update).await.is_err() {
                        return;
                    }
                }
            });
            streams.push(Stream {
                resource: resource.clone(),
                known: HashSet::new(),
                relist: None,
                listed: false,
            });
        }
    }
    drop(tx);

    let mut writer = Writer::start(&store, &config, &source, scraper_id).await?;
    let mut links = ServiceLinks::default();
    let mut pending: Vec<Update> = Vec::new();
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            u = rx.recv() => u,
        };
        let Some(first) = first else { break };
        let received = std::time::Instant::now();
        pending.push(first);
        // A batch closes at BATCH_MAX updates, BATCH_WINDOW after its
        // first, or when the stream pauses for BATCH_IDLE: a burst (a
        // relist) is written in large batches, a trickle without waiting.
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while pending.len() < BATCH_MAX {
            let until = deadline.min(tokio::time::Instant::now() + BATCH_IDLE);
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(u)) => pending.push(u),
                Ok(None) | Err(_) => break,
            }
        }
        let batch = std::mem::take(&mut pending);
        let _serial = lock.lock().await;
        let flushed = writer.flush(&mut streams, &mut links, batch).await;
        writer.trim();
        match flushed {
            // From the batch's first update arriving to its commit.
            Ok(()) => metrics::histogram!(
                "stratum_watch_lag_seconds",
                "scraper" => format!("{}/{}", config.metadata.namespace, config.metadata.name),
                "cluster" => source.cluster.clone()
            )
            .record(received.elapsed().as_secs_f64()),
            Err(e) => {
                tracing::error!(scraper = %config.metadata.name, cluster = %source.cluster, error = %e, "watch batch failed");
                writer.totals.errors.push(e.to_string());
            }
        }
        if writer.opened.elapsed() >= RUN_ROLL {
            writer.finish().await?;
            writer = Writer::start(&store, &config, &source, scraper_id).await?;
        }
    }
    tasks.abort_all();
    writer.finish().await
}

/// Writes a watch session's batches into its incremental run.
struct Writer<'a> {
    store: &'a Store,
    config: &'a LoadedScrapeConfig,
    source: &'a KubernetesSource,
    scraper_id: Uuid,
    run_id: Uuid,
    started_at: chrono::DateTime<Utc>,
    opened: std::time::Instant,
    totals: WatchTotals,
    warnings: Vec<String>,
}

impl<'a> Writer<'a> {
    async fn start(
        store: &'a Store,
        config: &'a LoadedScrapeConfig,
        source: &'a KubernetesSource,
        scraper_id: Uuid,
    ) -> Result<Writer<'a>, ScraperError> {
        let (run_id, started_at) = store.start_run(scraper_id, RunMode::Incremental).await?;
        Ok(Writer {
            store,
            config,
            source,
            scraper_id,
            run_id,
            started_at,
            opened: std::time::Instant::now(),
            totals: WatchTotals::default(),
            warnings: Vec::new(),
        })
    }

    /// Applies one batch of updates: objects upserted (the last update of
    /// an object wins), deletions, and events as changes.
    async fn flush(
        &mut self,
        streams: &mut [Stream],
        links: &mut ServiceLinks,
        batch: Vec<Update>,
    ) -> Result<(), ScraperError> {
        let now = Utc::now();
        // `(service, pod)` edges slices added for pods this batch may not
        // carry.
        let mut joined: Vec<(Uuid, Uuid)> = Vec::new();
        let mut applies: HashMap<Uuid, Value> = HashMap::new();
        let mut order: Vec<Uuid> = Vec::new();
        let mut deletes: HashSet<Uuid> = HashSet::new();
        let mut changes: Vec<ExternalChange> = Vec::new();
        let mut apply = |uid: Uuid,
                         object: Value,
                         applies: &mut HashMap<Uuid, Value>,
                         deletes: &mut HashSet<Uuid>| {
            deletes.remove(&uid);
            if applies.insert(uid, object).is_none() {
                order.push(uid);
            }
        };
        for update in batch {
            match update {
                Update::Init(i) => {
                    if let Some(s) = streams.get_mut(i) {
                        s.relist = Some(HashSet::new());
                    }
                }
                Update::InitDone(i) => {
                    if let Some(s) = streams.get_mut(i)
                        && let Some(seen) = s.relist.take()
                    {
                        if s.resource.stored {
                            deletes.extend(s.known.difference(&seen).copied());
                        } else if is_endpoint_slice(&s.resource) {
                            for gone in s.known.difference(&seen) {
                                links.remove_slice(*gone);
                            }
                        }
                        s.known = seen;
                        s.listed = true;
                    }
                }
                Update::Error(i, e) => {
                    let what = streams
                        .get(i)
                        .map(|s| s.resource.api.plural.clone())
                        .unwrap_or_default();
                    tracing::warn!(scraper = %self.config.metadata.name, cluster = %self.source.cluster, error = %e, "watch {what}: retrying");
                    self.totals.errors.push(format!("watch {what}: {e}"));
                }
                Update::Apply(i, object) | Update::InitApply(i, object) => {
                    let Some(stream) = streams.get_mut(i) else {
                        continue;
                    };
                    // The watch's first list repeats what the full run
                    // wrote; later lists and events are news.
                    let news = stream.listed || stream.relist.is_none();
                    let Some(uid) = uid_of(&object) else { continue };
                    match &mut stream.relist {
                        Some(seen) => {
                            seen.insert(uid);
                        }
                        None => {
                            stream.known.insert(uid);
                        }
                    }
                    if stream.resource.stored {
                        apply(uid, object, &mut applies, &mut deletes);
                    } else if is_endpoint_slice(&stream.resource) {
                        let added = links.apply_slice(&object, &self.source.cluster);
                        if news {
                            joined.extend(added);
                        }
                    } else if stream.resource.api.kind == "Event" {
                        match events::to_change(&object, &self.source.events) {
                            Ok(change) => changes.push(change),
                            Err(events::Skipped::Excluded) => {}
                            Err(events::Skipped::Malformed(m)) => self.warnings.push(m),
                        }
                    }
                }
                Update::Delete(i, object) => {
                    let Some(stream) = streams.get_mut(i) else {
                        continue;
                    };
                    let Some(uid) = uid_of(&object) else { continue };
                    stream.known.remove(&uid);
                    if let Some(seen) = &mut stream.relist {
                        seen.remove(&uid);
                    }
                    if stream.resource.stored {
                        applies.remove(&uid);
                        deletes.insert(uid);
                        links.selectors.remove(&uid);
                    } else if is_endpoint_slice(&stream.resource) {
                        links.remove_slice(uid);
                    }
                }
            }
        }
        let mut collected = crate::pipeline::Collected::default();
        for uid in order {
            let Some(object) = applies.remove(&uid) else {
                continue;
            };
            match object_item(self.config, self.source, object, now) {
                Ok(Some(mut extracted)) => {
                    if extracted.item.item_type == "Kubernetes::Service" {
                        match (extracted.selector.take(), extracted.item.namespace.clone()) {
                            (Some(selector), Some(ns)) => {
                                links.selectors.insert(uid, (ns, selector));
                            }
                            _ => {
                                links.selectors.remove(&uid);
                            }
                        }
                    }
                    if extracted.item.item_type == "Kubernetes::Pod" {
                        links.link(&mut extracted.item);
                    }
                    collected.push(extracted)
                }
                // An object that became excluded leaves the catalog.
                Ok(None) => {
                    deletes.insert(uid);
                }
                Err(e) => self.warnings.push(e),
            }
        }
        let crate::pipeline::Collected {
            mut items,
            links: links_pending,
            warnings,
            ..
        } = collected;
        self.warnings.extend(warnings);
        crate::relationships::resolve(self.store, self.scraper_id, &mut items, links_pending)
            .await?;
        // Slice edges onto pods of the batch travel with the pods; the
        // rest are edges between items already in the catalog.
        let in_batch: HashSet<Uuid> = items.iter().filter_map(|i| i.source_id).collect();
        joined.retain(|(_, pod)| !in_batch.contains(pod));
        if !joined.is_empty() {
            let refs: Vec<stratum_domain::ItemRef> = joined
                .iter()
                .map(|(service, _)| stratum_domain::ItemRef::Id(*service))
                .collect();
            let live = self.store.resolve_refs(&refs).await?;
            joined.retain(|(service, _)| live.contains_key(&stratum_domain::ItemRef::Id(*service)));
        }
        if !items.is_empty() || !joined.is_empty() {
            let mut session = IngestSession::new(self.scraper_id, self.run_id, self.started_at);
            session.touch_granularity =
                crate::pipeline::touch_granularity(self.config.stale_item_age);
            session.change_rules = self.config.change_rules.clone();
            for (service, pod) in joined {
                session.add_soft_edge(
                    service,
                    stratum_domain::ItemRef::Id(pod),
                    false,
                    "ServicePod",
                );
            }
            let items = crate::pipeline::parents_first(items, self.scraper_id);
            for chunk in items.chunks(BATCH_MAX) {
                let prepared = self
                    .store
                    .prepare_batch(&mut session, chunk.to_vec())
                    .await?;
                let stats = self.store.write_batch(prepared).await?;
                session.stats.add(&stats);
            }
            let completion = RunCompletion {
                full: false,
                errors: Vec::new(),
                warnings: Vec::new(),
                stale_item_age: None,
                max_delete_percent: self.config.max_delete_percent,
                allow_mass_delete: false,
            };
            self.store.complete_run(&mut session, &completion).await?;
            self.totals.applied += session.stats.scraped;
            self.totals.changes += session.stats.changes;
            self.totals.deleted += session.stats.deleted_by_rules;
            self.warnings.extend(session.stats.rule_errors);
        }
        if !deletes.is_empty() {
            let ids: Vec<Uuid> = deletes.into_iter().collect();
            self.totals.deleted += self
                .store
                .delete_from_source(self.scraper_id, &ids, "kubernetes")
                .await?;
        }
        if !changes.is_empty() {
            let stats = self
                .store
                .upsert_external_changes(changes, self.config.change_rules.as_deref())
                .await?;
            self.warnings.extend(stats.rule_errors.iter().cloned());
            self.totals.changes += stats.inserted + stats.updated;
            if stats.unknown_target > 0 {
                self.warnings.push(format!(
                    "{} event(s) about unknown objects dropped",
                    stats.unknown_target
                ));
            }
        }
        Ok(())
    }

    /// Keeps a long session's warnings and errors bounded.
    fn trim(&mut self) {
        self.warnings.truncate(MAX_KEPT);
        self.totals.errors.truncate(MAX_KEPT);
    }

    /// Records the session's run.
    async fn finish(self) -> Result<(), ScraperError> {
        let summary = RunSummary {
            status: Some(if self.totals.errors.is_empty() {
                RunStatus::Succeeded
            } else {
                RunStatus::Partial
            }),
            scraped: self.totals.applied,
            deleted: self.totals.deleted,
            changes: self.totals.changes,
            deletions_blocked: false,
            errors: self.totals.errors,
            warnings: self.warnings,
            ..RunSummary::default()
        };
        self.store
            .finish_run(self.run_id, self.scraper_id, &summary)
            .await?;
        Ok(())
    }
}
