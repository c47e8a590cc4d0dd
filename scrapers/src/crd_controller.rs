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

impl Controller {
    /// Starts both watches on the tracker.
    pub fn spawn(self) {
        let scrapes = self.clone();
        self.tracker
            .spawn(async move { scrapes.watch_scrape_configs().await });
        let topologies = self.clone();
        self.tracker
            .spawn(async move { topologies.watch_topologies().await });
    }

    async fn watch_scrape_configs(self) {
        let api: Api<ScrapeConfig> = Api::all(self.client.clone());
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
                    self.apply_scrape_config(resource, &mut running).await;
                }
                Ok(watcher::Event::Delete(resource)) => {
                    let key = key(
                        resource.metadata.namespace.as_deref(),
                        &resource.metadata.name.clone().unwrap_or_default(),
                    );
                    if let Some(run) = running.remove(&key) {
                        run.stop.cancel();
                        self.scrapers
                            .remove(stratum_domain::ids::scraper_id(&key.0, &key.1));
                        tracing::info!(scraper = %format!("{}/{}", key.0, key.1), "ScrapeConfig resource deleted; its scraper stopped");
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    // The watcher retries by itself; say so once per error.
                    tracing::warn!(%error, "watching ScrapeConfig resources");
                    tokio::time::sleep(crate::scheduler::FIRST_BACKOFF).await;
                }
            }
        }
    }

    async fn apply_scrape_config(
        &self,
        resource: ScrapeConfig,
        running: &mut HashMap<(String, String), Running>,
    ) {
        let name = resource.metadata.name.clone().unwrap_or_default();
        let namespace = resource
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let generation = resource.metadata.generation;
        let key = key(Some(&namespace), &name);
        if running
            .get(&key)
            .is_some_and(|r| r.generation == generation && generation.is_some())
        {
            return;
        }
        let api: Api<ScrapeConfig> = Api::namespaced(self.client.clone(), &namespace);
        // No `/`: relative paths in the spec resolve against the working
        // directory, not a made-up parent.
        let source = format!("ScrapeConfig {namespace}:{name}");
        let loaded = document("ScrapeConfig", &namespace, &name, &resource.spec)
            .map_err(|e| vec![e])
            .and_then(|text| {
                crate::config::load_str(Path::new(&source), &text).map_err(|e| load_errors(&e))
            });
        let loaded = loaded.and_then(|mut configs| {
            if configs.len() == 1 {
                Ok(configs.remove(0))
            } else {
                Err(vec![
                    "the resource did not load as one ScrapeConfig".to_string(),
                ])
            }
        });
        let config = match loaded {
            Ok(config) => config,
            Err(errors) => {
                tracing::warn!(resource = %source, ?errors, "invalid ScrapeConfig resource; keeping what ran before");
                write_status(
                    &api,
                    &name,
                    &ResourceStatus {
                        observed_generation: generation,
                        last_status: Some("invalid".into()),
                        errors,
                        ..ResourceStatus::default()
                    },
                )
                .await;
                return;
            }
        };
        let warnings: Vec<String> = config.warnings.iter().map(|d| d.message.clone()).collect();
        if let Some(previous) = running.remove(&key) {
            previous.stop.cancel();
        }
        let stop = self.cancel.child_token();
        let id = crate::scheduler::scraper_id(&config);
        self.scrapers.insert(id);
        let reporter_api = api.clone();
        let reporter_name = name.clone();
        let reporter: crate::scheduler::RunReporter = Arc::new(move |result| {
            let status = match result {
                Ok(report) => ResourceStatus {
                    observed_generation: generation,
                    last_status: Some(report.status.as_str().to_string()),
                    last_run_at: Some(chrono::Utc::now().to_rfc3339()),
                    items: Some(report.summary.scraped),
                    errors: report.summary.errors.clone(),
                    warnings: warnings.clone(),
                },
                Err(error) => ResourceStatus {
                    observed_generation: generation,
                    last_status: Some("failed".into()),
                    last_run_at: Some(chrono::Utc::now().to_rfc3339()),
                    errors: vec![error.to_string()],
                    warnings: warnings.clone(),
                    ..ResourceStatus::default()
                },
            };
            let (api, name) = (reporter_api.clone(), reporter_name.clone());
            tokio::spawn(async move { write_status(&api, &name, &status).await });
        });
        crate::scheduler::spawn_one(
            self.store.clone(),
            Arc::new(config),
            &self.tracker,
            stop.clone(),
            true,
            self.ownership.clone(),
            Some(reporter),
        );
        tracing::info!(resource = %source, ?generation, "ScrapeConfig resource applied");
        running.insert(key, Running { generation, stop });
    }

    async fn watch_topologies(self) {
        let api: Api<Topology> = Api::all(self.client.clone());
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
                    self.apply_topology(resource, &mut running).await;
                }
                Ok(watcher::Event::Delete(resource)) => {
                    let key = key(
                        resource.metadata.namespace.as_deref(),
                        &resource.metadata.name.clone().unwrap_or_default(),
                    );
                    if let Some(run) = running.remove(&key) {
                        run.stop.cancel();
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "watching Topology resources");
                    tokio::time::sleep(crate::scheduler::FIRST_BACKOFF).await;
                }
            }
        }
    }

    async fn apply_topology(
        &self,
        resource: Topology,
        running: &mut HashMap<(String, String), Running>,
    ) {
        let name = resource.metadata.name.clone().unwrap_or_default();
        let namespace = resource
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let generation = resource.metadata.generation;
        let key = key(Some(&namespace), &name);
        if running
            .get(&key)
            .is_some_and(|r| r.generation == generation && generation.is_some())
        {
            return;
        }
        let api: Api<Topology> = Api::namespaced(self.client.clone(), &namespace);
        let source = format!("Topology {namespace}:{name}");
        let loaded = document("Topology", &namespace, &name, &resource.spec)
            .map_err(|e| vec![e])
            .and_then(|text| {
                crate::topology::load_str(Path::new(&source), &text).map_err(|e| load_errors(&e))
            });
        let status = match loaded {
            Ok(mut topologies) if topologies.len() == 1 => {
                if let Some(previous) = running.remove(&key) {
                    previous.stop.cancel();
                }
                let stop = self.cancel.child_token();
                crate::topology::spawn_one(
                    self.store.clone(),
                    Arc::new(topologies.remove(0)),
                    &self.tracker,
                    stop.clone(),
                );
                running.insert(key, Running { generation, stop });
                ResourceStatus {
                    observed_generation: generation,
                    last_status: Some("applied".into()),
                    last_run_at: Some(chrono::Utc::now().to_rfc3339()),
                    ..ResourceStatus::default()
                }
            }
            Ok(_) => ResourceStatus {
                observed_generation: generation,
                last_status: Some("invalid".into()),
                errors: vec!["the resource did not load as one Topology".into()],
                ..ResourceStatus::default()
            },
            Err(errors) => ResourceStatus {
                observed_generation: generation,
                last_status: Some("invalid".into()),
                errors,
                ..ResourceStatus::default()
            },
        };
        write_status(&api, &name, &status).await;
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
