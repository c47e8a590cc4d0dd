//! A stand-in Kubernetes API server for scraper tests and benchmarks (the
//! one sanctioned stand-in: no cluster can run here). It serves recorded
//! Kubernetes JSON over real HTTP with the API server's semantics: discovery
//! (`/api`, `/apis`, `/apis/<group>/<version>`), `/version`, paged lists
//! (`limit`/`continue`, items without `kind`/`apiVersion`, every page of a
//! list at the version of its first, `410` for a continue token older than
//! the compaction point), label selectors, and chunked watch streams that replay
//! from a `resourceVersion`, send `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`,
//! and answer `410 Gone` for compacted versions. Tests inject faults: a 500
//! on a given list page, or the expiry of every open watch.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A resource the server knows: `(group, version, kind, plural, namespaced)`.
type Kind = (&'static str, &'static str, &'static str, &'static str, bool);

const KINDS: &[Kind] = &[
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "Node", "nodes", false),
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "PersistentVolume", "persistentvolumes", false),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("", "v1", "Event", "events", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("cert-manager.io", "v1", "Certificate", "certificates", true),
    ("stratum.dev", "v1", "ScrapeConfig", "scrapeconfigs", true),
    ("stratum.dev", "v1", "Topology", "topologies", true),
];

fn group_version(kind: &Kind) -> String {
    if kind.0.is_empty() {
        kind.1.to_string()
    } else {
        format!("{}/{}", kind.0, kind.1)
    }
}

fn kind_of_object(object: &Value) -> Option<&'static Kind> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    KINDS
        .iter()
        .find(|k| k.2 == kind && group_version(k) == api_version)
}

fn object_key(object: &Value) -> String {
    let meta = &object["metadata"];
    format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default()
    )
}

/// An open watch.
struct Watch {
    plural: &'static str,
    group: &'static str,
    namespace: Option<String>,
    selector: Vec<(String, String)>,
    tx: mpsc::Sender<Bytes>,
}

/// A list page that fails.
struct ListFault {
    plural: String,
    page: usize,
    times: usize,
}

/// An object, and its JSON as a list item (without `kind` and
/// `apiVersion`), serialized once when it is stored.
struct Stored {
    object: Value,
    listed: String,
}

impl Stored {
    fn new(object: Value) -> Stored {
        let mut listed = object.clone();
        if let Value::Object(m) = &mut listed {
            m.remove("kind");
            m.remove("apiVersion");
        }
        Stored {
            listed: listed.to_string(),
            object,
        }
    }
}

#[derive(Default)]
struct Inner {
    version: Value,
    resource_version: u64,
    /// Versions at or below this are compacted (410 Gone).
    compacted: u64,
    /// `(group, plural)` → key → object.
    objects: BTreeMap<(&'static str, &'static str), BTreeMap<String, Stored>>,
    /// `(resourceVersion, group, plural, type, object)`.
    log: Vec<(u64, &'static str, &'static str, &'static str, Value)>,
    watches: Vec<Watch>,
    list_faults: Vec<ListFault>,
    /// Requests served, by path (for assertions on paging).
    requests: Vec<String>,
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeCluster {
    inner: Arc<Mutex<Inner>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

fn labels_match(object: &Value, selector: &[(String, String)]) -> bool {
    selector.iter().all(|(k, v)| {
        let actual = object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str);
        match k.strip_suffix('!') {
            Some(_) => actual != Some(v.as_str()),
            None => actual == Some(v.as_str()),
        }
    })
}

fn parse_selector(text: Option<&String>) -> Vec<(String, String)> {
    text.map(|t| {
        t.split(',')
            .filter_map(|term| {
                if let Some((k, v)) = term.split_once("!=") {
                    Some((format!("{}!", k.trim()), v.trim().to_string()))
                } else {
                    term.split_once('=').map(|(k, v)| {
                        (
                            k.trim().trim_end_matches('=').to_string(),
                            v.trim().to_string(),
                        )
                    })
                }
            })
            .collect()
    })
    .unwrap_or_default()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn watch_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

impl FakeCluster {
    /// Starts a server holding `objects` (each with `apiVersion` and
    /// `kind`), answering `/version` with `version`.
    pub async fn start(version: Value, objects: Vec<Value>) -> anyhow::Result<FakeCluster> {
        let inner = Arc::new(Mutex::new(Inner {
            version,
            resource_version: 1000,
            ..Inner::default()
        }));
        {
            let mut state = lock(&inner);
            for object in objects {
                state.put(object, false)?;
            }
        }
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeCluster { inner, addr })
    }

    /// Loads a recorded fixture directory: `version.json` and any number of
    /// `kubectl get -o json` List files.
    pub fn load_fixtures(dir: &Path) -> anyhow::Result<(Value, Vec<Value>)> {
        let version: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("version.json"))?)?;
        let mut objects = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("version.json"))
            .collect();
        files.sort();
        for file in files {
            let list: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            match list.get("items").and_then(Value::as_array) {
                Some(items) => objects.extend(items.iter().cloned()),
                None => objects.push(list),
            }
        }
        Ok((version, objects))
    }

    /// Writes a kubeconfig for this server into `dir` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, context: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("kubeconfig-{context}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: http://{}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: tester\n    namespace: default\ncurrent-context: {context}\nusers:\n- name: tester\n  user:\n    token: test-token\n",
            self.addr
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Adds or replaces an object (`ADDED` or `MODIFIED` to watchers).
    pub fn apply(&self, object: Value) -> anyhow::Result<()> {
        lock(&self.inner).put(object, true)
    }

    /// Deletes an object by kind, namespace and name (`DELETED`).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> anyhow::Result<()> {
        let mut state = lock(&self.inner);
        let k = KINDS
            .iter()
            .find(|k| k.2 == kind && group_version(k) == api_version)
            .ok_or_else(|| anyhow::anyhow!("unknown kind {api_version} {kind}"))?;
        let key = format!("{}/{name}", namespace.unwrap_or_default());
        let mut object = state
            .objects
            .get_mut(&(k.0, k.3))
            .and_then(|m| m.remove(&key))
            .map(|stored| stored.object)
            .ok_or_else(|| anyhow::anyhow!("no {kind} {key}"))?;
        state.resource_version += 1;
        let rv = state.resource_version;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        state.publish(rv, k, "DELETED", object);
        Ok(())
    }

    /// An object as the server holds it.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = lock(&self.inner);
        let k = KINDS
            .iter()
            .find(|k| k.2 == kind && group_version(k) == api_version)?;
        state
            .objects
            .get(&(k.0, k.3))
            .and_then(|m| m.get(&format!("{}/{name}", namespace.unwrap_or_default())))
            .map(|stored| stored.object.clone())
    }

    /// Compacts history: every open watch gets `410 Gone` and closes, and
    /// watching from any version seen so far is refused with 410.
    pub fn expire_watches(&self) {
        let mut state = lock(&self.inner);
        state.compacted = state.resource_version;
        let gone = status(410, "Expired", "too old resource version");
        for watch in state.watches.drain(..) {
            let _ = watch.tx.try_send(watch_line("ERROR", &gone));
        }
    }

    /// Sends a `BOOKMARK` with the current version to every open watch.
    pub fn bookmark(&self) {
        let state = lock(&self.inner);
        for watch in &state.watches {
            let kind = KINDS
                .iter()
                .find(|k| k.3 == watch.plural && k.0 == watch.group);
            if let Some(k) = kind {
                let object = json!({"kind": k.2, "apiVersion": group_version(k),
                                    "metadata": {"resourceVersion": state.resource_version.to_string()}});
                let _ = watch.tx.try_send(watch_line("BOOKMARK", &object));
            }
        }
    }

    /// Makes page `page` (0-based) of lists of `plural` fail with a 500,
    /// `times` times.
    pub fn fail_list_page(&self, plural: &str, page: usize, times: usize) {
        lock(&self.inner).list_faults.push(ListFault {
            plural: plural.to_string(),
            page,
            times,
        });
    }

    /// Open watches.
    pub fn open_watches(&self) -> usize {
        let mut state = lock(&self.inner);
        state.watches.retain(|w| !w.tx.is_closed());
        state.watches.len()
    }

    /// The requests served so far (path and query).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.inner).requests.clone()
    }
}

impl Inner {
    fn put(&mut self, mut object: Value, publish: bool) -> anyhow::Result<()> {
        let kind = kind_of_object(&object).ok_or_else(|| {
            anyhow::anyhow!(
                "no resource serves {} {}",
                object["apiVersion"],
                object["kind"]
            )
        })?;
        self.resource_version += 1;
        let rv = self.resource_version;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let key = object_key(&object);
        // `metadata.generation`: 1 when created, +1 when the spec changes;
        // the status is the server's (a client's apply keeps it).
        let before = self
            .objects
            .get(&(kind.0, kind.3))
            .and_then(|m| m.get(&key))
            .map(|s| s.object.clone());
        let generation = match &before {
            None => 1,
            Some(old) => {
                let g = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                if old.get("spec") == object.get("spec") {
                    g
                } else {
                    g + 1
                }
            }
        };
        object["metadata"]["generation"] = generation.into();
        if let Some(status) = before.as_ref().and_then(|o| o.get("status"))
            && object.get("status").is_none()
        {
            object["status"] = status.clone();
        }
        let previous = self
            .objects
            .entry((kind.0, kind.3))
            .or_default()
            .insert(key, Stored::new(object.clone()));
        if publish {
            let event_type = if previous.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            };
            self.publish(rv, kind, event_type, object);
        }
        Ok(())
    }

    fn publish(&mut self, rv: u64, kind: &'static Kind, event_type: &'static str, object: Value) {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let line = watch_line(event_type, &object);
        self.watches.retain(|w| {
            if w.plural == kind.3
                && w.group == kind.0
                && (w.namespace.is_none() || w.namespace == namespace)
                && labels_match(&object, &w.selector)
            {
                w.tx.try_send(line.clone()).is_ok()
            } else {
                !w.tx.is_closed()
            }
        });
        self.log.push((rv, kind.0, kind.3, event_type, object));
    }
}

/// Where a request points.
enum Target {
    Version,
    CoreVersions,
    Groups,
    Resources(String, String),
    Collection(&'static Kind, Option<String>),
    /// `…/namespaces/<ns>/<plural>/<name>/status`.
    Status(&'static Kind, String, String),
    Unknown,
}

fn route(path: &str) -> Target {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest): (&str, &str, &[&str]) = match parts.as_slice() {
        ["version"] => return Target::Version,
        ["api"] => return Target::CoreVersions,
        ["apis"] => return Target::Groups,
        ["api", v] => return Target::Resources(String::new(), v.to_string()),
        ["apis", g, v] => return Target::Resources(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Target::Unknown,
    };
    if let ["namespaces", ns, plural, name, "status"] = rest {
        return match KINDS
            .iter()
            .find(|k| k.0 == group && k.1 == version && k.3 == *plural && k.4)
        {
            Some(kind) => Target::Status(kind, ns.to_string(), name.to_string()),
            None => Target::Unknown,
        };
    }
    let (namespace, plural) = match rest {
        [plural] => (None, *plural),
        ["namespaces", ns, plural] => (Some(ns.to_string()), *plural),
        _ => return Target::Unknown,
    };
    match KINDS
        .iter()
        .find(|k| k.0 == group && k.1 == version && k.3 == plural)
    {
        Some(kind) if namespace.is_none() || kind.4 => Target::Collection(kind, namespace),
        _ => Target::Unknown,
    }
}

/// Merges a JSON merge patch (RFC 7386) into `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(object) = target {
                for (k, v) in fields {
                    if v.is_null() {
                        object.remove(k);
                    } else {
                        merge_patch(object.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn serve(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: axum::http::Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut state = lock(&inner);
    state.requests.push(if method == axum::http::Method::GET {
        uri.to_string()
    } else {
        format!("{method} {uri}")
    });
    if let Target::Status(kind, namespace, name) = route(&path) {
        let key = format!("{namespace}/{name}");
        let Some(mut object) = state
            .objects
            .get(&(kind.0, kind.3))
            .and_then(|m| m.get(&key))
            .map(|s| s.object.clone())
        else {
            return json_response(
                StatusCode::NOT_FOUND,
                &status(404, "NotFound", &format!("{} {name} not found", kind.3)),
            );
        };
        if method == axum::http::Method::GET {
            return json_response(StatusCode::OK, &object);
        }
        let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
            return json_response(
                StatusCode::BAD_REQUEST,
                &status(400, "BadRequest", "the patch is not JSON"),
            );
        };
        // The status subresource changes only the status.
        if let Some(new_status) = patch.get("status") {
            merge_patch(&mut object["status"], new_status);
        }
        state.resource_version += 1;
        let rv = state.resource_version;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        state
            .objects
            .entry((kind.0, kind.3))
            .or_default()
            .insert(key, Stored::new(object.clone()));
        state.publish(rv, kind, "MODIFIED", object.clone());
        return json_response(StatusCode::OK, &object);
    }
    let served_groups = |state: &Inner| -> Vec<&'static Kind> {
        KINDS
            .iter()
            .filter(|k| {
                !k.0.is_empty()
                    && (k.0.ends_with("k8s.io")
                        || !k.0.contains('.')
                        || state.objects.contains_key(&(k.0, k.3)))
            })
            .collect()
    };
    match route(&path) {
        Target::Version => json_response(StatusCode::OK, &state.version),
        Target::CoreVersions => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]}),
        ),
        Target::Groups => {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for k in served_groups(&state) {
                let versions = groups.entry(k.0).or_default();
                if !versions.contains(&k.1) {
                    versions.push(k.1);
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, vs)| {
                    let versions: Vec<Value> = vs
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        Target::Resources(group, version) => {
            let served = served_groups(&state);
            let resources: Vec<Value> = KINDS
                .iter()
                .filter(|k| k.0 == group && k.1 == version && (k.0.is_empty() || served.contains(k)))
                .map(|k| {
                    json!({"name": k.3, "singularName": k.2.to_lowercase(), "namespaced": k.4, "kind": k.2,
                           "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]})
                })
                .collect();
            if resources.is_empty() {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                );
            }
            let gv = if group.is_empty() {
                version
            } else {
                format!("{group}/{version}")
            };
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            )
        }
        Target::Unknown | Target::Status(..) => json_response(
            StatusCode::NOT_FOUND,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ),
        Target::Collection(kind, namespace) => {
            let selector = parse_selector(query.get("labelSelector"));
            let selects = |o: &Value| {
                (namespace.is_none()
                    || o.pointer("/metadata/namespace").and_then(Value::as_str)
                        == namespace.as_deref())
                    && labels_match(o, &selector)
            };
            let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
            if !watching {
                let limit: usize = query
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .filter(|l| *l > 0)
                    .unwrap_or(usize::MAX);
                // A continue token carries the offset and the version the
                // first page was served at: every page of a list reports
                // that one version, so a watch from it misses nothing
                // changed while the pages were read.
                let token = query.get("continue").and_then(|c| {
                    let (offset, rv) = c.strip_prefix("offset-")?.split_once("-rv-")?;
                    Some((offset.parse::<usize>().ok()?, rv.parse::<u64>().ok()?))
                });
                let (offset, snapshot) = token.unwrap_or((0, state.resource_version));
                if token.is_some() && snapshot < state.compacted {
                    return json_response(
                        StatusCode::GONE,
                        &status(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result.",
                        ),
                    );
                }
                let page = if limit == usize::MAX {
                    0
                } else {
                    offset / limit
                };
                if let Some(fault) = state
                    .list_faults
                    .iter_mut()
                    .find(|f| f.plural == kind.3 && f.page == page && f.times > 0)
                {
                    fault.times -= 1;
                    return json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &status(500, "InternalError", "etcdserver: request timed out"),
                    );
                }
                let empty = BTreeMap::new();
                let collection = state.objects.get(&(kind.0, kind.3)).unwrap_or(&empty);
                let total = collection.values().filter(|o| selects(&o.object)).count();
                let end = offset.saturating_add(limit).min(total);
                let items: Vec<&str> = collection
                    .values()
                    .filter(|o| selects(&o.object))
                    .skip(offset)
                    .take(end.saturating_sub(offset))
                    .map(|o| o.listed.as_str())
                    .collect();
                let mut metadata = json!({"resourceVersion": snapshot.to_string()});
                if end < total {
                    metadata["continue"] = format!("offset-{end}-rv-{snapshot}").into();
                    metadata["remainingItemCount"] = (total - end).into();
                }
                let body = format!(
                    "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{metadata},\"items\":[{}]}}",
                    kind.2,
                    group_version(kind),
                    items.join(",")
                );
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
            }
            let from: u64 = query
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(state.resource_version);
            let (tx, rx) = mpsc::channel::<Bytes>(10_000);
            if from != 0 && from < state.compacted {
                let _ = tx.try_send(watch_line(
                    "ERROR",
                    &status(
                        410,
                        "Expired",
                        &format!("too old resource version: {from} ({})", state.compacted),
                    ),
                ));
                drop(tx);
            } else {
                for (rv, group, plural, event_type, object) in &state.log {
                    if *rv > from
                        && *group == kind.0
                        && *plural == kind.3
                        && (namespace.is_none()
                            || object
                                .pointer("/metadata/namespace")
                                .and_then(Value::as_str)
                                == namespace.as_deref())
                        && labels_match(object, &selector)
                    {
                        let _ = tx.try_send(watch_line(event_type, object));
                    }
                }
                state.watches.push(Watch {
                    plural: kind.3,
                    group: kind.0,
                    namespace: namespace.clone(),
                    selector,
                    tx,
                });
            }
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
            });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}
