//! The Kubernetes scraper (SPEC §4, §5, §10): paged lists of the configured
//! kinds through the kube client, each object turned into a
//! `Kubernetes::<Kind>` item under its cluster, namespace and owner, its
//! events into changes, and (in [`watch`]) a watch that keeps the catalog
//! current between full scrapes.

pub mod events;
pub mod kinds;
pub mod spec;
pub mod watch;

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use kube::api::{DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource as _};
use serde_json::Value;
use stratum_domain::store::ExternalChange;
use stratum_domain::{Health, HealthResult};
use uuid::Uuid;

use crate::config::LoadedScrapeConfig;
use crate::pipeline::{Draft, Extracted, IGNORE, annotation, finish, str_map};
use kinds::Resource;
use spec::{KubeconfigSource, KubernetesSource};

/// Connects to the cluster of `source`.
pub async fn connect(source: &KubernetesSource) -> Result<Client, String> {
    let options = KubeConfigOptions {
        context: source.context.clone(),
        ..KubeConfigOptions::default()
    };
    let cluster = &source.cluster;
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("cluster {cluster}: {what}: {e}");
    let from = |kubeconfig: Kubeconfig| async {
        Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| fail("kubeconfig", &e))
    };
    let mut config = match &source.kubeconfig {
        KubeconfigSource::Infer if source.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| fail("kubeconfig", &e))?,
        KubeconfigSource::Infer => Config::infer()
            .await
            .map_err(|e| fail("no in-cluster config or kubeconfig", &e))?,
        KubeconfigSource::Path(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| fail(&path.display().to_string(), &e))?;
            from(kubeconfig).await?
        }
        KubeconfigSource::Env(var) => {
            let text = std::env::var(var)
                .map_err(|_| fail("kubeconfig", &format!("${var} is not set")))?;
            from(Kubeconfig::from_yaml(&text).map_err(|e| fail(&format!("${var}"), &e))?).await?
        }
        KubeconfigSource::Secret {
            namespace,
            name,
            key,
        } => {
            use k8s_openapi::api::core::v1::Secret;
            let local = Config::incluster()
                .map_err(|e| fail("reading a kubeconfig Secret needs in-cluster access", &e))?;
            let local = Client::try_from(local).map_err(|e| fail("client", &e))?;
            let secret = kube::Api::<Secret>::namespaced(local, namespace)
                .get(name)
                .await
                .map_err(|e| fail(&format!("Secret {namespace}/{name}"), &e))?;
            let bytes = secret.data.and_then(|mut d| d.remove(key)).ok_or_else(|| {
                fail(
                    &format!("Secret {namespace}/{name}"),
                    &format!("no key {key:?}"),
                )
            })?;
            let text = String::from_utf8(bytes.0)
                .map_err(|e| fail(&format!("Secret {namespace}/{name}"), &e))?;
            from(
                Kubeconfig::from_yaml(&text)
                    .map_err(|e| fail(&format!("Secret {namespace}/{name}"), &e))?,
            )
            .await?
        }
    };
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    Client::try_from(config).map_err(|e| fail("client", &e))
}

/// The list and watch selectors of a source.
fn list_params(source: &KubernetesSource) -> ListParams {
    let mut params = ListParams::default().limit(source.page_size);
    if let Some(labels) = &source.label_selector {
        params = params.labels(labels);
    }
    if let Some(fields) = &source.field_selector {
        params = params.fields(fields);
    }
    params
}

/// The watcher settings matching [`list_params`].
pub(crate) fn watcher_config(source: &KubernetesSource) -> kube::runtime::watcher::Config {
    let mut settings = kube::runtime::watcher::Config::default().page_size(source.page_size);
    if let Some(labels) = &source.label_selector {
        settings = settings.labels(labels);
    }
    if let Some(fields) = &source.field_selector {
        settings = settings.fields(fields);
    }
    settings
}

/// The namespaces a resource is listed in: `[None]` for all.
pub(crate) fn scopes(source: &KubernetesSource, resource: &Resource) -> Vec<Option<String>> {
    if resource.namespaced && !source.namespaces.is_empty() {
        source.namespaces.iter().cloned().map(Some).collect()
    } else {
        vec![None]
    }
}

/// Gives a listed object the `apiVersion` and `kind` a list leaves out.
fn complete(mut object: Value, resource: &Resource) -> Value {
    if let Value::Object(map) = &mut object {
        map.entry("apiVersion")
            .or_insert_with(|| resource.api.api_version.clone().into());
        map.entry("kind")
            .or_insert_with(|| resource.api.kind.clone().into());
    }
    object
}

/// One page of a list.
#[derive(serde::Deserialize)]
struct ListPage {
    #[serde(default)]
    metadata: kube::api::ListMeta,
    #[serde(default)]
    items: Vec<Listed>,
}

/// A listed object, parsed without `metadata.managedFields`: the API
/// server's field-ownership bookkeeping, often a third of an object's JSON,
/// which the catalog strips anyway (SPEC §5). Skipping it while parsing
/// saves building and freeing it for every object of every list.
struct Listed(Value);

impl<'de> serde::Deserialize<'de> for Listed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor { metadata: false })
            .map(Listed)
    }
}

/// An object (`metadata: false`) or its metadata (`true`), whose
/// `managedFields` member is skipped.
struct ObjectVisitor {
    metadata: bool,
}

/// The `metadata` member of a listed object.
struct Metadata(Value);

impl<'de> serde::Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ObjectVisitor { metadata: true })
            .map(Metadata)
    }
}

impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if self.metadata {
            "object metadata"
        } else {
            "a Kubernetes object"
        })
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "managedFields" if self.metadata => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
                "metadata" if !self.metadata => map.next_value::<Metadata>()?.0,
                _ => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Whether `source` skips the object.
pub fn excluded(source: &KubernetesSource, object: &Value) -> bool {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    if source.exclude_names.iter().any(|p| p.matches(name)) {
        return true;
    }
    if let Some(ns) = namespace
        && source.exclude_namespaces.iter().any(|p| p.matches(ns))
    {
        return true;
    }
    if object.get("kind").and_then(Value::as_str) == Some("Namespace")
        && !source.namespaces.is_empty()
        && !source.namespaces.iter().any(|n| n == name)
    {
        return true;
    }
    if !source.exclude_labels.is_empty() {
        let labels = object.pointer("/metadata/labels");
        if source
            .exclude_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v.as_str()))
        {
            return true;
        }
    }
    annotation(object, &IGNORE) == Some("true")
}

/// Turns a Kubernetes object of the cluster into an item, or explains why
/// it cannot (`Ok(None)`: excluded).
pub(crate) fn object_item(
    config: &LoadedScrapeConfig,
    source: &KubernetesSource,
    object: Value,
    now: chrono::DateTime<Utc>,
) -> Result<Option<Extracted>, String> {
    if excluded(source, &object) {
        return Ok(None);
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("cluster {}: a {kind} without a name", source.cluster))?
        .to_string();
    let id = object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| Uuid::parse_str(u).is_ok())
        .ok_or_else(|| {
            format!(
                "cluster {}: {kind} {name:?} has no valid uid",
                source.cluster
            )
        })?
        .to_string();
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut tags = BTreeMap::from([("cluster".to_string(), source.cluster.clone())]);
    if let Some(ns) = &namespace {
        tags.insert("namespace".into(), ns.clone());
    }
    let ignored_change_types = crate::pipeline::ignored_change_types(&object);
    let draft = Draft {
        id,
        item_type: format!("Kubernetes::{kind}"),
        class: kind,
        name,
        namespace,
        status: None,
        tags,
        labels: str_map(object.pointer("/metadata/labels")),
        ignored_change_types,
        source: format!("kubernetes/{}", source.cluster),
    };
    Ok(Some(finish(config, draft, object, now)))
}

/// The `Kubernetes::Cluster` item every object of a source hangs under:
/// healthy when the cluster answered, unhealthy with the reason otherwise.
pub(crate) fn cluster_item(
    config: &LoadedScrapeConfig,
    source: &KubernetesSource,
    version: Option<&Value>,
    failure: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> Extracted {
    let mut document = serde_json::json!({"name": source.cluster});
    if let Some(v) = version {
        document["version"] = v.clone();
    }
    let draft = Draft {
        id: source.cluster.clone(),
        item_type: "Kubernetes::Cluster".into(),
        class: "Cluster".into(),
        name: source.cluster.clone(),
        namespace: None,
        status: None,
        tags: BTreeMap::from([("cluster".to_string(), source.cluster.clone())]),
        labels: BTreeMap::new(),
        ignored_change_types: Vec::new(),
        source: format!("kubernetes/{}", source.cluster),
    };
    let mut extracted = finish(config, draft, document, now);
    extracted.item.health = match failure {
        None => HealthResult {
            health: Health::Healthy,
            status: Some("Reachable".into()),
            ready: true,
            message: None,
        },
        Some(e) => HealthResult {
            health: Health::Unhealthy,
            status: Some("Unreachable".into()),
            ready: false,
            message: Some(e.chars().take(500).collect()),
        },
    };
    extracted
}

/// What a full scrape of one cluster produced besides the items it wrote.
#[derive(Default)]
pub(crate) struct ClusterScrape {
    /// Event changes.
    pub(crate) events: Vec<ExternalChange>,
    /// Errors: any blocks deletions.
    pub(crate) errors: Vec<String>,
    /// Warnings.
    pub(crate) warnings: Vec<String>,
    /// Relationship rule selectors that matched nothing.
    pub(crate) unresolved: i64,
}

/// Pages of one resource, fetched by a task of their own so the next page
/// downloads while this one is processed. At most two pages wait.
fn spawn_pages(
    client: Client,
    source: KubernetesSource,
    resource: Resource,
) -> tokio::sync::mpsc::Receiver<Result<Vec<Value>, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        for scope in scopes(&source, &resource) {
            let path = DynamicObject::url_path(&resource.api, scope.as_deref());
            let mut params = list_params(&source);
            loop {
                let request = match kube::core::Request::new(&path).list(&params) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string())).await;
                        return;
                    }
                };
                let page: ListPage = match client.request(request).await {
                    Ok(p) => p,
                    Err(e) => {
                        let scope = scope
                            .as_ref()
                            .map(|n| format!(" in {n}"))
                            .unwrap_or_default();
                        let _ = tx
                            .send(Err(format!("list {}{scope}: {e}", resource.api.plural)))
                            .await;
                        return;
                    }
                };
                let next = page.metadata.continue_.filter(|c| !c.is_empty());
                let objects = page
                    .items
                    .into_iter()
                    .map(|Listed(o)| complete(o, &resource))
                    .collect();
                if tx.send(Ok(objects)).await.is_err() {
                    return;
                }
                match next {
                    Some(token) => params.continue_token = Some(token),
                    None => break,
                }
            }
        }
    });
    rx
}

/// Which Services select a pod: by EndpointSlice, else by selector.
#[derive(Default)]
struct ServicePods {
    /// Pod uid → Services whose EndpointSlices target it.
    by_slice: HashMap<Uuid, Vec<Uuid>>,
    /// `(namespace, selector, service uid)` of Services without slices.
    selectors: Vec<(String, crate::kubernetes_links::ServiceSelector, Uuid)>,
}

impl ServicePods {
    /// `ServicePod` edges onto a pod item, from the Services' side.
    fn link(&self, pod: &mut stratum_domain::ScrapedItem) {
        let Some(uid) = pod.source_id else { return };
        let sliced = self.by_slice.get(&uid).cloned().unwrap_or_default();
        crate::kubernetes_links::link_pod_services(
            pod,
            sliced,
            self.selectors
                .iter()
                .map(|(ns, selector, service)| (ns.as_str(), selector, *service)),
        );
    }
}

/// Lists every resource of `source` and its events, writing items through
/// `writer` page by page (SPEC §15: memory bounded by pages, not by the
/// cluster). Services and EndpointSlices are read first, so each pod
/// carries its `ServicePod` edges; owners come before what they own.
pub(crate) async fn scrape_cluster(
    config: &LoadedScrapeConfig,
    source: &KubernetesSource,
    now: chrono::DateTime<Utc>,
    session: &mut stratum_domain::store::IngestSession,
    writer: &mut crate::pipeline::BatchWriter<'_>,
) -> Result<ClusterScrape, crate::ScraperError> {
    let mut out = ClusterScrape::default();
    let reached = match connect(source).await {
        Ok(client) => match client.apiserver_version().await {
            Ok(info) => Ok((client, serde_json::to_value(info).ok())),
            Err(e) => Err(format!("cluster {}: {e}", source.cluster)),
        },
        Err(e) => Err(e),
    };
    let (client, version) = match reached {
        Ok(reached) => reached,
        Err(e) => {
            let unreachable = cluster_item(config, source, None, Some(&e), now);
            writer.push_one(session, unreachable.item).await?;
            out.errors.push(e);
            return Ok(out);
        }
    };
    writer
        .push_one(
            session,
            cluster_item(config, source, version.as_ref(), None, now).item,
        )
        .await?;
    let (mut resources, errors) = kinds::resolve(&client, source).await;
    out.errors.extend(
        errors
            .into_iter()
            .map(|e| format!("cluster {}: {e}", source.cluster)),
    );
    // Services and their slices first, pods last: every other kind may own pods.
    let rank = |r: &Resource| match (r.api.group.as_str(), r.api.kind.as_str()) {
        ("", "Service") | ("discovery.k8s.io", "EndpointSlice") => 0,
        ("", "Pod") => 2,
        _ => 1,
    };
    resources.sort_by_key(rank);
    let mut service_pods = ServicePods::default();
    let mut services: Vec<(
        String,
        crate::kubernetes_links::ServiceSelector,
        Uuid,
        String,
    )> = Vec::new();
    let mut sliced: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut selectors_settled = false;
    let cluster = source.cluster.as_str();
    for resource in &resources {
        if rank(resource) > 0 && !selectors_settled {
            // Services with slices get their edges from the slices only.
            service_pods.selectors = services
                .drain(..)
                .filter(|(_, _, _, key)| !sliced.contains(key))
                .map(|(ns, selector, id, _)| (ns, selector, id))
                .collect();
            selectors_settled = true;
        }
        let mut pages = spawn_pages(client.clone(), source.clone(), resource.clone());
        while let Some(page) = pages.recv().await {
            let objects = match page {
                Ok(objects) => objects,
                Err(e) => {
                    out.errors.push(format!("cluster {cluster}: {e}"));
                    break;
                }
            };
            let mut collected = crate::pipeline::Collected::default();
            for object in objects {
                if !resource.stored {
                    if resource.api.kind == "EndpointSlice"
                        && let Some((service, pods)) =
                            crate::kubernetes_links::endpoint_slice_targets(&object, Some(cluster))
                    {
                        // A slice names its Service by label and by owner.
                        if let Some(service_id) =
                            crate::kubernetes_links::endpoint_slice_service(&object)
                        {
                            for pod in pods {
                                service_pods
                                    .by_slice
                                    .entry(pod)
                                    .or_default()
                                    .push(service_id);
                            }
                            sliced.insert(service);
                        }
                    }
                    continue;
                }
                match object_item(config, source, object, now) {
                    Ok(Some(mut extracted)) => {
                        if let (Some(selector), Some(id), Some(ns)) = (
                            extracted.selector.take(),
                            extracted.item.source_id,
                            extracted.item.namespace.clone(),
                        ) {
                            let key = crate::kubernetes_links::object_key(
                                Some(cluster),
                                Some(&ns),
                                &extracted.item.name,
                            );
                            services.push((ns, selector, id, key));
                        }
                        if resource.api.kind == "Pod" {
                            service_pods.link(&mut extracted.item);
                        }
                        collected.push(extracted);
                    }
                    Ok(None) => {}
                    Err(e) => out.errors.push(e),
                }
            }
            let crate::pipeline::Collected {
                mut items,
                links,
                warnings,
                ..
            } = collected;
            out.warnings.extend(warnings);
            out.unresolved += crate::relationships::resolve(
                writer.store(),
                session.scraper_id,
                &mut items,
                links,
            )
            .await?;
            writer.push(session, items).await?;
        }
    }
    if source.events.enabled {
        let mut malformed = 0usize;
        let mut pages = spawn_pages(client.clone(), source.clone(), kinds::events());
        let mut failed = None;
        while let Some(page) = pages.recv().await {
            match page {
                Ok(page) => {
                    for event in page {
                        match events::to_change(&event, &source.events) {
                            Ok(change) => out.events.push(change),
                            Err(events::Skipped::Excluded) => {}
                            Err(events::Skipped::Malformed(_)) => malformed += 1,
                        }
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if malformed > 0 {
            out.warnings.push(format!(
                "cluster {cluster}: {malformed} event(s) without a uid, reason or target skipped"
            ));
        }
        // Events are history, not inventory: a failed event list is a
        // warning and blocks no deletion.
        if let Some(e) = failed {
            out.warnings.push(format!("cluster {cluster}: {e}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn listed_objects_parse_without_managed_fields() {
        let object = json!({
            "metadata": {
                "name": "api", "uid": "u1",
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
                "labels": {"managedFields": "kept"}
            },
            "spec": {"managedFields": ["kept outside metadata"], "x": null},
            "status": {"phase": "Running"}
        });
        let page = json!({"metadata": {"continue": "t1", "resourceVersion": "7"}, "items": [object, {"metadata": null}]});
        let page: ListPage = serde_json::from_value(page).expect("page");
        assert_eq!(page.metadata.continue_.as_deref(), Some("t1"));
        let mut expected = object.clone();
        expected["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("managedFields");
        assert_eq!(page.items[0].0, expected);
        assert_eq!(page.items[1].0, json!({"metadata": null}));
        // A page whose items are not objects is an error, not a guess.
        let err = serde_json::from_str::<ListPage>(r#"{"items": [1]}"#)
            .err()
            .expect("not an object");
        assert!(err.to_string().contains("a Kubernetes object"), "{err}");
    }
}
