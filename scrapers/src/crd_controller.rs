//! Watches `ScrapeConfig` and `Topology` resources ([`crate::crd`]) in the
//! cluster and applies them live (SPEC §10, §14): a resource that appears
//! or changes (a new `metadata.generation`) is loaded exactly as a file
//! would be and (re)started; one that is deleted stops. Each resource's
//! `status` says how it went: `invalid` with the loader's errors, or after
//! every run its status, time, item count, errors and warnings.
//!
//! Resource configs join the scrapers that ownership shares out across
//! replicas ([`ScraperSet`]), so a ScrapeConfig resource runs on one
//! replica at a time like a file's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use serde::Serialize;
use serde_json::json;
use stratum_domain::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::crd::{ResourceStatus, ScrapeConfig, Topology};
use crate::error::ScraperError;
use crate::ownership::{Ownership, ScraperSet};

/// What the controller needs from the server.
#[derive(Clone)]
pub struct Controller {
    /// The catalog.
    pub store: Store,
    /// The cluster API.
    pub client: kube::Client,
    /// The scrapers ownership shares out.
    pub scrapers: ScraperSet,
    /// This replica's ownership.
    pub ownership: Ownership,
    /// Where the loops run.
    pub tracker: TaskTracker,
    /// Server shutdown.
    pub cancel: CancellationToken,
}

/// A running resource: its generation and the token that stops it.
struct Running {
    generation: Option<i64>,
    stop: CancellationToken,
}

fn key(namespace: Option<&str>, name: &str) -> (String, String) {
    (namespace.unwrap_or("default").to_string(), name.to_string())
}

/// The resource as the document a file would hold, for the loader.
fn document(
    kind: &str,
    namespace: &str,
    name: &str,
    spec: &impl Serialize,
) -> Result<String, String> {
    let doc = json!({
        "apiVersion": "stratum.dev/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });
    serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())
}

/// Errors of a failed load, one line each.
fn load_errors(error: &ScraperError) -> Vec<String> {
    match error {
        ScraperError::Invalid(diagnostics) => {
            diagnostics.iter().map(|d| d.message.clone()).collect()
        }
        other => vec![other.to_string()],
    }
}

/// Merges `status` into the resource's status subresource (best effort:
/// a failure is logged, the next run writes again).
async fn write_status<K>(api: &Api<K>, name: &str, status: &ResourceStatus)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = Patch::Merge(json!({ "status": status }));
    if let Err(error) = api
        .patch_status(name, &PatchParams::default(), &patch)
        .await
    {
        tracing::warn!(resource = %name, %error, "cannot write the resource's status");
    }
}

/// Connects to the cluster (in-cluster, or `KUBECONFIG`) and starts the
/// controller's watches on `tracker`.
pub async fn start(
    store: Store,
    scrapers: ScraperSet,
    ownership: Ownership,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> Result<(), String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("no in-cluster config or kubeconfig: {e}"))?;
    let client = kube::Client::try_from(config).map_err(|e| format!("cluster client: {e}"))?;
    Controller {
        store,
        client,
        scrapers,
        ownership,
        tracker: tracker.clone(),
        cancel,
    }
    .spawn();
    Ok(())
}

/// Which resource an event is about.
struct Target<K> {
    namespace: String,
    name: String,
    generation: Option<i64>,
    api: Api<K>,
}

/// A resource kind the controller applies: how it loads, and how it runs.
trait Watched:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// `ScrapeConfig` or `Topology`.
    const KIND: &'static str;
    /// What the loader produces.
    type Loaded: Send;
    /// The spec, as the document's `spec`.
    fn spec(&self) -> &(impl Serialize + Sync);
    /// Loads the resource as a file holding it would be.
    fn load(source: &str, text: &str) -> Result<Self::Loaded, Vec<String>>;
    /// Starts it until `stop`; the status to write now, if any (later ones
    /// come from its runs).
    fn run(
        controller: &Controller,
        loaded: Self::Loaded,
        target: &Target<Self>,
        stop: CancellationToken,
    ) -> Option<ResourceStatus>;
    /// It was deleted and stopped.
    fn deleted(_controller: &Controller, _namespace: &str, _name: &str) {}
}

/// The one item a load must give.
fn exactly_one<T>(mut loaded: Vec<T>, kind: &str) -> Result<T, Vec<String>> {
    if loaded.len() == 1 {
        Ok(loaded.remove(0))
    } else {
        Err(vec![format!("the resource did not load as one {kind}")])
    }
}

impl Watched for ScrapeConfig {
    const KIND: &'static str = "ScrapeConfig";
    type Loaded = crate::config::LoadedScrapeConfig;

    fn spec(&self) -> &(impl Serialize + Sync) {
        &self.spec
    }

    fn load(source: &str, text: &str) -> Result<Self::Loaded, Vec<String>> {
        crate::config::load_str(Path::new(source), text)
            .map_err(|e| load_errors(&e))
            .and_then(|c| exactly_one(c, Self::KIND))
    }

    fn run(
        controller: &Controller,
        config: Self::Loaded,
        target: &Target<Self>,
        stop: CancellationToken,
    ) -> Option<ResourceStatus> {
        let warnings: Vec<String> = config.warnings.iter().map(|d| d.message.clone()).collect();
        controller
            .scrapers
            .insert(crate::scheduler::scraper_id(&config));
        let (api, name, generation) = (target.api.clone(), target.name.clone(), target.generation);
        let reporter: crate::scheduler::RunReporter = Arc::new(move |result| {
            let (last_status, items, errors) = match result {
                Ok(report) => (
                    report.status.as_str().to_string(),
                    Some(report.summary.scraped),
                    report.summary.errors.clone(),
                ),
                Err(error) => ("failed".to_string(), None, vec![error.to_string()]),
            };
            let status = ResourceStatus {
                observed_generation: generation,
                last_status: Some(last_status),
                last_run_at: Some(chrono::Utc::now().to_rfc3339()),
                items,
                errors,
                warnings: warnings.clone(),
            };
            let (api, name) = (api.clone(), name.clone());
            tokio::spawn(async move { write_status(&api, &name, &status).await });
        });
        crate::scheduler::spawn_one(
            controller.store.clone(),
            Arc::new(config),
            &controller.tracker,
            stop,
            true,
            controller.ownership.clone(),
            Some(reporter),
        );
        None
    }

    fn deleted(controller: &Controller, namespace: &str, name: &str) {
        controller
            .scrapers
            .remove(stratum_domain::ids::scraper_id(namespace, name));
        tracing::info!(scraper = %format!("{namespace}/{name}"), "ScrapeConfig resource deleted; its scraper stopped");
    }
}

impl Watched for Topology {
    const KIND: &'static str = "Topology";
    type Loaded = crate::topology::LoadedTopology;

    fn spec(&self) -> &(impl Serialize + Sync) {
        &self.spec
    }

    fn load(source: &str, text: &str) -> Result<Self::Loaded, Vec<String>> {
        crate::topology::load_str(Path::new(source), text)
            .map_err(|e| load_errors(&e))
            .and_then(|t| exactly_one(t, Self::KIND))
    }

    fn run(
        controller: &Controller,
        topology: Self::Loaded,
        target: &Target<Self>,
        stop: CancellationToken,
    ) -> Option<ResourceStatus> {
        crate::topology::spawn_one(
            controller.store.clone(),
            Arc::new(topology),
            &controller.tracker,
            stop,
        );
        Some(ResourceStatus {
            observed_generation: target.generation,
            last_status: Some("applied".into()),
            last_run_at: Some(chrono::Utc::now().to_rfc3339()),
            ..ResourceStatus::default()
        })
    }
}

impl Controller {
    /// Starts both watches on the tracker.
    pub fn spawn(self) {
        let scrapes = self.clone();
        self.tracker
            .spawn(async move { scrapes.watch::<ScrapeConfig>().await });
        let topologies = self.clone();
        self.tracker
            .spawn(async move { topologies.watch::<Topology>().await });
    }

    async fn watch<K: Watched>(self) {
        let api: Api<K> = Api::all(self.client.clone());
        let mut running: HashMap<(String, String), Running> = HashMap::new();
        let stream = watcher(api, watcher::Config::default());
        futures_util::pin_mut!(stream);
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            match event {
                Ok(watcher::Event::Apply(resource) | watcher::Event::InitApply(resource)) => {
                    self.apply(resource, &mut running).await;
                }
                Ok(watcher::Event::Delete(resource)) => {
                    let meta = resource.meta();
                    let key = key(
                        meta.namespace.as_deref(),
                        meta.name.as_deref().unwrap_or_default(),
                    );
                    if let Some(run) = running.remove(&key) {
                        run.stop.cancel();
                        K::deleted(&self, &key.0, &key.1);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    // The watcher retries by itself; say so once per error.
                    tracing::warn!(kind = K::KIND, %error, "watching resources");
                    tokio::time::sleep(crate::scheduler::FIRST_BACKOFF).await;
                }
            }
        }
    }

    /// Loads a new generation; starts it in place of the running one, or
    /// reports it `invalid` and keeps the running one.
    async fn apply<K: Watched>(
        &self,
        resource: K,
        running: &mut HashMap<(String, String), Running>,
    ) {
        let meta = resource.meta();
        let name = meta.name.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let generation = meta.generation;
        let key = key(Some(&namespace), &name);
        if running
            .get(&key)
            .is_some_and(|r| r.generation == generation && generation.is_some())
        {
            return;
        }
        // No `/`: relative paths in the spec resolve against the working
        // directory, not a made-up parent.
        let source = format!("{} {namespace}:{name}", K::KIND);
        let target = Target {
            api: Api::namespaced(self.client.clone(), &namespace),
            namespace,
            name,
            generation,
        };
        let loaded = document(K::KIND, &target.namespace, &target.name, resource.spec())
            .map_err(|e| vec![e])
            .and_then(|text| K::load(&source, &text));
        let status = match loaded {
            Ok(loaded) => {
                if let Some(previous) = running.remove(&key) {
                    previous.stop.cancel();
                }
                let stop = self.cancel.child_token();
                let status = K::run(self, loaded, &target, stop.clone());
                tracing::info!(resource = %source, ?generation, "resource applied");
                running.insert(key, Running { generation, stop });
                status
            }
            Err(errors) => {
                tracing::warn!(resource = %source, ?errors, "invalid resource; keeping what ran before");
                Some(ResourceStatus {
                    observed_generation: generation,
                    last_status: Some("invalid".into()),
                    errors,
                    ..ResourceStatus::default()
                })
            }
        };
        if let Some(status) = status {
            write_status(&target.api, &target.name, &status).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn a_resource_becomes_the_document_a_file_holds() {
        let text = document(
            "ScrapeConfig",
            "platform",
            "k8s",
            &json!({"schedule": "@every 5m"}),
        )
        .expect("yaml");
        let configs =
            crate::config::load_str(Path::new("ScrapeConfig platform/k8s"), &text).expect("loads");
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].metadata.namespace, "platform");
        let value: Value = serde_yaml_ng::from_str(&text).expect("yaml");
        assert_eq!(value["kind"], "ScrapeConfig");
    }
}
